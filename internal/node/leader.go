package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
)

// minMaxPayload is the NATS max_payload every entry fits in: a transaction entry of apply.MaxTxnLen bytes with the
// leader's headers. It is the server default.
const minMaxPayload = apply.MaxTxnLen + 8<<10

// minLeaseMargin is the least a leader keeps between its last read and the earliest moment another leader may take
// the lease (see leaseHeld); a tenth of the TTL when that is more.
const minLeaseMargin = 100 * time.Millisecond

// Leader is a running leader: it accepts writes, publishes them to the log, applies them, serves reads and takes
// snapshots. It implements the API's Node, Writer, TxnWriter, Snapshotter and FollowerLister.
type Leader struct {
	cfg     config.Leader
	log     *zap.Logger
	metrics *metrics.Metrics
	id      string
	*local

	jc        *journal.Conn
	followers *followerTable
	// latency collects the write latencies the leader's pressure reports give (publishPressure).
	latency latencyWindow

	natsURL   string
	emb       *journal.Embedded
	advertise atomic.Pointer[string] // the URL the lease carries; nil until the API listens
	srv       *api.Server
	served    <-chan error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	pipeMu sync.Mutex
	pipe   *pipeline // nil until recovered and holding the lease

	baseLog  *zap.Logger              // the logger without the role, for the follower role
	follower atomic.Pointer[Follower] // the follower role while another node holds the lease, else nil

	lease        atomic.Pointer[journal.Lease] // nil until acquired
	regainMu     sync.Mutex                    // one reaction per regain of the lease
	regainsSeen  atomic.Uint64                 // the lease's regains the leader has reacted to
	resyncTarget atomic.Uint64                 // reads wait until the pipeline has resynced this request

	snapMu       sync.Mutex // one snapshot at a time; later requests wait
	snapInitDone bool
	snaps        snapshotState
}

// RunLeader runs a leader until ctx is cancelled, then drains HTTP, stops the pipeline, closes the store and returns
// nil. Start-up failures are returned as errors.
func RunLeader(ctx context.Context, cfg config.Leader, log *zap.Logger) error {
	l, err := StartLeader(ctx, cfg, log)
	if err != nil {
		return err
	}
	return runUntilDone(ctx, l.served, l.Close)
}

// StartLeader starts a leader and returns once its HTTP API is listening; it comes up (stream, lease, recovery) in
// the background, reporting its state in Status. Close stops it.
func StartLeader(ctx context.Context, cfg config.Leader, log *zap.Logger) (_ *Leader, err error) {
	cfg.Duties = cfg.Duties.WithDefaults()
	l := &Leader{cfg: cfg, log: log, metrics: metrics.New("leader"), followers: newFollowerTable(), local: &local{}}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	l.state.set(stateStarting, nil)
	dataDir, err := ensureDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if l.id, err = loadOrCreateID(filepath.Join(dataDir, "leader-id"), "leader-"); err != nil {
		return nil, err
	}
	l.baseLog = log
	l.log = log.With(zap.String("role", "leader"), zap.String("id", l.id))
	log = l.log

	l.natsURL = cfg.NATSURL
	if l.natsURL == "" {
		emb, err := journal.StartEmbedded(journal.EmbeddedConfig{
			Listen: cfg.NATSListen, StoreDir: filepath.Join(dataDir, "nats"),
			SyncInterval: cfg.NATSSyncInterval, SyncAlways: cfg.NATSSyncAlways,
			Logger: log, Users: cfg.EmbeddedNATSUsers(),
		})
		if err != nil {
			return nil, fmt.Errorf("node: embedded nats: %w", err)
		}
		l.emb = emb
		cleanup = append(cleanup, emb.Close)
		l.natsURL = emb.ClientURL()
		log.Info("embedded nats listening", zap.String("url", l.natsURL), zap.Bool("sync_always", cfg.NATSSyncAlways),
			zap.Duration("sync_interval", cfg.NATSSyncInterval), zap.Bool("auth", cfg.NATSUser != ""))
	}

	if err := l.openLocal(cfg.Common, cfg.IdempotencyTTL, log, l.metrics); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = l.holder.swap(nil) })
	l.repo = l.repo.WithCreateCPU(cfg.SnapshotCPU)

	if l.jc, err = journal.Connect(ctx, journal.Config{URL: l.natsURL, Stream: cfg.Stream, Replicas: cfg.StreamReplicas,
		StreamTags: cfg.StreamTags, MirrorTags: cfg.CatchUpMirrorTags, Name: "replikv-" + l.id, Logger: log, CredsFile: cfg.NATSCreds, CAFile: cfg.NATSCA, CertFile: cfg.NATSCert,
		KeyFile: cfg.NATSKey, InProcess: l.emb, User: cfg.NATSUser, Password: cfg.NATSPassword,
		OnMalformedHeartbeat: func(error) { l.metrics.Errors.WithLabelValues("leader", "bad_heartbeat").Inc() }}); err != nil {
		return nil, fmt.Errorf("node: connect to nats: %w", err)
	}
	cleanup = append(cleanup, l.jc.Close)
	l.restorer.jc = l.jc

	l.srv, l.served, err = serveHTTP(cfg.Common, api.Config{Node: l, Writer: l, Txn: l, Barrier: l, Snapshots: l, Followers: l,
		Redirector: l, Metrics: l.metrics, Logger: log,
		BodyTimeout: cfg.HTTPBodyTimeout, BodyBuffer: cfg.HTTPBodyBuffer,
		// A sync write must be able to wait out --sync-timeout and still answer 202, never 504.
		WriteTimeout: max(api.DefaultWriteTimeout, cfg.SyncTimeout+10*time.Second)}, log)
	if err != nil {
		return nil, err
	}
	advertise := cfg.AdvertiseURL
	if advertise == "" {
		advertise = defaultAdvertise(l.srv) // https:// with --tls-cert
	}
	l.advertise.Store(&advertise)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.runBackground(runCtx, advertise)
	}()
	return l, nil
}

