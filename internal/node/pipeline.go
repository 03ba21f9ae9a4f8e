package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
)

const (
	// maxInflight bounds published-but-unapplied writes (JetStream's async publish window is 4096).
	maxInflight = 4096
	// maxCommitBatch bounds how many acknowledged writes are applied in one store batch.
	maxCommitBatch = 1024
	// resyncAttemptTimeout bounds each request of a resync to the log: while JetStream elects a new stream leader a
	// request gets no answer, and the next attempt must leave as soon as one can be answered.
	resyncAttemptTimeout = time.Second
	// resyncMaxBackoff caps the pause between resync attempts, so that writes resume soon after the log is back.
	resyncMaxBackoff = 250 * time.Millisecond
	// resyncReplayTimeout bounds the replay of a resync: at most the writes that were in flight (maxInflight).
	resyncReplayTimeout = 30 * time.Second
	// replayIdleTimeout is how long a replay waits for its next entry before it gives up (the caller retries).
	replayIdleTimeout = 2 * time.Second
	// diskFullBackoff is the pause between resync attempts while the store's disk is full.
	diskFullBackoff = time.Second
	// resyncLogEvery is how often a resync that keeps failing with the same error is logged.
	resyncLogEvery = 10 * time.Second
)

// writeReq is one validated write waiting for the pipeline, a transaction (op apply.OpTxn, txn and data), or a
// checkpoint entry (op apply.OpCheckpoint, cp) the snapshotter publishes.
type writeReq struct {
	op    apply.Op
	key   []byte
	value []byte
	cond  apply.Cond
	cp    apply.Checkpoint
	// txn is a transaction's operations in request order (TxnOpError names them by position), each with its own
	// preconditions; data is its entry as it is published, built by the caller (an entry does not carry its
	// sequence, so it depends on nothing the writer owns).
	txn  []api.TxnOp
	data []byte
	// idem is the write's idempotency record when its client sent an Idempotency-Key (idem.Key not empty): the
	// entry carries it, and a retry is answered with this write's result (see checkIdem).
	idem apply.Idem
	// view, for a checkpoint mark, receives a store view taken right after the mark is applied and before anything
	// after it is: the state at exactly the mark's sequence.
	view *viewSlot
	done chan writeResult // buffered(1): the pipeline never blocks answering
}

// viewSlot hands the view the committer opens right after a checkpoint mark is applied to the snapshotter that
// published the mark. The snapshotter may have given up waiting by then (its context ended): whichever of the two
// comes second closes the view, so that no view stays open (the store cannot be closed under one).
type viewSlot struct {
	open func() (api.View, error)

	mu     sync.Mutex
	view   api.View
	err    error
	gaveUp bool
}

// fill opens the view (the committer, right after applying the mark).
func (s *viewSlot) fill() {
	v, err := s.open()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gaveUp {
		if v != nil {
			_ = v.Close()
		}
		return
	}
	s.view, s.err = v, err
}

// take returns the view (the snapshotter, once the mark's write succeeded); the caller closes it.
func (s *viewSlot) take() (api.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.view, s.err
	s.view, s.gaveUp = nil, true
	if v == nil && err == nil {
		err = errors.New("node: no view was taken at the checkpoint")
	}
	return v, err
}

// abandon gives the view up (the snapshotter, when the mark's write failed or it stopped waiting): a view already
// taken is closed, a later one will be.
func (s *viewSlot) abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gaveUp = true
	if s.view != nil {
		_ = s.view.Close()
		s.view = nil
	}
}

type writeResult struct {
	seq uint64
	err error
	// replayed: seq is the result of an earlier write with the same idempotency key; nothing was written.
	replayed bool
}

// pending is a published write waiting for its ack; or a barrier the writer uses to know the committer drained; or
// a write refused by its precondition on the state of a write still in flight, answered (with reject) only once
// that write is applied, so that a 412 or 404 is never decided on state that reads cannot see yet (and that may
// never be committed).
type pending struct {
	req     *writeReq
	seq     uint64
	msgID   string // the entry's Nats-Msg-Id
	data    []byte // the entry as published
	ack     *journal.Ack
	barrier chan struct{}
	reject  error
	// replayOf is the sequence of an earlier write in flight with the same idempotency key as req: req is answered
	// with its result once it is applied (see checkIdem).
	replayOf uint64
}

// overlayEntry is the in-flight state of a key: the version (sequence) of its newest published write.
type overlayEntry struct {
	seq     uint64
	deleted bool
}

type keySeq struct {
	key string
	seq uint64
}

