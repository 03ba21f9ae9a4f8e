package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
)

const (
	// maxApplyBatch bounds how many log entries the follower applies in one store batch.
	maxApplyBatch = 2048
	// subscribeBuffer is how many delivered log entries may wait for the apply loop.
	subscribeBuffer = 8192
)

// Follower is a running follower: it onboards from a snapshot and the log, then follows the log, serves reads and
// redirects writers to the leader. It implements the API's Node and Redirector.
type Follower struct {
	cfg     config.Follower
	log     *zap.Logger
	metrics *metrics.Metrics
	*local

	jc *journal.Conn

	hbKick chan struct{}

	checkpoints *checkpointVerifier
	// mismatch is the checkpoint mismatch the follower has not yet re-bootstrapped away from a snapshot the log
	// vouches for; owned by the run goroutine.
	mismatch *checkpointMismatchError

	// advertise is the API URL the follower's heartbeats carry (--advertise-url, or the bound address).
	advertise string

	srv       *api.Server
	served    <-chan error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	leaderMu   sync.Mutex
	leaderInfo journal.LeaderInfo // the lease as last read, zero until read
	leaderAt   time.Time

	baseLog   *zap.Logger            // the logger without the role, for the leader role
	promoteCh chan promoteReq        // requests of POST /v1/promote, served by the roles goroutine
	term      atomic.Pointer[Leader] // the leader role while promoted, nil while following
}

// RunFollower runs a follower until ctx is cancelled, then drains HTTP, stops following, closes the store and
// returns nil. Start-up failures are returned as errors.
func RunFollower(ctx context.Context, cfg config.Follower, log *zap.Logger) error {
	f, err := StartFollower(ctx, cfg, log)
	if err != nil {
		return err
	}
	return runUntilDone(ctx, f.served, f.Close)
}

// newFollowerRole returns a follower over a node's parts (its store, snapshot store and NATS connection: the
// caller opens and closes them) that advertises advertise: the follower of the follower binary, and the role of a
// leader that finds another node holding the lease. Its roles run with roles, or following alone.
func newFollowerRole(cfg config.Follower, log *zap.Logger, m *metrics.Metrics, loc *local, jc *journal.Conn,
	advertise string) *Follower {
	f := &Follower{cfg: cfg, metrics: m, hbKick: make(chan struct{}, 1), local: loc, jc: jc, advertise: advertise,
		promoteCh: make(chan promoteReq), baseLog: log}
	f.log = log.With(zap.String("role", "follower"), zap.String("id", cfg.ID))
	f.checkpoints = newCheckpointVerifier(f.log, f.metrics)
	return f
}

// StartFollower starts a follower and returns once its HTTP API is listening; onboarding runs in the background and
// is reported in Status. Close stops it.
func StartFollower(ctx context.Context, cfg config.Follower, log *zap.Logger) (_ *Follower, err error) {
	cfg.Duties = cfg.Duties.WithDefaults()
	f := newFollowerRole(cfg, log, metrics.New("follower"), &local{}, nil, "")
	log = f.log
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	f.state.set(stateStarting, nil)
	if err := f.openLocal(cfg.Common, cfg.IdempotencyTTL, log, f.metrics); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = f.holder.swap(nil) })
	f.repo = f.repo.WithCreateCPU(cfg.SnapshotCPU) // for the snapshots it takes once promoted
	// The stream settings matter once promoted: the mirror, and the lease bucket if it is missing, are created then.
	if f.jc, err = journal.Connect(ctx, journal.Config{URL: cfg.NATSURL, Stream: cfg.Stream, Name: "replikv-" + cfg.ID,
		Replicas: cfg.StreamReplicas, StreamTags: cfg.StreamTags, MirrorTags: cfg.CatchUpMirrorTags, Logger: log,
		CredsFile: cfg.NATSCreds, CAFile: cfg.NATSCA, CertFile: cfg.NATSCert, KeyFile: cfg.NATSKey,
		User: cfg.NATSUser, Password: cfg.NATSPassword}); err != nil {
		return nil, fmt.Errorf("node: connect to nats: %w", err)
	}
	cleanup = append(cleanup, f.jc.Close)
	f.restorer.jc = f.jc

	hc := api.Config{Node: f, Redirector: f, Metrics: f.metrics, Logger: log}
	if cfg.Failover != config.FailoverOff {
		// Promotable: the leader's paths, which answer as a follower's until the node leads (api.Leading).
		hc.Writer, hc.Txn, hc.Barrier, hc.Snapshots, hc.Followers = f, f, f, f, f
		hc.BodyTimeout, hc.BodyBuffer = cfg.HTTPBodyTimeout, cfg.HTTPBodyBuffer
		hc.WriteTimeout = max(api.DefaultWriteTimeout, cfg.SyncTimeout+10*time.Second)
	}
	hc.Promoter = f // answers 409 failover_off with --failover off
	f.srv, f.served, err = serveHTTP(cfg.Common, hc, log)
	if err != nil {
		return nil, err
	}
	f.advertise = cfg.AdvertiseURL
	if f.advertise == "" {
		f.advertise = defaultAdvertise(f.srv)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	f.wg.Add(2)
	go func() { defer f.wg.Done(); f.roles(runCtx) }()
	go func() { defer f.wg.Done(); f.checkpoints.run(runCtx) }()
	return f, nil
}