// HTTPAddr is the bound address of the HTTP API.
func (l *Leader) HTTPAddr() string { return l.srv.Addr() }

// NATSURL is the NATS URL the leader uses (the embedded server's client URL without --nats-url).
func (l *Leader) NATSURL() string { return l.natsURL }

// Close drains HTTP, stops the background loops and the pipeline, releases the lease, and closes the NATS
// connection, the embedded server and the store. It is idempotent.
func (l *Leader) Close() error {
	var err error
	l.closeOnce.Do(func() {
		shutdownHTTP(l.srv, l.served, l.log)
		l.cancel()
		l.wg.Wait()
		l.stopPipeline()
		l.jc.Close()
		if l.emb != nil {
			l.emb.Close()
		}
		err = l.holder.swap(nil)
		l.log.Info("leader stopped")
	})
	return err
}

// logSetupFailed returns the retry callback of a step that sets up a stream: the leader reports starting with why
// (what), or failed when the stream exists with a configuration it cannot use, or is missing while the store holds
// entries from it: only an operator can fix those.
func (l *Leader) logSetupFailed(what, msg string) func(error, time.Duration) {
	return func(err error, next time.Duration) {
		l.state.set(stateStarting, fmt.Errorf("%s: %w", what, err))
		l.log.Warn(msg, zap.Error(err), zap.Duration("retry_in", next))
		if errors.Is(err, journal.ErrStreamConfig) || errors.Is(err, journal.ErrNoStream) {
			l.state.set(stateFailed, err)
		}
	}
}

// ensureCatchUpMirror creates the log's catch-up mirror with --catchup-mirror, and removes one an earlier run kept
// without it (a failure to remove is only logged: followers still use the mirror, and compaction still trims it).
func (l *Leader) ensureCatchUpMirror(ctx context.Context) error {
	if l.cfg.CatchUpMirror {
		return l.jc.EnsureCatchUpMirror(ctx)
	}
	if err := l.jc.RemoveCatchUpMirror(ctx); err != nil {
		l.log.Warn("could not remove the log's catch-up mirror", zap.Error(err))
	}
	return nil
}