// pipeline is the leader's write path. One goroutine (the writer) owns the next sequence and the in-flight overlay
// and publishes entries with expected-last-sequence, without waiting for acks. A second goroutine (the committer)
// waits for acks in order, applies acknowledged writes to the store in batches (group commit) and answers.
//
// Any publish failure breaks the chain of expected sequences: every write in flight is failed with 503 (unavailable
// when the server refused the entry, outcome_unknown when its ack was lost), the writer re-reads the log's last
// sequence, replays into the store whatever the log holds beyond it (the log is the truth), and resumes. A
// wrong-last-sequence error on the first write of a chain means another writer exists: the pipeline is fenced for
// good and answers not_leader.
//
// Reads on the leader are linearizable through published (see waitReadable): a read waits until the store has
// applied every entry this leader may have sent before the read began, so it sees every write the log committed,
// acknowledged to its client or not, and every write a follower may already have served.
type pipeline struct {
	log     *zap.Logger
	jc      *journal.Conn
	db      *store.DB
	notify  *seqNotifier
	state   *stateTracker
	msgID   string // prefix of every Nats-Msg-Id: leader id + boot nonce
	onFence func(error)

	reqs     chan *writeReq
	inflight chan *pending
	brokenCh chan struct{} // committer -> writer: the chain broke

	broken   atomic.Bool
	fenced   atomic.Bool
	lastAck  atomic.Uint64
	fenceErr atomic.Value          // error
	breakErr atomic.Pointer[error] // why the chain broke or the resync fails, while broken
	// published is the highest sequence this leader may have sent to the log. The writer raises it before it sends
	// an entry, lowers it back when the publish failed before anything was sent, and sets it to the log's last
	// sequence when a resync has applied the log up to there. So every entry the log holds from this leader is at
	// or below it, at any time.
	published atomic.Uint64
	// resyncReq counts requests for a resync from outside (requestResync); resyncDone is the newest of them that a
	// completed resync started after.
	resyncReq, resyncDone atomic.Uint64
	// keys maps each key with a write in flight to its newest one's sequence, so that a read of one key waits only
	// for writes of that key (see waitReadable).
	keys *keySeqs
	// ackHook, when set (by tests only), is called by the committer before it waits for each ack: it can hold acks
	// back, or fail one as if it was lost (the entry stays in the log).
	ackHook atomic.Pointer[func(seq uint64) error]

	// Owned by the writer goroutine.
	next    uint64
	prevID  string // Msg-Id of the previous entry of the current chain; "" at the start of a chain
	overlay map[string]overlayEntry
	fifo    []keySeq
	// idemFlight maps the idempotency key of each write in flight to its sequence and request hash, until the store
	// has applied it (and holds its record); idemFifo orders them for trimming.
	idemFlight map[string]idemInFlight
	idemFifo   []keySeq
	// idemTTL is how long an idempotency record answers retries (--idempotency-ttl); now is the clock it is
	// measured with.
	idemTTL time.Duration
	now     func() time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPipeline(log *zap.Logger, jc *journal.Conn, db *store.DB, notify *seqNotifier, state *stateTracker, msgID string, onFence func(error)) *pipeline {
	return &pipeline{
		log: log.With(zap.String("component", "pipeline")), jc: jc, db: db, notify: notify, state: state,
		msgID: msgID, onFence: onFence,
		reqs:       make(chan *writeReq, 256),
		inflight:   make(chan *pending, maxInflight),
		brokenCh:   make(chan struct{}, 1),
		overlay:    make(map[string]overlayEntry),
		keys:       newKeySeqs(),
		idemFlight: make(map[string]idemInFlight),
		idemTTL:    config.DefaultIdempotencyTTL,
		now:        time.Now,
	}
}

// start launches the writer and committer. next is the sequence the next write will get (log last + 1); the store
// must have applied everything before it.
func (p *pipeline) start(ctx context.Context, next uint64) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.next = next
	p.lastAck.Store(next - 1)
	p.published.Store(next - 1)
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.runWriter(ctx) }()
	go func() { defer p.wg.Done(); p.runCommitter(ctx) }()
}

// stop stops both goroutines and waits for them. Requests still queued are answered with ErrUnavailable.
func (p *pipeline) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
	for {
		select {
		case r := <-p.reqs:
			r.done <- writeResult{err: fmt.Errorf("node: leader is stopping: %w", api.ErrUnavailable)}
		default:
			return
		}
	}
}

// submit hands a write to the pipeline and waits for its outcome. When ctx ends before the pipeline took the write,
// the error wraps ErrUnavailable (nothing was sent); after, only ctx's error (the outcome is unknown).
func (p *pipeline) submit(ctx context.Context, r *writeReq) (uint64, error) {
	res := p.submitWrite(ctx, r)
	return res.seq, res.err
}

