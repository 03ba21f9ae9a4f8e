package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/snapshots"
)

// Checkpoints (see docs/design.md, "Checkpoints"): at every snapshot the leader publishes a checkpoint mark through
// its write pipeline, snapshots its store at exactly the mark's sequence S, and publishes a checkpoint result with
// the key count and state digest at S once the snapshot's data is written. A follower that applies the mark takes a
// view of its store at S, computes its own digest there in the background, and compares it with the result when the
// result arrives.

const (
	// checkpointCPU is the share of one core a follower's digest of a checkpoint view may use: the apply loop and
	// the reads keep the rest.
	checkpointCPU = 0.25
	// checkpointSlice is how long the digest works before it may pause (see digestPaced).
	checkpointSlice = time.Millisecond
	// checkpointMemory bounds how many checkpoints a follower remembers, each way: its own digests whose result has
	// not arrived yet, and results whose own digest is still being computed. Results follow their mark within one
	// snapshot's time, so a few are plenty.
	checkpointMemory = 4
)

// checkpointMismatchError is a checkpoint at which the follower's state differs from the leader's: the state digest
// or the key count at seq, as the leader published them in its result entry at resultSeq, against the follower's own.
type checkpointMismatchError struct {
	seq, resultSeq            uint64
	leaderKeys, localKeys     uint64
	leaderDigest, localDigest string
}

func (e *checkpointMismatchError) Error() string {
	return fmt.Sprintf("state differs from the leader's at checkpoint seq %d (result at seq %d): leader %d keys, digest %s; "+
		"this node %d keys, digest %s", e.seq, e.resultSeq, e.leaderKeys, e.leaderDigest, e.localKeys, e.localDigest)
}

// digestAt is a node's own key count and state digest at a checkpoint's sequence.
type digestAt struct {
	keys   uint64
	digest string
}

// checkpointView is a store view at a checkpoint mark's sequence, waiting for its digest.
type checkpointView struct {
	seq  uint64
	view api.View
	gen  uint64
}

// iterableView is what digestPaced reads: a view that can also iterate its keys (heldView does).
type iterableView interface {
	api.View
	Iterate(fn func(key, value []byte, version uint64) error) error
}

// checkpointVerifier checks a follower's state against the leader's at each checkpoint. The apply loop hands it a
// view at each mark (atMark) and each result (atResult), without blocking; its goroutine (run, owned by the
// follower) computes the digest of one view at a time, paced to checkpointCPU, closes the view and compares. It
// holds at most two views: the one being digested and one waiting (a newer mark replaces a waiting one, which is then
// not verified). A mismatch is counted, logged, and sent on mismatches for the apply loop to act on.
type checkpointVerifier struct {
	log     *zap.Logger
	metrics *metrics.Metrics
	kick    chan struct{}
	// mismatches carries a mismatch found by run to the apply loop (buffered(1): one is enough to act on).
	mismatches chan *checkpointMismatchError

	mu       sync.Mutex
	closed   bool            // run returned: a view handed over now is closed at once
	gen      uint64          // bumped by reset: work on an earlier store is dropped
	waiting  *checkpointView // the next view to digest
	running  uint64          // seq of the view being digested, 0 if none
	cancel   context.CancelFunc
	local    map[uint64]digestAt                                         // own digests at marks whose result has not arrived
	expected map[uint64]resultAt                                         // results whose own digest is being computed or waits
	order    []uint64                                                    // insertion order of local and expected keys, to bound them
	verified uint64                                                      // highest sequence verified equal
	compute  func(context.Context, iterableView) (uint64, string, error) // digestPaced; tests replace it
}

// resultAt is a checkpoint result and the sequence of its entry.
type resultAt struct {
	cp  apply.Checkpoint
	seq uint64
}