// runBackground brings the leader up (stream, lease, recovery, pipeline) and then runs its loops.
func (l *Leader) runBackground(ctx context.Context, advertise string) {
	if err := retry(ctx, 200*time.Millisecond, 5*time.Second, func() error {
		// A store that holds entries came from an existing log: if that log is missing, creating an empty one
		// would hide the loss (and on a server that failed to recover it, replace it).
		if db := l.holder.get(); db != nil && db.Applied() > 0 {
			_, err := l.jc.RequireStream(ctx)
			if errors.Is(err, journal.ErrNoStream) {
				return fmt.Errorf("%w: the store holds entries up to %d, so the leader does not create an empty "+
					"log; restore the stream or start from an empty data dir", err, db.Applied())
			}
			return err
		}
		_, err := l.jc.EnsureStream(ctx)
		return err
	}, l.logSetupFailed("waiting for the replication log", "stream not ready")); err != nil {
		return
	}
	// The stream answered, so the connection is up and knows its server's limit (unknown, 0, before it connects).
	if mp := l.jc.MaxPayload(); mp > 0 && mp < minMaxPayload {
		// Every entry is one message: the largest transaction (apply.MaxTxnLen) and its headers need 1 MiB.
		l.log.Warn("the nats server's max_payload is below 1 MiB: it refuses the largest transactions and values, "+
			"which then fail with 503 unavailable", zap.Int64("max_payload", mp), zap.Int64("want", minMaxPayload))
	}
	for {
		lease := l.acquireOrFollow(ctx, advertise)
		if lease == nil || !l.term(ctx, lease, advertise) {
			return
		}
		// Demoted: another node took the lease. Follow it until the lease is free again.
	}
}

// newLeaderRole returns a leader over a node's open parts (its store, snapshot store and NATS connection), which it
// uses and does not close: the role a follower takes on promotion. Its terms run with term.
func newLeaderRole(cfg config.Leader, log *zap.Logger, m *metrics.Metrics, id, advertise string, loc *local,
	jc *journal.Conn) *Leader {
	l := &Leader{cfg: cfg, log: log, metrics: m, id: id, local: loc, jc: jc, followers: newFollowerTable()}
	l.advertise.Store(&advertise)
	return l
}

// leaseInfo is the lease value this leader takes the lease with.
func (l *Leader) leaseInfo(advertise string) journal.LeaderInfo {
	return journal.LeaderInfo{ID: l.id, URL: advertise, Since: time.Now().UTC(), Async: l.cfg.SyncFollowers == 0}
}

// acquireOrFollow takes the leader lease and returns it, or nil once ctx ends. While another node holds the lease the
// leader follows the log as a follower does (following), and takes the lease when it is free and the leader is
// caught up (as a follower with --failover auto).
func (l *Leader) acquireOrFollow(ctx context.Context, advertise string) *journal.Lease {
	var lease *journal.Lease
	for {
		var held bool
		if err := retry(ctx, time.Second, l.cfg.LeaseTTL/2, func() error {
			var err error
			lease, err = l.jc.AcquireLease(ctx, l.leaseInfo(advertise), l.cfg.LeaseTTL)
			held = errors.Is(err, journal.ErrLeaseHeld)
			if held {
				return nil
			}
			return err
		}, func(err error, next time.Duration) {
			l.state.set(stateStarting, fmt.Errorf("acquiring the leader lease: %w", err))
			l.log.Warn("cannot acquire the leader lease", zap.Error(err), zap.Duration("retry_in", next))
		}); err != nil {
			return nil
		}
		if !held {
			return lease
		}
		if lease = l.follow(ctx, advertise); lease != nil || ctx.Err() != nil {
			return lease
		}
	}
}

// follow runs the follower role over the leader's store and connection until it takes the lease (returned) or ctx
// ends (nil). Meanwhile the leader answers as a follower: reads from its store (each waits, as a strong read, for
// what the log held when it arrived), writes redirected to the lease's holder.
func (l *Leader) follow(ctx context.Context, advertise string) *journal.Lease {
	l.stopPipeline() // a fenced pipeline of the last term must not apply anything while the follower does
	f := newFollowerRole(config.Follower{Common: l.cfg.Common, Duties: l.cfg.Duties, ID: l.id,
		Failover: config.FailoverAuto, ReadyLag: config.DefaultReadyLag, CatchUpRate: config.DefaultCatchUpRate,
		CatchUpPacing: config.CatchUpPacingFixed},
		l.baseLog, l.metrics, l.local, l.jc, advertise)
	l.state.set(stateStarting, nil)
	l.follower.Store(f)
	defer l.follower.Store(nil)
	l.log.Warn("another node holds the leader lease: following the log, and leading once the lease is free")
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.checkpoints.run(cctx) }()
	defer func() {
		cancel()
		<-done
	}()
	return f.following(ctx)
}