// submitWrite is submit returning the whole result (replayed).
func (p *pipeline) submitWrite(ctx context.Context, r *writeReq) writeResult {
	r.done = make(chan writeResult, 1)
	select {
	case p.reqs <- r:
	case <-ctx.Done():
		return writeResult{err: fmt.Errorf("node: write queue full: %w: %w", api.ErrUnavailable, ctx.Err())}
	}
	select {
	case res := <-r.done:
		return res
	case <-ctx.Done():
		return writeResult{err: ctx.Err()}
	}
}

func (p *pipeline) fencedErr() error {
	if e, ok := p.fenceErr.Load().(error); ok {
		return fmt.Errorf("node: %w: %w", api.ErrNotLeader, e)
	}
	return api.ErrNotLeader
}

func (p *pipeline) runWriter(ctx context.Context) {
	for {
		if (p.broken.Load() || p.resyncDone.Load() < p.resyncReq.Load()) && !p.fenced.Load() && ctx.Err() == nil {
			p.recover(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.brokenCh:
		case r := <-p.reqs:
			p.handle(ctx, r)
		}
	}
}

// requestResync asks the writer to resynchronise with the log as after a broken chain (drain the writes in flight,
// apply to the store whatever the log holds beyond them, go on from the log's end), even if nothing failed: the log
// may hold entries of another writer. It returns the request's generation, for resynced.
func (p *pipeline) requestResync() uint64 {
	gen := p.resyncReq.Add(1)
	select {
	case p.brokenCh <- struct{}{}:
	default:
	}
	return gen
}

// resynced reports whether a resync that started after request gen has completed.
func (p *pipeline) resynced(gen uint64) bool { return p.resyncDone.Load() >= gen }

// waitReadable returns once the store holds every entry of key (every entry, for a nil key) that the log may have
// committed from this leader when it was called: up to the sequence of key's newest write in flight then (or the
// sequence published then, for a nil key), or, when a resync lowered published meanwhile, up to the log's end the
// resync applied. While the chain is broken it waits for the resync. A fenced pipeline answers not_leader.
//
// A read of one key waits for writes of that key only: linearizability holds per key (it is local), and the writer
// records a key's write in keys before the entry leaves, and the committer drops it only after applying it.
func (p *pipeline) waitReadable(ctx context.Context, key []byte) error {
	target := p.published.Load()
	if key != nil {
		target = min(target, p.keys.get(key))
	}
	return p.notify.WaitFor(ctx, func() (uint64, error) {
		if p.fenced.Load() {
			return 0, p.fencedErr()
		}
		return min(target, p.published.Load()), nil
	})
}

// current returns a key's state including writes still in flight; inFlight says that it comes from one.
func (p *pipeline) current(key []byte) (cur apply.Current, inFlight bool, err error) {
	p.trimOverlay()
	if e, ok := p.overlay[string(key)]; ok {
		return apply.Current{Version: e.seq, Exists: !e.deleted}, true, nil
	}
	v, ok, err := p.db.Version(key)
	if err != nil {
		return apply.Current{}, false, fmt.Errorf("node: read version: %w", err)
	}
	return apply.Current{Version: v, Exists: ok}, false, nil
}

// trimOverlay drops overlay entries the store has applied: the store then answers for them.
func (p *pipeline) trimOverlay() {
	applied := p.db.Applied()
	i := 0
	for ; i < len(p.fifo) && p.fifo[i].seq <= applied; i++ {
		ks := p.fifo[i]
		if e, ok := p.overlay[ks.key]; ok && e.seq == ks.seq {
			delete(p.overlay, ks.key)
		}
	}
	if i > 0 {
		p.fifo = append(p.fifo[:0], p.fifo[i:]...)
	}
	i = 0
	for ; i < len(p.idemFifo) && p.idemFifo[i].seq <= applied; i++ {
		ks := p.idemFifo[i]
		if e, ok := p.idemFlight[ks.key]; ok && e.seq == ks.seq {
			delete(p.idemFlight, ks.key)
		}
	}
	if i > 0 {
		p.idemFifo = append(p.idemFifo[:0], p.idemFifo[i:]...)
	}
}

func (p *pipeline) handle(ctx context.Context, r *writeReq) {
	if p.fenced.Load() {
		r.done <- writeResult{err: p.fencedErr()}
		return
	}
	if p.broken.Load() {
		r.done <- writeResult{err: p.pausedErr()}
		return
	}
	if !p.jc.Connected() {
		r.done <- writeResult{err: fmt.Errorf("node: not connected to NATS: %w", api.ErrUnavailable)}
		return
	}
	if len(r.idem.Key) > 0 && p.checkIdem(ctx, r) {
		return
	}
	if r.op == apply.OpTxn {
		p.handleTxn(ctx, r)
		return
	}
	checkpoint := r.op == apply.OpCheckpoint // changes no key: nothing to check, nothing in flight for any key
	// An unconditional PUT cannot fail a check: skip the lookup (a store read) on the hot path.
	if !checkpoint && (r.op != apply.OpPut || r.cond.HasIfMatch || r.cond.IfNoneMatch) {
		cur, inFlight, err := p.current(r.key)
		if err != nil {
			r.done <- writeResult{err: err}
			return
		}
		if err := apply.Check(r.op, cur, r.cond); err != nil {
			if !inFlight {
				r.done <- writeResult{err: err}
				return
			}
			p.deferReject(ctx, r, err)
			return
		}
	} else {
		p.trimOverlay()
	}
	seq := p.next
	size := len(r.key) + len(r.value) + 16
	if len(r.idem.Key) > 0 {
		size += apply.IdemRecordLen(r.idem) + 1
	}
	data := apply.AppendEntry(make([]byte, 0, size),
		apply.Entry{Op: r.op, Key: r.key, Value: r.value, Checkpoint: r.cp, Idem: r.idem})
	id := p.msgID + strconv.FormatUint(seq, 10)
	// Raised before the entry leaves: a follower may apply and serve it before the ack comes back.
	p.published.Store(seq)
	var prevSeq uint64
	if !checkpoint {
		prevSeq = p.keys.set(r.key, seq)
	}
	ack, err := p.jc.PublishChained(ctx, data, seq-1, p.prevID, id)
	if err != nil {
		// Nothing was sent for this write, so the chain of expected sequences is intact.
		if !checkpoint {
			p.keys.restore(r.key, seq, prevSeq)
		}
		p.published.Store(seq - 1)
		p.notify.Kick()
		r.done <- writeResult{err: fmt.Errorf("node: publish: %w", wrapUnavailable(err))}
		return
	}
	p.next++
	p.prevID = id
	if !checkpoint {
		p.overlay[string(r.key)] = overlayEntry{seq: seq, deleted: r.op == apply.OpDelete}
		p.fifo = append(p.fifo, keySeq{key: string(r.key), seq: seq})
		p.trackIdem(r, seq)
	}
	select {
	case p.inflight <- &pending{req: r, seq: seq, msgID: id, data: data, ack: ack}:
	case <-ctx.Done():
		r.done <- writeResult{err: fmt.Errorf("node: leader is stopping, the write was sent: %w", api.ErrOutcomeUnknown)}
	}
}

// checkIdem answers r, a write with an idempotency key, when that key was used before within the retention period,
// and reports whether it did: with the earlier write's result when the request is the same (its hash), at once when
// the store holds its record and once it is applied when it is still in flight; with ErrIdempotencyKeyReused when
// the request differs. The writer's own writes in flight are in idemFlight until the store holds their records, and
// after a resync the store holds every record the log has, so no earlier write of the key is missed.
func (p *pipeline) checkIdem(ctx context.Context, r *writeReq) bool {
	p.trimOverlay()
	if e, ok := p.idemFlight[string(r.idem.Key)]; ok {
		if e.hash != r.idem.Hash {
			r.done <- writeResult{err: errIdemReused}
			return true
		}
		select {
		case p.inflight <- &pending{req: r, replayOf: e.seq}:
		case <-ctx.Done():
			r.done <- writeResult{err: fmt.Errorf("node: leader is stopping: %w", api.ErrUnavailable)}
		}
		return true
	}
	seq, rec, found, err := p.db.Idem(r.idem.Key)
	if err != nil {
		r.done <- writeResult{err: fmt.Errorf("node: read idempotency record: %w", err)}
		return true
	}
	if !found || idemExpired(rec, p.idemTTL, p.now()) {
		return false
	}
	if rec.Hash != r.idem.Hash {
		r.done <- writeResult{err: errIdemReused}
		return true
	}
	r.done <- writeResult{seq: seq, replayed: true}
	return true
}

// trackIdem records r's idempotency key, if any, as in flight at seq (r was just published).
func (p *pipeline) trackIdem(r *writeReq, seq uint64) {
	if len(r.idem.Key) == 0 {
		return
	}
	k := string(r.idem.Key)
	p.idemFlight[k] = idemInFlight{seq: seq, hash: r.idem.Hash}
	p.idemFifo = append(p.idemFifo, keySeq{key: k, seq: seq})
}

// deferReject answers r with err (a failed precondition) once the committer has applied every write in flight now,
// among them the one the check was decided on, or with 503 unavailable if that write failed: no client is told
// "stale" about a version that reads cannot see yet, or that never gets committed.
func (p *pipeline) deferReject(ctx context.Context, r *writeReq, err error) {
	select {
	case p.inflight <- &pending{req: r, reject: err}:
	case <-ctx.Done():
		r.done <- writeResult{err: fmt.Errorf("node: leader is stopping: %w", api.ErrUnavailable)}
	}
}

// handleTxn is handle for a transaction. Every operation is checked as the single write it stands for would be
// (against the overlay of writes in flight first, the store second); the first one that fails, in request order,
// refuses the whole transaction with an *api.TxnOpError, answered at once when decided on the store and through
// deferReject when decided on a write in flight. A transaction that passes is published as one entry, and every key
// it writes is in flight (overlay, keys) until the committer has applied it, with all its other keys, in one store
// batch.
func (p *pipeline) handleTxn(ctx context.Context, r *writeReq) {
	for i, o := range r.txn {
		if o.Op == apply.OpPut && !o.Cond.HasIfMatch && !o.Cond.IfNoneMatch {
			continue // an unconditional put cannot fail its check
		}
		cur, inFlight, err := p.current(o.Key)
		if err != nil {
			r.done <- writeResult{err: err}
			return
		}
		if err := apply.Check(o.Op, cur, o.Cond); err != nil {
			err = &api.TxnOpError{Index: i, Key: o.Key, Current: cur, Err: err}
			if !inFlight {
				r.done <- writeResult{err: err}
				return
			}
			p.deferReject(ctx, r, err)
			return
		}
	}
	p.trimOverlay()
	seq := p.next
	id := p.msgID + strconv.FormatUint(seq, 10)
	// Raised before the entry leaves, as for a single write.
	p.published.Store(seq)
	prev := make([]uint64, len(r.txn))
	for i, o := range r.txn {
		prev[i] = p.keys.set(o.Key, seq)
	}
	ack, err := p.jc.PublishChained(ctx, r.data, seq-1, p.prevID, id)
	if err != nil {
		// Nothing was sent, so the chain of expected sequences is intact.
		for i, o := range r.txn {
			p.keys.restore(o.Key, seq, prev[i])
		}
		p.published.Store(seq - 1)
		p.notify.Kick()
		r.done <- writeResult{err: fmt.Errorf("node: publish: %w", wrapUnavailable(err))}
		return
	}
	p.next++
	p.prevID = id
	for _, o := range r.txn {
		p.overlay[string(o.Key)] = overlayEntry{seq: seq, deleted: o.Op == apply.OpDelete}
		p.fifo = append(p.fifo, keySeq{key: string(o.Key), seq: seq})
	}
	p.trackIdem(r, seq)
	select {
	case p.inflight <- &pending{req: r, seq: seq, msgID: id, data: r.data, ack: ack}:
	case <-ctx.Done():
		r.done <- writeResult{err: fmt.Errorf("node: leader is stopping, the write was sent: %w", api.ErrOutcomeUnknown)}
	}
}

// appendMutations appends the mutations r makes once committed at seq: none for a checkpoint, one per key
// otherwise, every one at version seq.
func (r *writeReq) appendMutations(dst []apply.Mutation, seq uint64) []apply.Mutation {
	switch r.op {
	case apply.OpCheckpoint:
		return dst
	case apply.OpTxn:
		for _, o := range r.txn {
			dst = append(dst, apply.ToMutation(seq, apply.Entry{Op: o.Op, Key: o.Key, Value: o.Value}))
		}
	default:
		dst = append(dst, apply.ToMutation(seq, apply.Entry{Op: r.op, Key: r.key, Value: r.value}))
	}
	if len(r.idem.Key) > 0 {
		dst = append(dst, apply.Mutation{Version: seq, Idem: r.idem})
	}
	return dst
}

// keyCount is how many keys r writes.
func (r *writeReq) keyCount() int {
	switch r.op {
	case apply.OpCheckpoint:
		return 0
	case apply.OpTxn:
		return len(r.txn)
	}
	return 1
}

// applied tells keys that r, committed at seq, is applied: its keys are no longer in flight (unless written again
// since).
func (r *writeReq) applied(keys *keySeqs, seq uint64) {
	switch r.op {
	case apply.OpCheckpoint:
	case apply.OpTxn:
		for _, o := range r.txn {
			keys.applied(o.Key, seq)
		}
	default:
		keys.applied(r.key, seq)
	}
}

// recover waits for the committer to drain, then resynchronises the store and the next sequence with the log.
// Writes arriving meanwhile fail fast with 503.
func (p *pipeline) recover(ctx context.Context) {
	barrier := make(chan struct{})
	if !waitOrReject(ctx, p, func() <-chan struct{} {
		ch := make(chan struct{})
		p.wg.Add(1) // owned like the writer and committer: stop waits for it
		go func() {
			defer p.wg.Done()
			defer close(ch)
			select {
			case p.inflight <- &pending{barrier: barrier}:
			case <-ctx.Done():
			}
		}()
		return ch
	}()) {
		return
	}
	if !waitOrReject(ctx, p, barrier) {
		return
	}
	if p.fenced.Load() {
		return
	}
	backoff := 10 * time.Millisecond
	limit := repeatLimiter{every: resyncLogEvery}
	var behind behindWatch
	for {
		req := p.resyncReq.Load() // requests made from here on need a resync that starts later
		err := behind.escalate(p.resyncAnswering(ctx), time.Now())
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errDiverged) {
			p.log.Error("the store does not fit the log; refusing writes", zap.Error(err))
			p.fence(err)
			return
		}
		if err == nil {
			p.log.Info("write pipeline resynchronised with the log", zap.Uint64("next_seq", p.next))
			p.broken.Store(false)
			p.breakErr.Store(nil)
			p.resyncDone.Store(req)
			return
		}
		p.breakErr.Store(&err)
		if limit.due(err) {
			p.log.Warn("cannot resynchronise with the log yet", zap.Error(err), zap.Duration("retry_in", backoff))
		}
		t := time.NewTimer(backoff)
		ok := waitOrReject(ctx, p, t.C)
		t.Stop()
		if !ok {
			return
		}
		backoff = min(backoff*2, resyncMaxBackoff)
		if errors.Is(err, store.ErrDiskFull) {
			backoff = diskFullBackoff // each attempt reads the log again: no need to hurry while the disk is full
		}
	}
}