// HTTPAddr is the bound address of the HTTP API.
func (f *Follower) HTTPAddr() string { return f.srv.Addr() }

// Close drains HTTP, stops following, and closes the NATS connection and the store. It is idempotent.
func (f *Follower) Close() error {
	var err error
	f.closeOnce.Do(func() {
		shutdownHTTP(f.srv, f.served, f.log)
		f.cancel()
		f.wg.Wait()
		f.jc.Close()
		err = f.holder.swap(nil)
		f.log.Info("follower stopped")
	})
	return err
}

// run is the onboarding state machine's supervisor: it bootstraps and follows, and on failure reports it, backs
// off and tries again. A gap, or a store whose last marked entry the log does not hold, re-bootstraps at once; a
// check of the store against the log that could not be made re-bootstraps after the backoff. A checkpoint mismatch
// (the state differs from the leader's) reports degraded with both digests and re-bootstraps after the backoff, from
// a snapshot the log's checkpoints vouch for only, until one succeeds (degraded meanwhile, saying why).
func (f *Follower) run(ctx context.Context) {
	backoff := time.Second
	rebootstrap := false
	limit := repeatLimiter{every: followerLogEvery}
	for ctx.Err() == nil {
		progressed, err := f.syncOnce(ctx, rebootstrap)
		rebootstrap = false
		if ctx.Err() != nil {
			return
		}
		var gap *gapError
		if errors.As(err, &gap) {
			f.log.Warn("entries missing from the log; re-bootstrapping from a snapshot", zap.Error(err))
			f.metrics.Errors.WithLabelValues("follower", "gap").Inc()
			rebootstrap = true
			continue
		}
		var div *divergedError
		if errors.As(err, &div) {
			f.log.Warn("the store may hold entries the log does not; re-bootstrapping from a snapshot", zap.Error(err))
			f.metrics.Errors.WithLabelValues("follower", "diverged").Inc()
			rebootstrap = true
			if div.found {
				continue
			}
			// The check could not be made: re-bootstrap too, but after the backoff, so that a check that keeps
			// failing (permissions, an unreachable server) does not turn into a loop of restores.
		}
		var mm *checkpointMismatchError
		if errors.As(err, &mm) {
			f.log.Error("the state differs from the leader's at a checkpoint; re-bootstrapping from a snapshot the log vouches for",
				zap.Error(err))
			f.mismatch = mm
		}
		if progressed && div == nil {
			backoff = time.Second
		}
		if errors.Is(err, store.ErrDiskFull) {
			// The store refused the batch and changed nothing: retry each second, to go on soon after space returns.
			backoff = time.Second
			f.metrics.Errors.WithLabelValues("follower", "disk_full").Inc()
		}
		state := stateFailed
		if f.mismatch != nil {
			// Degraded until a re-bootstrap from a vouched snapshot succeeds: eventual reads still answer from this
			// state, which the status says differs from the leader's.
			state, rebootstrap = stateDegraded, true
			if mm != nil {
				err = fmt.Errorf("%w; re-bootstrapping from a snapshot the log vouches for", err)
			} else {
				err = fmt.Errorf("%w; re-bootstrap: %w", f.mismatch, err)
			}
		}
		f.state.set(state, err)
		if limit.due(err) {
			f.log.Error("follower not in sync; retrying", zap.Error(err), zap.Duration("retry_in", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min2(backoff*2, 10*time.Second)
	}
}

// syncOnce brings the store to a position the log can continue from (resume, snapshot or replay from 1), then
// follows the log until an error. progressed reports whether any entry was applied.
func (f *Follower) syncOnce(ctx context.Context, rebootstrap bool) (progressed bool, err error) {
	if state, _ := f.state.get(); state != stateFailed && state != stateDegraded {
		f.state.set(stateStarting, nil)
	}
	if err := f.ensureStore(); err != nil {
		return false, err
	}
	info, err := f.jc.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("waiting for the replication log: %w", err)
	}
	f.state.observeLogLast(info.LastSeq)
	db := f.holder.get()
	applied := db.Applied()
	switch {
	case rebootstrap:
	case applied > info.LastSeq:
		f.log.Warn("local store is ahead of the log (the stream was reset?); re-bootstrapping",
			zap.Uint64("applied_seq", applied), zap.Uint64("log_last_seq", info.LastSeq))
		rebootstrap = true
	case applied > 0 && applied+1 >= info.FirstSeq:
		f.log.Info("resuming from the local store", zap.Uint64("applied_seq", applied))
	case applied > 0:
		f.log.Info("the log no longer holds the entry after the local store; re-bootstrapping",
			zap.Uint64("applied_seq", applied), zap.Uint64("log_first_seq", info.FirstSeq))
		rebootstrap = true
	default:
		rebootstrap = true // empty store: a snapshot if there is one, else the log from seq 1
	}
	if rebootstrap {
		if err := f.bootstrap(ctx, info, f.mismatch != nil); err != nil {
			return false, err
		}
		f.mismatch = nil
	}
	return f.follow(ctx, info)
}

// bootstrap replaces the store with the newest usable snapshot (with vouched, one whose digest a checkpoint in the
// log vouches for), or with an empty store when there is none and the log still starts at 1.
func (f *Follower) bootstrap(ctx context.Context, info journal.Info, vouched bool) error {
	if err := f.snapStore.Init(ctx, false); err != nil && !errors.Is(err, snapshots.ErrNotFound) {
		return fmt.Errorf("snapshot store %s unreachable: %w", f.snapStore, err)
	}
	f.checkpoints.reset() // its views of the store would hold the swap back
	if err := f.holder.swap(nil); err != nil {
		return err
	}
	restore := f.restorer.restoreNewest
	if vouched {
		restore = f.restorer.restoreVouched
	}
	m, rerr := restore(ctx, info.FirstSeq)
	if errors.Is(rerr, errNoSnapshot) && info.FirstSeq <= 1 {
		f.log.Info("no usable snapshot; replaying the log from the start", zap.NamedError("reason", rerr))
		if err := os.RemoveAll(store.StoreDir(f.dataDir)); err != nil {
			return fmt.Errorf("node: reset store: %w", err)
		}
		f.state.setSnapshotSeq(0)
		rerr = nil
	}
	if err := f.reopenStore(); err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	if m.Seq > 0 {
		f.log.Info("onboarding from snapshot", zap.Uint64("snapshot_seq", m.Seq))
	}
	return nil
}

// follow reads the log from applied+1 with an ordered consumer and applies it until an error. A follower far
// behind (more than --ready-lag) first catches up from the log's catch-up mirror when there is one, so that its reads
// do not hold back the leader's publishes (see journal.EnsureCatchUpMirror), then follows the log itself.
func (f *Follower) follow(ctx context.Context, info journal.Info) (progressed bool, err error) {
	db := f.holder.get()
	if err := f.checkStoreMark(ctx, db); err != nil {
		return false, err
	}
	fs := &followState{a: &applier{db: db, checkpoint: f.atCheckpoint}, logLast: info.LastSeq}
	f.enterCatchUp(db.Applied(), info.LastSeq)
	fs.cu = newCatchUpLog(f.log, db.Applied(), info.LastSeq)
	if applied := db.Applied(); info.LastSeq > applied && info.LastSeq-applied > f.cfg.ReadyLag {
		err := f.readLog(ctx, fs, true)
		// Whatever ended the catch-up from the mirror, the log must hold what the mirror gave.
		if cerr := f.checkStoreMark(ctx, db); cerr != nil {
			return fs.progressed, cerr
		}
		var unusable *mirrorUnusableError
		switch {
		case errors.As(err, &unusable):
			if unusable.absent {
				f.log.Debug("no catch-up mirror; catching up from the log")
			} else {
				f.log.Info("catching up from the log instead of its mirror", zap.Error(err))
			}
		case err != nil:
			return fs.progressed, err
		}
	}
	err = f.readLog(ctx, fs, false)
	return fs.progressed, err
}

// mirrorQuietTicks is how many idle ticks (seconds) without an entry from the catch-up mirror, or without getting
// closer to the log's end, make the follower go on from the log.
const mirrorQuietTicks = 3

// followState is what follow's readers share.
type followState struct {
	a          *applier
	cu         *catchUpLog
	logLast    uint64 // highest log sequence known to exist
	progressed bool   // any entry applied
}

// markCheckTries is how many times checkStoreMark asks the log, a second apart, before it gives up on the check.
const markCheckTries = 3

// divergedError means the store may hold entries the log does not: only a re-bootstrap puts it right. found is
// true when the log was read and its entry differs or is missing, false when the comparison could not be made.
type divergedError struct {
	err   error
	found bool
}

func (e *divergedError) Error() string { return e.err.Error() }
func (e *divergedError) Unwrap() error { return e.err }

// checkStoreMark makes sure, before the follower reads on from the log at applied+1, that its store came from this
// log (see verifyMark): when it resumes from its store, and when it goes on from the log after a catch-up from the
// catch-up mirror. Without it, reading on would never notice a store written from another history of the log: a log
// deleted and recreated that has since grown past the store's sequence, or a promoted mirror that took writes of its
// own under the mirror's name (an ordered consumer that outlives the promotion is not told; after a promotion every
// entry the stream takes is its own, so the last one applied tells). A mismatch returns a *divergedError with found
// (re-bootstrap at once); so does a check that cannot be made in markCheckTries attempts, without found, since the
// store cannot be trusted without it.
func (f *Follower) checkStoreMark(ctx context.Context, db *store.DB) error {
	var err error
	for try := range markCheckTries {
		if try > 0 {
			if serr := ctxtime.Sleep(ctx, time.Second); serr != nil {
				return serr
			}
		}
		err = verifyMark(ctx, f.jc, db, f.log)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errNotTheLog):
			return &divergedError{err: err, found: true}
		case ctx.Err() != nil:
			return ctx.Err()
		}
	}
	return &divergedError{err: fmt.Errorf("could not check the store against the log: %w", err)}
}