func newCheckpointVerifier(log *zap.Logger, m *metrics.Metrics) *checkpointVerifier {
	return &checkpointVerifier{
		log:        log.With(zap.String("component", "checkpoints")),
		metrics:    m,
		kick:       make(chan struct{}, 1),
		mismatches: make(chan *checkpointMismatchError, 1),
		local:      map[uint64]digestAt{},
		expected:   map[uint64]resultAt{},
		compute:    digestPaced,
	}
}

// atMark hands over v, a view of the store at exactly the checkpoint mark seq. The verifier owns v from then on.
// Called by the apply loop; it does not block.
func (c *checkpointVerifier) atMark(seq uint64, v api.View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed { // the follower stops: nobody would digest or close it
		_ = v.Close()
		return
	}
	if c.waiting != nil {
		c.log.Debug("checkpoint not verified: a newer one came before its digest started",
			zap.Uint64(fieldSeq, c.waiting.seq))
		_ = c.waiting.view.Close()
	}
	c.waiting = &checkpointView{seq: seq, view: v, gen: c.gen}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// atResult hands over the checkpoint result cp, the entry at resultSeq. Called by the apply loop; it does not block.
// A result for a mark this node did not apply with its store (it restored a snapshot at or after it, or resumed
// after it) cannot be verified and is ignored.
func (c *checkpointVerifier) atResult(resultSeq uint64, cp apply.Checkpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := resultAt{cp: cp, seq: resultSeq}
	if own, ok := c.local[cp.Seq]; ok {
		delete(c.local, cp.Seq)
		c.verdictLocked(r, own)
		return
	}
	if c.running == cp.Seq || c.waiting != nil && c.waiting.seq == cp.Seq {
		c.remember(cp.Seq)
		c.expected[cp.Seq] = r
		return
	}
	c.log.Debug("checkpoint result for a state this node did not hold; not verified", zap.Uint64(fieldSeq, cp.Seq),
		zap.Uint64("result_seq", resultSeq))
}

// remember records seq as the newest key of local or expected, and forgets the oldest beyond checkpointMemory.
func (c *checkpointVerifier) remember(seq uint64) {
	c.order = append(c.order, seq)
	for len(c.order) > checkpointMemory {
		delete(c.local, c.order[0])
		delete(c.expected, c.order[0])
		c.order = c.order[1:]
	}
}

// reset drops everything about the current store: the waiting view is closed, the digest in progress is cancelled
// (run closes its view soon after), and a mismatch not yet acted on is discarded. The follower calls it before it
// replaces its store, which waits for every view of the old one to be closed.
func (c *checkpointVerifier) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.waiting != nil {
		_ = c.waiting.view.Close()
		c.waiting = nil
	}
	if c.cancel != nil {
		c.cancel()
	}
	clear(c.local)
	clear(c.expected)
	c.order = c.order[:0]
	select {
	case <-c.mismatches:
	default:
	}
}