// resyncAnswering runs resync in a goroutine of its own while the writer goes on answering new writes (503, or 507
// on a full disk): a replay can take seconds, and no write may wait in the queue for it. The writer's state that
// resync changes is not touched meanwhile: waitOrReject only answers.
func (p *pipeline) resyncAnswering(ctx context.Context) error {
	var err error
	done := make(chan struct{})
	p.wg.Add(1) // owned like the writer and committer: stop waits for it
	go func() {
		defer p.wg.Done()
		defer close(done)
		err = p.resync(ctx)
	}()
	waitOrReject(ctx, p, done)
	<-done // resync honours ctx: when ctx ended, this returns soon
	return err
}

// pausedErr is the answer to a write that arrives while the chain is broken: 507 disk_full when the store has no
// room for what the log holds, else 503 unavailable. Nothing is sent for it.
func (p *pipeline) pausedErr() error {
	if err := p.brokenErr(); errors.Is(err, store.ErrDiskFull) {
		return fmt.Errorf("node: writes paused: %w: %w", api.ErrDiskFull, err)
	}
	return fmt.Errorf("node: replication log unavailable, resynchronising: %w", api.ErrUnavailable)
}

// waitOrReject waits for ch while answering new writes with 503. It returns false when ctx ended.
func waitOrReject[T any](ctx context.Context, p *pipeline, ch <-chan T) bool {
	for {
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		case r := <-p.reqs:
			if p.fenced.Load() {
				r.done <- writeResult{err: p.fencedErr()}
				continue
			}
			r.done <- writeResult{err: p.pausedErr()}
		}
	}
}