// mirrorUnusableError ends a catch-up from the mirror early without failing: the follower goes on from the log,
// which decides whether anything is missing.
type mirrorUnusableError struct {
	err    error
	absent bool // there was no mirror to begin with (the default deployment)
}

func (e *mirrorUnusableError) Error() string { return "catch-up mirror unusable: " + e.err.Error() }
func (e *mirrorUnusableError) Unwrap() error { return e.err }

// readLog applies entries from applied+1 read from the log or, with mirror, from its catch-up mirror, until an
// error. From the mirror it returns nil once it is within --ready-lag of the log's end (the mirror may lag behind
// the log: it keeps reading the mirror until then), and a *mirrorUnusableError when the mirror lacks the next entry,
// cannot be read, delivers nothing for mirrorQuietTicks seconds, or does not bring the follower closer to the log's
// end for that long.
func (f *Follower) readLog(ctx context.Context, fs *followState, mirror bool) error {
	db := fs.a.db
	start := db.Applied() + 1
	var opts []journal.SubscribeOption
	if p := newCatchUpPacer(f.cfg.CatchUpRate, f.cfg.ReadyLag); p != nil {
		if f.cfg.CatchUpPacing == config.CatchUpPacingAdaptive {
			lp := &leaderPressure{}
			stop, err := f.jc.SubscribePressure(func(r journal.Pressure) { lp.observe(r, time.Now()) })
			if err != nil {
				f.log.Warn("cannot receive the leader's pressure reports; catch-up paced at --catchup-rate",
					zap.Error(err))
			} else {
				defer stop()
				p.withPressure(lp)
			}
		}
		p.onRate = f.metrics.CatchUpRate.Set
		opts = append(opts, journal.WithPacer(p))
	}
	source := "log"
	if mirror {
		opts = append(opts, journal.FromCatchUpMirror())
		source = "catch-up mirror"
	}
	sub, err := f.jc.Subscribe(ctx, start, subscribeBuffer, opts...)
	if err != nil {
		err = fmt.Errorf("subscribe to the %s from seq %d: %w", source, start, err)
		if mirror {
			return &mirrorUnusableError{err: err, absent: errors.Is(err, journal.ErrNoStream)}
		}
		return err
	}
	defer sub.Stop()
	if mirror {
		f.log.Info("catching up from the log's mirror", zap.Uint64("from_seq", start))
	}

	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	first := true
	unreachable := 0                  // consecutive failed log probes while idle
	quiet, got := 0, false            // ticks without an entry in between; an entry since the last tick
	stuck, prevBehind := 0, uint64(0) // ticks in a row the mirror did not bring it closer to the log's end
	batch := make([]journal.Msg, 0, maxApplyBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			if got {
				quiet, got = 0, false
			} else {
				quiet++
			}
			if mirror && quiet >= mirrorQuietTicks && fs.logLast > db.Applied() {
				// The mirror stopped copying the log, or lags far behind it: the log has what it lacks.
				return &mirrorUnusableError{err: fmt.Errorf("no entry from it for %d s while the log holds up to seq %d",
					quiet, fs.logLast)}
			}
			in, err := f.jc.Info(ctx)
			if err != nil {
				// Cut off from the log: keep the subscription (it resumes by itself) and keep serving eventual
				// reads, but stop claiming to be ready.
				if unreachable++; unreachable >= 3 {
					if state, _ := f.state.get(); state != stateFailed {
						f.log.Warn("replication log unreachable", zap.Error(err))
					}
					f.state.set(stateFailed, fmt.Errorf("replication log unreachable: %w", err))
				}
				continue
			}
			unreachable = 0
			fs.logLast = max(fs.logLast, in.LastSeq)
			f.observe(db.Applied(), fs.logLast)
			if mirror {
				// A mirror that lags the log by more than --ready-lag for good would keep the follower from ever
				// being ready: go on from the log once the distance to the log's end stops shrinking.
				behind := fs.logLast - min(fs.logLast, db.Applied())
				if prevBehind > 0 && behind >= prevBehind {
					stuck++
				} else {
					stuck = 0
				}
				prevBehind = behind
				if stuck >= mirrorQuietTicks {
					return &mirrorUnusableError{err: fmt.Errorf("not closing in on the log's end: %d entries behind for %d s",
						behind, stuck)}
				}
			}
			continue
		case mm := <-f.checkpoints.mismatches:
			return mm
		case m, ok := <-sub.C():
			got = true
			if !ok {
				err := fmt.Errorf("%s subscription ended: %w", source, sub.Err())
				if mirror {
					return &mirrorUnusableError{err: err}
				}
				return err
			}
			batch = append(batch, m)
		}
		batch = drainBatch(sub, batch, always)
		if first {
			first = false
			if batch[0].Seq > start {
				gap := &gapError{want: start, got: batch[0].Seq}
				if mirror {
					return &mirrorUnusableError{err: gap}
				}
				return gap
			}
		}
		seq, aerr := fs.a.apply(batch)
		if seq >= start {
			fs.progressed = true
		}
		f.notify.Advance(seq)
		f.observeReplicationLag(batch, seq, time.Now())
		lastMsg := batch[len(batch)-1]
		fs.logLast = max(fs.logLast, lastMsg.Seq+lastMsg.Pending)
		f.observe(seq, fs.logLast)
		fs.cu.report(seq, fs.logLast)
		select {
		case f.hbKick <- struct{}{}:
		default:
		}
		var gap *gapError
		switch {
		case aerr == nil:
		case errors.Is(aerr, errBadEntry):
			f.metrics.Errors.WithLabelValues("follower", "bad_entry").Inc()
			return aerr
		case mirror && errors.As(aerr, &gap):
			return &mirrorUnusableError{err: aerr}
		default:
			return aerr
		}
		if mirror && seq+f.cfg.ReadyLag >= fs.logLast {
			// Near the end the log was last known to have: ask the log itself (the mirror may lag behind it).
			if in, err := f.jc.Info(ctx); err == nil {
				fs.logLast = max(fs.logLast, in.LastSeq)
			}
			if seq+f.cfg.ReadyLag >= fs.logLast {
				f.log.Info("caught up from the mirror; following the log", zap.Uint64("applied_seq", seq),
					zap.Uint64("log_last_seq", fs.logLast))
				return nil
			}
		}
	}
}