// term is one term of the leader under lease, which it releases at the end: it brings the store up to the log's
// end, opens the term in the log (claimLog) and takes writes until ctx ends (false) or it loses the lease to another
// node, before or after it took its first write (true: the caller makes it a follower). A store that does not fit
// the log keeps it in recovery, degraded, while it holds the lease. The term's pipeline outlives it, fenced after a
// lost lease: stopPipeline stops it.
func (l *Leader) term(ctx context.Context, lease *journal.Lease, advertise string) (demoted bool) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		lease.Close(cctx)
	}()
	l.state.set(stateStarting, errors.New("holding the lease; catching up with the log"))
	l.regainsSeen.Store(0)
	l.resyncTarget.Store(0)
	l.lease.Store(lease)
	// A pipeline of an earlier term, fenced when it lost the lease, stops before the store catches up with the log:
	// its committer must not apply anything meanwhile.
	l.stopPipeline()
	l.log.Info("holding the leader lease", zap.String("advertise_url", advertise), zap.Duration("ttl", lease.TTL()))
	// The steps before the first write end when the lease is lost: the node then follows whoever took it.
	sctx, stopSetup := context.WithCancel(ctx)
	defer stopSetup()
	go func() {
		select {
		case <-lease.Lost():
			stopSetup()
		case <-sctx.Done():
		}
	}()
	lostDuringSetup := func() bool { return ctx.Err() == nil && lease.Err() != nil }

	// Only the lease holder creates or removes the catch-up mirror: a standby started with other flags must not
	// take it away from the leader's followers.
	if err := retry(sctx, 200*time.Millisecond, 5*time.Second, func() error { return l.ensureCatchUpMirror(sctx) },
		l.logSetupFailed("preparing the catch-up mirror", "catch-up mirror not ready")); err != nil {
		return lostDuringSetup()
	}

	var behind behindWatch
	if err := retry(sctx, 200*time.Millisecond, 5*time.Second,
		func() error { return behind.escalate(l.recover(sctx), time.Now()) },
		func(err error, next time.Duration) {
			state := stateStarting
			if errors.Is(err, errDiverged) || errors.Is(err, errBadEntry) {
				state = stateDegraded
			}
			l.state.set(state, err)
			l.log.Error("recovery from the log failed", zap.Error(err), zap.Duration("retry_in", next))
		}); err != nil {
		return lostDuringSetup()
	}

	msgID := l.id + "-" + randomHex(4) + "-"
	if err := retry(sctx, 200*time.Millisecond, 5*time.Second, func() error { return l.claimLog(sctx, lease, msgID) },
		func(err error, next time.Duration) {
			l.state.set(stateStarting, fmt.Errorf("opening the term in the log: %w", err))
			l.log.Warn("cannot open the term in the log", zap.Error(err), zap.Duration("retry_in", next))
		}); err != nil {
		return lostDuringSetup()
	}
	stopSetup()

	db := l.holder.get()
	pipe := newPipeline(l.log, l.jc, db, l.notify, &l.state, msgID, func(err error) {
		l.state.set(stateDegraded, err)
	})
	pipe.idemTTL = l.cfg.IdempotencyTTL
	pipe.start(ctx, db.Applied()+1)
	l.pipeMu.Lock()
	l.pipe = pipe
	l.pipeMu.Unlock()

	stopHB, err := l.jc.SubscribeHeartbeats(func(hb journal.Heartbeat) {
		// No follower can have applied what this leader has not published: such a heartbeat is forged or from
		// another log, and must not count as a sync confirmation.
		if hb.Applied > pipe.published.Load() {
			l.metrics.Errors.WithLabelValues("leader", "bad_heartbeat").Inc()
			return
		}
		l.followers.update(hb)
	})
	if err != nil {
		l.log.Error("cannot subscribe to follower heartbeats", zap.Error(err))
	} else {
		defer stopHB()
	}
	l.state.set(stateReady, nil)
	l.log.Info("leader ready", zap.Uint64("applied_seq", db.Applied()))
	// Create the bucket (or directory) now, so followers can start before the first snapshot; a failure here is
	// retried by the next snapshot.
	l.snapMu.Lock()
	ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
	if err := l.snapStore.Init(ictx, true); err != nil {
		l.log.Warn("snapshot store not ready yet", zap.String("store", l.snapStore.String()), zap.Error(err))
	} else {
		l.snapInitDone = true
	}
	icancel()
	l.snapMu.Unlock()

	var tick <-chan time.Time
	if l.cfg.SnapshotInterval > 0 {
		t := time.NewTicker(l.cfg.SnapshotInterval)
		defer t.Stop()
		tick = t.C
	}
	metricsTick := time.NewTicker(time.Second)
	defer metricsTick.Stop()
	pressureTick := time.NewTicker(pressureEvery)
	defer pressureTick.Stop()
	l.latency.take() // the report's first window starts now
	for {
		select {
		case <-ctx.Done():
			return false
		case <-lease.Lost():
			err := fmt.Errorf("lost the leader lease to another leader: %w", lease.Err())
			pipe.fence(err) // writes and reads answer not_leader from now on
			l.state.set(stateDegraded, fmt.Errorf("%w; following it", err))
			l.log.Error("fenced: another node leads", zap.Error(err))
			return true
		case <-pressureTick.C:
			l.publishPressure(lease)
		case <-metricsTick.C:
			_ = l.leaseHeld(pipe) // a regain of the lease starts the resync now, not at the next read
			updateSeqMetrics(l.metrics, l.Applied(), l.logLast())
			l.followerMetrics()
		case <-tick:
			if l.snapshotDue() {
				if _, err := l.createSnapshot(ctx); err != nil && ctx.Err() == nil {
					l.log.Error("scheduled snapshot failed", zap.Error(err))
				}
			}
		}
	}
}