// resync applies to the store every log entry beyond its applied sequence and sets the next sequence. Each request
// to the log has its own short timeout (resyncAttemptTimeout): the caller retries.
func (p *pipeline) resync(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, resyncAttemptTimeout)
	defer cancel()
	info, err := p.jc.Info(actx)
	if err != nil {
		return fmt.Errorf("node: stream info: %w", err)
	}
	// The log may have been deleted and recreated while the leader was cut off from it: never publish onto
	// another history.
	if err := storeFitsLog(actx, p.jc, p.db, info, p.log); err != nil {
		return err
	}
	rctx, rcancel := context.WithTimeout(ctx, resyncReplayTimeout)
	defer rcancel()
	if err := replayLog(rctx, p.jc, p.db, p.notify, info.LastSeq); err != nil {
		return err
	}
	clear(p.overlay)
	p.keys.clear()
	p.fifo = p.fifo[:0]
	clear(p.idemFlight) // the store now holds the records of every write of theirs the log has
	p.idemFifo = p.idemFifo[:0]
	p.next = info.LastSeq + 1
	p.prevID = "" // a new chain starts from the log's last sequence
	p.lastAck.Store(info.LastSeq)
	// The store now holds the log up to its last sequence: reads waiting on entries that were sent and never
	// committed may go.
	p.published.Store(info.LastSeq)
	p.notify.Kick()
	p.state.observeLogLast(info.LastSeq)
	return nil
}