// observeReplicationLag records, while the follower is ready (steady state, not a catch-up's backlog), how long ago
// the log's server stored each entry of batch it has now applied (up to applied). The times come from two clocks:
// a negative difference (this host's clock behind the server's) counts as 0.
func (f *Follower) observeReplicationLag(batch []journal.Msg, applied uint64, now time.Time) {
	if state, _ := f.state.get(); state != stateReady {
		return
	}
	for _, m := range batch {
		if m.Seq > applied || m.Stored.IsZero() {
			continue
		}
		f.metrics.ReplicationLag.Observe(max(now.Sub(m.Stored), 0).Seconds())
	}
}

// atCheckpoint is the applier's checkpoint hook: at a mark it hands a view of the store (at exactly the mark's
// sequence) to the checkpoint verifier, at a result the result.
func (f *Follower) atCheckpoint(seq uint64, cp apply.Checkpoint) {
	switch cp.Kind {
	case apply.CheckpointMark:
		v, err := f.holder.view(context.Background())
		if err != nil {
			f.log.Warn("checkpoint not verified: no view of the store", zap.Uint64(fieldSeq, seq), zap.Error(err))
			return
		}
		f.checkpoints.atMark(seq, v)
	case apply.CheckpointResult:
		f.checkpoints.atResult(seq, cp)
	}
}