// publishPressure publishes the write latencies of the last pressureEvery (journal.Pressure) for followers that
// catch up to pace against. A report that cannot be sent is dropped: followers pace without reports too.
func (l *Leader) publishPressure(lease *journal.Lease) {
	n, p99 := l.latency.take()
	err := l.jc.PublishPressure(journal.Pressure{Epoch: lease.Epoch(), Writes: n, P99: p99, Window: pressureEvery,
		SentAt: time.Now()})
	if err != nil {
		l.log.Debug("pressure report not sent", zap.Error(err))
	}
}

// claimLog writes the term's first entry (apply.OpTerm with the lease's epoch) right after the store's applied
// sequence, which is the log's end once recover ran, and applies it. From then on a leader that lost the lease and
// still expects the log to end where it last saw it is refused at its first publish, so it cannot get a single
// write into the log after the takeover. When an entry landed after the store's end meanwhile (such a leader's last
// write), the log refuses the term's entry: claimLog applies what the log got and tries again. Until its entry is in
// the log, the term takes no write. msgID is the prefix of the term's message ids.
//
// An empty log needs no term entry: every leader writes one before its first write, so no earlier leader can expect
// anything of it but its own term entry, which the check of the lease below keeps a leader that lost the lease from
// sending. A new log's first write thus has sequence 1, and a snapshot of the empty log can be taken at sequence 1.
func (l *Leader) claimLog(ctx context.Context, lease *journal.Lease, msgID string) error {
	db := l.holder.get()
	data := apply.AppendEntry(nil, apply.Entry{Op: apply.OpTerm, Term: lease.Epoch()})
	for {
		if err := lease.Err(); err != nil {
			return fmt.Errorf("node: open the term: %w", err)
		}
		// A leader frozen since it took the lease must not open a term another node may have opened meanwhile.
		if !time.Now().Before(lease.ValidUntil().Add(-max(lease.TTL()/10, minLeaseMargin))) {
			return fmt.Errorf("node: open the term: the lease was last renewed too long ago: %w", api.ErrUnavailable)
		}
		applied := db.Applied()
		if applied == 0 {
			return nil
		}
		seq, err := l.publishTerm(ctx, data, applied, msgID+strconv.FormatUint(applied+1, 10))
		if errors.Is(err, journal.ErrWrongLastSeq) {
			info, ierr := l.jc.Info(ctx)
			if ierr != nil {
				return fmt.Errorf("node: open the term: %w", ierr)
			}
			l.log.Warn("the log grew after the takeover's replay (a write of the previous leader's): applying it",
				zap.Uint64("applied_seq", applied), zap.Uint64("log_last_seq", info.LastSeq))
			if err := replayLog(ctx, l.jc, db, l.notify, info.LastSeq); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("node: open the term: %w", err)
		}
		if err := replayLog(ctx, l.jc, db, l.notify, seq); err != nil {
			return err
		}
		l.log.Info("term opened in the log", zap.Uint64(fieldSeq, seq), zap.Uint64("epoch", lease.Epoch()))
		return nil
	}
}

// publishTerm publishes a term's entry after expectedLast and waits for its sequence.
func (l *Leader) publishTerm(ctx context.Context, data []byte, expectedLast uint64, msgID string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ack, err := l.jc.PublishAsync(ctx, data, expectedLast, msgID)
	if err != nil {
		return 0, err
	}
	return ack.Wait(ctx)
}

// errDiverged means the local store holds entries the log does not: the log lost acknowledged writes.
var errDiverged = errors.New("local store is ahead of the replication log")