func (p *pipeline) runCommitter(ctx context.Context) {
	var (
		batch     []*pending
		batchKeys int // keys the batch writes
		muts      []apply.Mutation
		failErr   error // non-nil while the chain is broken: everything up to the barrier fails with it
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		tail := batch[len(batch)-1]
		last := tail.seq
		muts = muts[:0]
		for _, b := range batch {
			muts = b.req.appendMutations(muts, b.seq) // a transaction's keys all in this one store batch
		}
		err := p.db.Apply(last, muts, apply.EntryMark(last, tail.msgID, tail.data))
		clear(muts)
		if err != nil && errors.Is(err, store.ErrDiskFull) && p.db.Err() == nil {
			// The batch is in the log but the store had no room and changed nothing: the resync applies it from the
			// log once there is room. Its writes are committed; the leader cannot confirm them yet.
			err = fmt.Errorf("node: apply to store: %w", err)
			failErr = p.chainBroken(ctx, err)
			for _, b := range batch {
				b.req.done <- writeResult{err: fmt.Errorf("node: in the log but not applied here (%w): %w", err,
					api.ErrOutcomeUnknown)}
			}
		} else if err != nil {
			err = fmt.Errorf("node: apply to store: %w", err)
			p.log.Error("store write failed; refusing writes", zap.Error(err))
			p.fence(err)
			for _, b := range batch {
				b.req.done <- writeResult{err: fmt.Errorf("%w: %w", api.ErrUnavailable, err)}
			}
		} else {
			if tail.req.view != nil {
				// A checkpoint mark ends its batch (see below): the store is at exactly its sequence until the next flush.
				tail.req.view.fill()
			}
			p.notify.Advance(last)
			for _, b := range batch {
				b.req.applied(p.keys, b.seq)
				b.req.done <- writeResult{seq: b.seq}
			}
		}
		clear(batch)
		batch = batch[:0]
		batchKeys = 0
	}
	for {
		var pd *pending
		select {
		case <-ctx.Done():
			flush()
			p.failQueued(ctx.Err())
			return
		case pd = <-p.inflight:
		}
		switch {
		case pd.barrier != nil:
			flush()
			failErr = nil
			close(pd.barrier)
		case pd.reject != nil:
			flush()
			switch {
			case p.fenced.Load():
				pd.req.done <- writeResult{err: p.fencedErr()}
			case failErr != nil:
				pd.req.done <- writeResult{err: fmt.Errorf("node: the write its precondition was checked against failed; "+
					"nothing was sent: %w", api.ErrUnavailable)}
			default:
				pd.req.done <- writeResult{err: pd.reject}
			}
		case pd.replayOf != 0:
			flush()
			switch {
			case p.db.Applied() >= pd.replayOf:
				// The write it repeats was applied: everything before this pending in the queue has been.
				pd.req.done <- writeResult{seq: pd.replayOf, replayed: true}
			case p.fenced.Load():
				pd.req.done <- writeResult{err: p.fencedErr()}
			default:
				pd.req.done <- writeResult{err: fmt.Errorf("node: the earlier write with this idempotency key was not "+
					"confirmed (it may or may not be committed): %w", api.ErrOutcomeUnknown)}
			}
		case failErr != nil:
			pd.req.done <- writeResult{err: failErr}
		default:
			seq, err := p.waitAck(ctx, pd)
			if err == nil && seq != pd.seq {
				err = fmt.Errorf("log assigned seq %d to the write published as %d: %w", seq, pd.seq, journal.ErrWrongLastSeq)
			}
			if err != nil {
				flush()
				failErr = p.chainBroken(ctx, err)
				pd.req.done <- writeResult{err: failErr}
				break
			}
			p.lastAck.Store(seq)
			batch = append(batch, pd)
			batchKeys += pd.req.keyCount()
			if pd.req.op == apply.OpCheckpoint {
				flush() // a checkpoint ends its batch: the store is at exactly its sequence for a moment
			}
		}
		if len(batch) >= maxCommitBatch || batchKeys >= maxBatchKeys || (len(batch) > 0 && len(p.inflight) == 0) {
			flush()
		}
	}
}