func (f *Follower) enterCatchUp(applied, target uint64) {
	f.state.set(stateCatchingUp, nil)
	f.state.setProgress(api.Progress{TargetSeq: target})
	f.observe(applied, target)
}

// observe updates lag, metrics and readiness: ready while at most --ready-lag entries behind.
func (f *Follower) observe(applied, logLast uint64) {
	f.state.observeLogLast(logLast)
	updateSeqMetrics(f.metrics, applied, logLast)
	var lag uint64
	if logLast > applied {
		lag = logLast - applied
	}
	state, _ := f.state.get()
	switch {
	case lag <= f.cfg.ReadyLag && state != stateReady:
		f.state.set(stateReady, nil)
		f.log.Info("follower ready", zap.Uint64("applied_seq", applied), zap.Uint64("lag", lag))
	case lag > f.cfg.ReadyLag && state != stateCatchingUp:
		f.state.set(stateCatchingUp, nil)
		f.state.setProgress(api.Progress{TargetSeq: logLast})
		if state == stateReady {
			f.log.Warn("follower fell behind", zap.Uint64("applied_seq", applied), zap.Uint64("lag", lag))
		}
	case state == stateCatchingUp:
		f.state.setProgress(api.Progress{TargetSeq: logLast})
	}
}

// followerLogEvery is how often a follower that keeps failing with the same error logs it again.
const followerLogEvery = 10 * time.Second