// recover brings the store up to the log's last sequence: from a snapshot if the log no longer holds the entry after
// the store's applied sequence, then by replaying the log.
func (l *Leader) recover(ctx context.Context) error {
	if err := l.ensureStore(); err != nil {
		return err
	}
	info, err := l.jc.Info(ctx)
	if err != nil {
		return fmt.Errorf("node: stream info: %w", err)
	}
	l.state.observeLogLast(info.LastSeq)
	db := l.holder.get()
	applied := db.Applied()
	if err := storeFitsLog(ctx, l.jc, db, info, l.log); err != nil {
		return err
	}
	if applied+1 < info.FirstSeq {
		l.log.Warn("the log no longer holds the entry after the local store; restoring a snapshot",
			zap.Uint64("applied_seq", applied), zap.Uint64("log_first_seq", info.FirstSeq))
		if err := l.holder.swap(nil); err != nil {
			return err
		}
		m, rerr := l.restorer.restoreNewest(ctx, info.FirstSeq)
		if err := l.reopenStore(); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		l.log.Info("restored snapshot for recovery", zap.Uint64("snapshot_seq", m.Seq))
	}
	l.state.set(stateCatchingUp, nil)
	l.state.setProgress(api.Progress{TargetSeq: info.LastSeq})
	if err := replayLog(ctx, l.jc, l.holder.get(), l.notify, info.LastSeq); err != nil {
		return err
	}
	l.log.Info("recovered from the log", zap.Uint64("applied_seq", l.holder.get().Applied()))
	return nil
}

func (l *Leader) logLast() uint64 {
	if p := l.pipeline(); p != nil {
		return p.lastAck.Load()
	}
	return 0
}

func (l *Leader) followerMetrics() {
	counts := map[string]int{}
	for _, f := range l.followers.list(l.logLast()) {
		counts[f.State]++
	}
	for _, s := range []string{stateStarting, stateRestoring, stateCatchingUp, stateReady, stateDegraded, stateFailed} {
		l.metrics.Followers.WithLabelValues(s).Set(float64(counts[s]))
	}
}

// Status implements api.Node. A leader is ready only while it can take writes: a leader whose write pipeline is
// resynchronising after a failed publish, or whose connection to NATS is down, reports degraded with the reason, and
// ready again once it recovers.
func (l *Leader) Status() api.Status {
	if f := l.follower.Load(); f != nil {
		return f.Status()
	}
	l.state.observeLogLast(l.logLast())
	st := l.state.status(api.RoleLeader, l.id, l.Applied())
	if u := l.advertise.Load(); u != nil {
		st.LeaderURL = *u
	}
	if lease := l.heldLease(); lease != nil {
		st.Epoch = lease.Epoch()
	}
	if st.State != stateReady {
		return st
	}
	var why error
	if p := l.pipeline(); p != nil {
		if err := p.brokenErr(); err != nil {
			why = fmt.Errorf("writes paused, resynchronising with the replication log: %w", err)
		} else if !p.resynced(p.resyncReq.Load()) {
			why = errors.New("writes paused, resynchronising with the replication log: the lease had expired " +
				"and was taken again")
		}
	}
	if h := l.jc.Health(); !h.Connected {
		why = fmt.Errorf("replication log unreachable: %w", h.Err)
	}
	if l.emb != nil {
		if err := l.emb.StoreFailure(); err != nil {
			why = fmt.Errorf("replication log stopped: %w", err)
		}
	}
	if why != nil {
		st.State, st.Error = stateDegraded, why.Error()
	}
	return st
}

// stopPipeline stops the write pipeline, if any, and waits until its committer no longer applies anything.
func (l *Leader) stopPipeline() {
	l.pipeMu.Lock()
	old := l.pipe
	l.pipe = nil
	l.pipeMu.Unlock()
	if old != nil {
		old.stop()
	}
}

// pipeline returns the write pipeline, nil until the leader holds the lease and has recovered.
func (l *Leader) pipeline() *pipeline {
	l.pipeMu.Lock()
	defer l.pipeMu.Unlock()
	return l.pipe
}

// LeaderHint implements api.LeaderHinter: this leader's advertised URL while it holds the lease, else "" (a standby,
// or a leader that lost the lease, does not know who holds it).
func (l *Leader) LeaderHint() string {
	if f := l.follower.Load(); f != nil {
		return f.LeaderHint()
	}
	if u := l.advertise.Load(); u != nil && l.heldLease() != nil {
		return *u
	}
	return ""
}