// run digests the views handed over, one at a time, until ctx ends; then it closes a view still waiting, and any
// view handed over later.
func (c *checkpointVerifier) run(ctx context.Context) {
	defer func() {
		c.mu.Lock()
		c.closed = true
		if c.waiting != nil {
			_ = c.waiting.view.Close()
			c.waiting = nil
		}
		c.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		c.mu.Lock()
		w := c.waiting
		c.waiting = nil
		if w == nil {
			c.mu.Unlock()
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		c.running, c.cancel = w.seq, cancel
		c.mu.Unlock()

		start := time.Now()
		keys, digest, err := c.digest(wctx, w)
		cancel()

		c.mu.Lock()
		c.running, c.cancel = 0, nil
		switch {
		case w.gen != c.gen || ctx.Err() != nil:
			// The store was replaced meanwhile (or the follower stops): nothing to compare.
		case err != nil:
			c.log.Warn("checkpoint not verified: cannot digest the store", zap.Uint64(fieldSeq, w.seq), zap.Error(err))
			delete(c.expected, w.seq)
		default:
			c.log.Debug("checkpoint digest computed", zap.Uint64(fieldSeq, w.seq), zap.Uint64("keys", keys),
				zap.Duration("took", time.Since(start)))
			own := digestAt{keys: keys, digest: digest}
			if r, ok := c.expected[w.seq]; ok {
				delete(c.expected, w.seq)
				c.verdictLocked(r, own)
			} else {
				c.remember(w.seq)
				c.local[w.seq] = own
			}
		}
		c.mu.Unlock()
	}
}

// digest computes the digest of w's view and closes it.
func (c *checkpointVerifier) digest(ctx context.Context, w *checkpointView) (uint64, string, error) {
	defer func() { _ = w.view.Close() }()
	v, ok := w.view.(iterableView)
	if !ok {
		return 0, "", fmt.Errorf("node: checkpoint view of type %T cannot be iterated", w.view)
	}
	if v.Seq() != w.seq {
		return 0, "", fmt.Errorf("node: checkpoint view at seq %d, want %d", v.Seq(), w.seq)
	}
	return c.compute(ctx, v)
}

// verdictLocked compares the leader's result with the node's own digest at the same sequence. c.mu is held.
func (c *checkpointVerifier) verdictLocked(r resultAt, own digestAt) {
	leader := r.cp.DigestHex()
	if own.keys == r.cp.Keys && own.digest == leader {
		c.metrics.CheckpointsVerified.Inc()
		if r.cp.Seq > c.verified {
			c.verified = r.cp.Seq
			c.metrics.CheckpointVerifiedSeq.Set(float64(r.cp.Seq))
		}
		c.log.Info("checkpoint verified: the state equals the leader's", zap.Uint64(fieldSeq, r.cp.Seq),
			zap.Uint64("keys", own.keys), zap.String("digest", own.digest))
		return
	}
	mm := &checkpointMismatchError{seq: r.cp.Seq, resultSeq: r.seq, leaderKeys: r.cp.Keys, localKeys: own.keys,
		leaderDigest: leader, localDigest: own.digest}
	c.metrics.CheckpointMismatches.Inc()
	c.log.Error("checkpoint mismatch: the state differs from the leader's", zap.Uint64(fieldSeq, mm.seq),
		zap.Uint64("result_seq", mm.resultSeq), zap.Uint64("leader_keys", mm.leaderKeys),
		zap.String("leader_digest", mm.leaderDigest), zap.Uint64("local_keys", mm.localKeys),
		zap.String("local_digest", mm.localDigest))
	select {
	case c.mismatches <- mm:
	default: // one is already waiting to be acted on
	}
}

// digestPaced computes the state digest of v like View.Digest, but in slices of checkpointSlice separated by pauses,
// so that it uses about checkpointCPU of one core, and stops when ctx ends.
func digestPaced(ctx context.Context, v iterableView) (uint64, string, error) {
	d := apply.NewDigest()
	since := time.Now()
	err := v.Iterate(func(key, value []byte, version uint64) error {
		d.Add(key, value, version)
		if d.Keys()%64 != 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if worked := time.Since(since); worked >= checkpointSlice {
			if err := ctxtime.Sleep(ctx, time.Duration(float64(worked)*(1-checkpointCPU)/checkpointCPU)); err != nil {
				return err
			}
			since = time.Now()
		}
		return nil
	})
	if err != nil {
		return 0, "", fmt.Errorf("node: checkpoint digest: %w", err)
	}
	return d.Keys(), d.Sum(), nil
}

// errNotVouched means a snapshot's digest is not vouched for by a checkpoint result in the log: the manifest names
// none (a snapshot taken between checkpoints, or by a leader older than checkpoints). Such a snapshot is still
// restored on a first onboarding, but not by a follower re-bootstrapping after a checkpoint mismatch.
var errNotVouched = errors.New("no checkpoint in the log vouches for the snapshot")

// snapshotVouched checks a snapshot's manifest against the log's checkpoint for its sequence before it is restored
// (the data is checked against the manifest while it is restored). It returns nil when the manifest names a
// checkpoint result (checkpoint_seq) that the log holds, for the snapshot's seq, with the manifest's key count and
// digest; an error wrapping snapshots.ErrCorrupt when the log contradicts the manifest (the named entry is not that
// result, or says another digest or key count; or the log holds a checkpoint mark at the snapshot's seq and the
// manifest names no result, which every manifest of such a snapshot does); errNotVouched when there is no checkpoint
// to compare with; and the journal's error when the log could not be read.
func snapshotVouched(ctx context.Context, jc *journal.Conn, m snapshots.Manifest) error {
	if m.CheckpointSeq == 0 {
		e, err := jc.Entry(ctx, m.Seq)
		switch {
		case errors.Is(err, journal.ErrNoEntry):
			return fmt.Errorf("%w: the manifest names no checkpoint result", errNotVouched)
		case err != nil:
			return fmt.Errorf("node: read the log's entry %d: %w", m.Seq, err)
		}
		if d, err := apply.DecodeEntry(e.Data); err == nil && d.Op == apply.OpCheckpoint &&
			d.Checkpoint.Kind == apply.CheckpointMark {
			return fmt.Errorf("%w: the log holds a checkpoint at seq %d and the manifest names no result for it",
				snapshots.ErrCorrupt, m.Seq)
		}
		return fmt.Errorf("%w: the manifest names no checkpoint result", errNotVouched)
	}
	e, err := jc.Entry(ctx, m.CheckpointSeq)
	switch {
	case errors.Is(err, journal.ErrNoEntry):
		return fmt.Errorf("%w: the log holds no entry %d, the manifest's checkpoint_seq", snapshots.ErrCorrupt,
			m.CheckpointSeq)
	case err != nil:
		return fmt.Errorf("node: read the log's entry %d: %w", m.CheckpointSeq, err)
	}
	d, err := apply.DecodeEntry(e.Data)
	if err != nil || d.Op != apply.OpCheckpoint || d.Checkpoint.Kind != apply.CheckpointResult || d.Checkpoint.Seq != m.Seq {
		return fmt.Errorf("%w: the log's entry %d, the manifest's checkpoint_seq, is not the checkpoint result of seq %d",
			snapshots.ErrCorrupt, m.CheckpointSeq, m.Seq)
	}
	if d.Checkpoint.Keys != m.Keys || d.Checkpoint.DigestHex() != m.Digest {
		return fmt.Errorf("%w: the log's checkpoint (entry %d) says seq %d holds %d keys with digest %s; the manifest says %d keys, digest %s",
			snapshots.ErrCorrupt, m.CheckpointSeq, m.Seq, d.Checkpoint.Keys, d.Checkpoint.DigestHex(), m.Keys, m.Digest)
	}
	return nil
}

// checkpointMark publishes a checkpoint mark and waits until it is applied. It returns the mark's sequence and a
// view of the store at exactly that sequence, taken with open right after the mark was applied; the caller closes
// the view. Errors are submit's.
func (p *pipeline) checkpointMark(ctx context.Context, open func() (api.View, error)) (uint64, api.View, error) {
	slot := &viewSlot{open: open}
	seq, err := p.submit(ctx, &writeReq{op: apply.OpCheckpoint, cp: apply.Checkpoint{Kind: apply.CheckpointMark},
		view: slot})
	if err != nil {
		slot.abandon()
		return 0, nil, err
	}
	v, err := slot.take()
	if err != nil {
		return 0, nil, fmt.Errorf("node: view at checkpoint %d: %w", seq, err)
	}
	if v.Seq() != seq {
		_ = v.Close()
		return 0, nil, fmt.Errorf("node: view at checkpoint %d shows seq %d", seq, v.Seq())
	}
	return seq, v, nil
}

// checkpointResult publishes the checkpoint result cp and waits until it is applied; it returns the entry's
// sequence. Errors are submit's.
func (p *pipeline) checkpointResult(ctx context.Context, cp apply.Checkpoint) (uint64, error) {
	return p.submit(ctx, &writeReq{op: apply.OpCheckpoint, cp: cp})
}