// waitAck waits for pd's ack, through ackHook when a test set one.
func (p *pipeline) waitAck(ctx context.Context, pd *pending) (uint64, error) {
	if h := p.ackHook.Load(); h != nil {
		if err := (*h)(pd.seq); err != nil {
			return 0, err
		}
	}
	return pd.ack.Wait(ctx)
}

// chainBroken handles the first failed ack of a chain and returns the error every later write in flight gets.
func (p *pipeline) chainBroken(ctx context.Context, err error) error {
	if errors.Is(err, journal.ErrWrongLastSeq) && p.ownTail(ctx) {
		// Not another writer: an entry of this leader's that the last resync did not see yet (the server stores a
		// publish apart from answering stream info, so one sent just before the resync's request can land after its
		// answer). Resynchronise again.
		err = fmt.Errorf("the log grew past the last resync with this leader's own entries: %w", err)
	} else if errors.Is(err, journal.ErrWrongLastSeq) {
		err = fmt.Errorf("another writer appended to the log; this leader is fenced and refuses writes until restarted: %w", err)
		p.log.Error("fenced", zap.Error(err))
		p.fence(err)
		return p.fencedErr()
	}
	p.log.Warn("write pipeline broken; failing writes in flight and resynchronising", zap.Error(err))
	p.breakErr.Store(&err)
	p.broken.Store(true)
	select {
	case p.brokenCh <- struct{}{}:
	default:
	}
	if errors.Is(err, journal.ErrRejected) || errors.Is(err, journal.ErrWrongLastSeq) {
		// The server refused the entry, so it and every later one of the chain (chained to it) are not stored.
		return fmt.Errorf("node: the log refused the write: %w: %w", api.ErrUnavailable, err)
	}
	return fmt.Errorf("node: write not confirmed by the log (it may or may not be committed): %w: %w",
		api.ErrOutcomeUnknown, err)
}