// heldLease is the lease of the current term, or nil before the first one or once it is lost.
func (l *Leader) heldLease() *journal.Lease {
	if lease := l.lease.Load(); lease != nil && lease.Err() == nil {
		return lease
	}
	return nil
}

// StrongTarget implements api.Node: every read on the leader has passed AwaitReadable first, so what the leader has
// applied is all a strong read needs. While the leader follows, the log's last sequence, as on a follower.
func (l *Leader) StrongTarget(ctx context.Context) (uint64, error) {
	if f := l.follower.Load(); f != nil {
		return f.StrongTarget(ctx)
	}
	return l.Applied(), nil
}

// Leading implements api.Leading: false while another node holds the lease and the leader follows it.
func (l *Leader) Leading() bool { return l.follower.Load() == nil }

// LeaderURL implements api.Redirector while the leader follows: the lease holder's URL.
func (l *Leader) LeaderURL(ctx context.Context) (string, error) {
	if f := l.follower.Load(); f != nil {
		return f.LeaderURL(ctx)
	}
	return "", fmt.Errorf("node: %w", api.ErrNoLeader)
}

// AwaitReadable implements api.ReadBarrier: a read waits until the store holds every write of its key (of every key,
// for lists and digests) this leader may have sent to the log when it arrived. Before the leader has recovered from
// the log no read is answered (ErrUnavailable, retried by the handler until the read's timeout); a leader whose lease
// was lost answers not_leader until it follows, and while it follows a read waits for the log's end as it was when
// the read arrived.
func (l *Leader) AwaitReadable(ctx context.Context, key []byte) error {
	if f := l.follower.Load(); f != nil {
		// Following: a read waits, as a strong read does, until the store holds what the log held when it arrived,
		// so that a client of the leader's URL keeps reads that see every acknowledged write.
		seq, err := f.StrongTarget(ctx)
		if err != nil {
			return fmt.Errorf("node: %w: %w", api.ErrUnavailable, err)
		}
		return f.WaitApplied(ctx, seq)
	}
	p, err := l.activePipeline("reads")
	if err != nil {
		return err
	}
	if err := p.waitReadable(ctx, key); err != nil {
		return err
	}
	return l.leaseHeld(p)
}

// leaseHeld returns nil when a read may be answered from the store now, because no other leader can have written
// to the log since the store caught up with it:
//   - the lease was renewed recently enough that no other node can have taken it (journal.Lease.ValidUntil, less a
//     margin for the read itself). A leader cut off from NATS, or frozen, stops answering reads before a standby
//     can take over; a renewal lets them go on. Else ErrUnavailable.
//   - after the lease expired and the leader took it again (journal.Lease.Regains), another leader may have held it
//     meanwhile: the write pipeline resyncs (applying whatever the log holds) before reads go on. Else ErrUnavailable.
//   - a lease lost to another node answers ErrNotLeader.
func (l *Leader) leaseHeld(p *pipeline) error {
	lease := l.lease.Load()
	if lease == nil {
		return fmt.Errorf("node: no leader lease yet: %w", api.ErrUnavailable)
	}
	if err := lease.Err(); err != nil {
		return fmt.Errorf("node: %w: %w", api.ErrNotLeader, err)
	}
	if r := lease.Regains(); r != l.regainsSeen.Load() {
		l.regainMu.Lock()
		if r := lease.Regains(); r != l.regainsSeen.Load() {
			l.resyncTarget.Store(p.requestResync()) // before regainsSeen: a read that sees the regain handled waits
			l.regainsSeen.Store(r)
			l.log.Warn("the leader lease had expired and was taken again: reads wait until the store holds whatever "+
				"the log got meanwhile", zap.Uint64("regains", r))
		}
		l.regainMu.Unlock()
	}
	if !p.resynced(l.resyncTarget.Load()) {
		return fmt.Errorf("node: the leader lease had expired; catching up with the log: %w", api.ErrUnavailable)
	}
	margin := max(lease.TTL()/10, minLeaseMargin)
	if until := lease.ValidUntil().Add(-margin); !time.Now().Before(until) {
		return fmt.Errorf("node: the leader lease was last renewed %v ago (another leader may take it at %v): %w",
			time.Since(lease.ValidUntil().Add(-lease.TTL())).Round(time.Millisecond),
			lease.ValidUntil().UTC().Format(time.RFC3339Nano), api.ErrUnavailable)
	}
	return nil
}