// sparseHeartbeatEvery is the shortest interval between two heartbeats of a follower whose confirmations no write
// waits for: one that is not ready, or one whose leader is asynchronous.
const sparseHeartbeatEvery = 100 * time.Millisecond

// heartbeats reports the follower's applied sequence and state to the leader: after every applied batch (coalesced)
// and at least every second.
func (f *Follower) heartbeats(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prompt := f.leaderWaits(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			prompt = f.leaderWaits(ctx)
		case <-f.hbKick:
		}
		st := f.Status()
		if err := f.jc.PublishHeartbeat(journal.Heartbeat{ID: f.cfg.ID, State: st.State, Applied: st.AppliedSeq,
			Lag: st.Lag, SentAt: time.Now().UTC(), URL: f.advertise}); err != nil {
			f.log.Debug("heartbeat not sent", zap.Error(err))
		}
		// At most one heartbeat per millisecond while ready and the leader waits for followers' confirmations
		// (--sync-followers): batches applied meanwhile are confirmed by the next one, promptly enough for a sync
		// write. Otherwise no write waits for this follower's confirmation, and a batch is applied every few hundred
		// microseconds (a catch-up, or every write of a busy leader): the follower reports every sparseHeartbeatEvery
		// only, so that its heartbeats do not outnumber the writes at the leader and the log's server.
		every := sparseHeartbeatEvery
		if prompt && st.State == stateReady {
			every = time.Millisecond
		}
		pause := time.NewTimer(every)
		select {
		case <-ctx.Done():
			pause.Stop()
			return
		case <-pause.C:
		}
	}
}