// ownTail reports whether the log's last entry was published by this pipeline (its Nats-Msg-Id carries the
// pipeline's prefix: leader id and boot nonce). It answers false when it cannot tell.
func (p *pipeline) ownTail(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, resyncAttemptTimeout)
	defer cancel()
	info, err := p.jc.Info(ctx)
	if err != nil || info.LastSeq == 0 {
		return false
	}
	e, err := p.jc.Entry(ctx, info.LastSeq)
	return err == nil && strings.HasPrefix(e.ID, p.msgID)
}

// brokenErr returns why the chain is broken and not yet resynchronised, or nil when it is not.
func (p *pipeline) brokenErr() error {
	if !p.broken.Load() || p.fenced.Load() {
		return nil
	}
	if e := p.breakErr.Load(); e != nil {
		return *e
	}
	return errors.New("resynchronising with the log")
}

func (p *pipeline) fence(err error) {
	if p.fenced.Swap(true) {
		return
	}
	p.fenceErr.Store(err)
	p.broken.Store(true)
	p.notify.Kick() // reads waiting at the barrier answer not_leader
	if p.onFence != nil {
		p.onFence(err)
	}
}

// failQueued answers every write still queued after the committer stopped.
func (p *pipeline) failQueued(cause error) {
	for {
		select {
		case pd := <-p.inflight:
			switch {
			case pd.barrier != nil:
				close(pd.barrier)
			case pd.reject != nil:
				pd.req.done <- writeResult{err: fmt.Errorf("node: leader is stopping (%w): %w", cause, api.ErrUnavailable)}
			case pd.replayOf != 0:
				pd.req.done <- writeResult{err: fmt.Errorf("node: leader is stopping, the earlier write with this "+
					"idempotency key was sent (%w): %w", cause, api.ErrOutcomeUnknown)}
			default:
				pd.req.done <- writeResult{err: fmt.Errorf("node: leader is stopping, the write was sent (%w): %w", cause,
					api.ErrOutcomeUnknown)}
			}
		default:
			return
		}
	}
}

// wrapUnavailable maps journal unavailability onto the API's 503 sentinel.
func wrapUnavailable(err error) error {
	if errors.Is(err, api.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
}

// replayLog applies every log entry after the store's applied sequence up to last.
func replayLog(ctx context.Context, jc *journal.Conn, db *store.DB, notify *seqNotifier, last uint64) error {
	applied := db.Applied()
	if applied >= last {
		return nil
	}
	// Creating the consumer is a request to the stream's leader: while a JetStream cluster elects one it goes
	// unanswered, so bound it like the wait for an entry below, and let the caller retry.
	sctx, cancel := context.WithTimeout(ctx, replayIdleTimeout)
	sub, err := jc.Subscribe(sctx, applied+1, 4096)
	cancel()
	if err != nil {
		return fmt.Errorf("node: replay from seq %d: %w", applied+1, err)
	}
	defer sub.Stop()
	a := &applier{db: db}
	batch := make([]journal.Msg, 0, maxCommitBatch)
	// A subscription made while the stream has no leader (a JetStream cluster electing one) may deliver nothing until
	// it is made again: give up after replayIdleTimeout without an entry, so that the caller retries at once.
	idle := time.NewTimer(replayIdleTimeout)
	defer idle.Stop()
	for db.Applied() < last {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return fmt.Errorf("node: replay: no entry for %s at seq %d: %w", replayIdleTimeout, db.Applied()+1,
				api.ErrUnavailable)
		case m, ok := <-sub.C():
			if !ok {
				return fmt.Errorf("node: replay stopped at seq %d: %w", db.Applied(), sub.Err())
			}
			batch = append(batch, m)
		}
		batch = drainBatch(sub, batch, func(m journal.Msg) bool { return m.Seq < last })
		// Never apply beyond last: entries after it belong to whoever writes next.
		n := len(batch)
		for n > 0 && batch[n-1].Seq > last {
			n--
		}
		idle.Reset(replayIdleTimeout)
		seq, err := a.apply(batch[:n])
		notify.Advance(seq)
		if err != nil {
			return fmt.Errorf("node: replay: %w", err)
		}
		if n < len(batch) {
			break
		}
	}
	return nil
}