// activePipeline returns the write pipeline, or why the leader serves no what (reads, writes) yet: not_leader when it
// is degraded (another leader holds the lease, or the store does not fit the log), else unavailable (starting or
// replaying the log).
func (l *Leader) activePipeline(what string) (*pipeline, error) {
	if p := l.pipeline(); p != nil {
		return p, nil
	}
	state, why := l.state.get()
	if state == stateDegraded {
		return nil, fmt.Errorf("node: %w: %s", api.ErrNotLeader, why)
	}
	return nil, fmt.Errorf("node: leader is %s, no %s until it has replayed the log: %w", state, what, api.ErrUnavailable)
}

// Write implements api.Writer.
func (l *Leader) Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error) {
	p, err := l.activePipeline("writes")
	if err != nil {
		return api.WriteResult{}, err
	}
	r := &writeReq{op: req.Op, key: req.Key, value: req.Value, cond: req.Cond}
	if req.IdemKey != nil {
		entry := apply.AppendEntry(make([]byte, 0, len(req.Key)+len(req.Value)+16),
			apply.Entry{Op: req.Op, Key: req.Key, Value: req.Value})
		r.idem = newIdem(req.IdemKey, entry, []apply.Cond{req.Cond}, time.Now())
	}
	return l.commit(ctx, p, r)
}

// commit submits r to p and returns its result: with --sync-followers once followers confirmed it (see confirmed).
func (l *Leader) commit(ctx context.Context, p *pipeline, r *writeReq) (api.WriteResult, error) {
	start := time.Now()
	res := p.submitWrite(ctx, r)
	if res.err != nil {
		return api.WriteResult{}, res.err
	}
	if !res.replayed {
		l.latency.record(time.Since(start))
	}
	out := l.confirmed(ctx, res.seq)
	out.Replayed = res.replayed
	return out, nil
}

// WriteTxn implements api.TxnWriter: the transaction becomes one entry (its operations in key order), built here on
// the request's goroutine, and the pipeline checks every operation's preconditions and publishes it.
func (l *Leader) WriteTxn(ctx context.Context, req api.TxnRequest) (api.WriteResult, error) {
	p, err := l.activePipeline("writes")
	if err != nil {
		return api.WriteResult{}, err
	}
	ops := make([]apply.TxnOp, len(req.Ops))
	for i, o := range req.Ops {
		ops[i] = apply.TxnOp{Op: o.Op, Key: o.Key, Value: o.Value}
	}
	apply.SortTxnOps(ops)
	if err := apply.ValidateTxn(ops); err != nil {
		return api.WriteResult{}, fmt.Errorf("node: txn: %w", err)
	}
	e := apply.Entry{Op: apply.OpTxn, Ops: ops}
	r := &writeReq{op: apply.OpTxn, txn: req.Ops}
	if req.IdemKey != nil {
		conds := make([]apply.Cond, len(req.Ops))
		for i, o := range req.Ops {
			conds[i] = o.Cond
		}
		e.Idem = newIdem(req.IdemKey, apply.AppendEntry(make([]byte, 0, apply.TxnLen(ops)), e), conds, time.Now())
		r.idem = e.Idem
	}
	r.data = apply.AppendEntry(make([]byte, 0, apply.TxnLen(ops)+apply.IdemRecordLen(e.Idem)+2), e)
	return l.commit(ctx, p, r)
}

// confirmed is the result of a write committed at seq: with --sync-followers, once enough followers applied it or
// --sync-timeout passed.
func (l *Leader) confirmed(ctx context.Context, seq uint64) api.WriteResult {
	res := api.WriteResult{Version: seq}
	if k := l.cfg.SyncFollowers; k > 0 {
		wctx, cancel := context.WithTimeout(ctx, l.cfg.SyncTimeout)
		res.Replicated, res.Confirmed = l.followers.waitReplicated(wctx, seq, k)
		cancel()
		res.SyncRequired = true
	}
	return res
}

// Followers implements api.FollowerLister.
func (l *Leader) Followers() []api.FollowerInfo { return l.followers.list(l.logLast()) }

// CreateSnapshot implements api.Snapshotter.
func (l *Leader) CreateSnapshot(ctx context.Context) (any, error) { return l.createSnapshot(ctx) }

// ListSnapshots implements api.Snapshotter.
func (l *Leader) ListSnapshots(ctx context.Context) ([]any, error) {
	ms, err := l.repo.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("node: list snapshots: %w", wrapUnavailable(err))
	}
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out, nil
}