// leaderWaits says whether the leader waits for followers to confirm writes, from its lease (read at most once a
// second). Unknown (no leader, NATS unreachable, or a leader from before the lease said) counts as waiting: confirming
// promptly is always safe, only dearer.
func (f *Follower) leaderWaits(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := f.leader(ctx)
	return err != nil || !info.Async
}

// Status implements api.Node. A follower cut off from NATS is not ready, whatever it last observed: it cannot know
// that it is within --ready-lag of the log.
func (f *Follower) Status() api.Status {
	if l := f.term.Load(); l != nil {
		return l.Status()
	}
	st := f.state.status(api.RoleFollower, f.cfg.ID, f.Applied())
	f.leaderMu.Lock()
	st.LeaderURL, st.Epoch = f.leaderInfo.URL, f.leaderInfo.Epoch
	f.leaderMu.Unlock()
	if st.State == stateReady {
		if h := f.jc.Health(); !h.Connected {
			st.State, st.Error = stateDegraded, fmt.Sprintf("replication log unreachable: %v", h.Err)
		}
	}
	return st
}

// StrongTarget implements api.Node: the log's last sequence as of now, asked of NATS (not of the leader).
func (f *Follower) StrongTarget(ctx context.Context) (uint64, error) {
	if l := f.term.Load(); l != nil {
		return l.StrongTarget(ctx)
	}
	info, err := f.jc.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("node: log last sequence: %w", wrapUnavailable(err))
	}
	f.state.observeLogLast(info.LastSeq)
	return info.LastSeq, nil
}

// LeaderURL implements api.Redirector from the leader's lease, cached for a second.
func (f *Follower) LeaderURL(ctx context.Context) (string, error) {
	info, err := f.leader(ctx)
	return info.URL, err
}

// LeaderHint implements api.LeaderHinter: the leader's URL as last read from the lease, without asking NATS (so that
// no answer waits); empty before the first read. The heartbeat loop reads the lease every second (leaderWaits), and
// so do redirects.
func (f *Follower) LeaderHint() string {
	if l := f.term.Load(); l != nil {
		return l.LeaderHint()
	}
	f.leaderMu.Lock()
	defer f.leaderMu.Unlock()
	return f.leaderInfo.URL
}

// leader returns the leader's lease, read at most once a second. On a NATS hiccup it returns the last one read.
func (f *Follower) leader(ctx context.Context) (journal.LeaderInfo, error) {
	f.leaderMu.Lock()
	defer f.leaderMu.Unlock()
	if f.leaderInfo.URL != "" && time.Since(f.leaderAt) < time.Second {
		return f.leaderInfo, nil
	}
	info, err := f.jc.Leader(ctx)
	if err != nil {
		if errors.Is(err, journal.ErrNoLeader) {
			return journal.LeaderInfo{}, fmt.Errorf("node: %w", api.ErrNoLeader)
		}
		if f.leaderInfo.URL != "" {
			return f.leaderInfo, nil // NATS hiccup: the last known leader is the best answer
		}
		return journal.LeaderInfo{}, fmt.Errorf("node: find leader: %w: %w", api.ErrNoLeader, err)
	}
	f.leaderInfo, f.leaderAt = info, time.Now()
	return info, nil
}

// catchUpLog writes a catch-up progress line (applied, target, rate, ETA) at most every two seconds.
type catchUpLog struct {
	log      *zap.Logger
	start    time.Time
	startSeq uint64
	last     time.Time
}

func newCatchUpLog(log *zap.Logger, applied, target uint64) *catchUpLog {
	log.Info("catching up", zap.Uint64("from_seq", applied+1), zap.Uint64("target_seq", target))
	now := time.Now()
	return &catchUpLog{log: log, start: now, startSeq: applied, last: now}
}

func (c *catchUpLog) report(applied, logLast uint64) {
	now := time.Now()
	if now.Sub(c.last) < 2*time.Second {
		return
	}
	c.last = now
	elapsed := now.Sub(c.start).Seconds()
	rate := float64(applied-c.startSeq) / max(elapsed, 1e-3)
	fields := []zap.Field{zap.Uint64("applied_seq", applied), zap.Uint64("log_last_seq", logLast),
		zap.Float64("entries_per_sec", rate)}
	if logLast > applied && rate > 0 {
		fields = append(fields, zap.Duration("eta", time.Duration(float64(logLast-applied)/rate*float64(time.Second))))
	}
	c.log.Info("catch-up progress", fields...)
}
