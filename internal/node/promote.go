package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/journal"
)

// A follower's roles. It follows the log (run, heartbeats) until it takes the leader lease: when asked
// (POST /v1/promote) or, with --failover auto, by itself once the lease is free. It then runs a leader term over its
// own store and NATS connection (newLeaderRole, Leader.term): the term replays the log to its end before it takes a
// write, and publishes with the leader's fencing. When another node takes the lease, the term ends (fenced, no more
// writes) and the node follows again from its applied sequence + 1, after checking its store against the log's
// entry mark like any follower that resumes.

const (
	// autoPoll is how often a follower with --failover auto looks at the lease.
	autoPoll = 250 * time.Millisecond
	// autoJitter is the most a follower with --failover auto waits after it found the lease free and before it
	// tries to take it, so that followers that saw the lease go at the same moment do not all race at once.
	autoJitter = 100 * time.Millisecond
	// promoteRetry is how often a promotion asks for the lease again while another node holds it.
	promoteRetry = 250 * time.Millisecond
)

// promoteReq is one POST /v1/promote: take the lease before deadline, and say how it went on done (nil: the node
// holds the lease and its term starts).
type promoteReq struct {
	deadline time.Time
	done     chan error // buffered: the roles goroutine never waits for the requester
}

// roles runs the follower's roles one after the other until ctx ends: following, then, once promoted, a leader term,
// then following again when it loses the lease.
func (f *Follower) roles(ctx context.Context) {
	for {
		lease := f.following(ctx)
		if lease == nil {
			return
		}
		l := newLeaderRole(config.Leader{Common: f.cfg.Common, Duties: f.cfg.Duties},
			f.baseLog.With(zap.String("role", "leader"), zap.String("id", f.cfg.ID)), f.metrics, f.cfg.ID,
			f.advertise, f.local, f.jc)
		f.term.Store(l) // leading from here on: writes wait for the term's pipeline, reads for its barrier
		f.log.Warn("promoted: this node holds the leader lease and leads", zap.Uint64("epoch", lease.Epoch()),
			zap.Uint64("applied_seq", f.Applied()))
		demoted := l.term(ctx, lease, f.advertise)
		l.stopPipeline()
		f.term.Store(nil)
		if !demoted {
			return
		}
		f.state.set(stateStarting, nil)
		f.log.Warn("demoted: another node holds the leader lease; following the log again",
			zap.Uint64("applied_seq", f.Applied()))
	}
}

// following runs the follower role (the log's reader and the heartbeats) until the node takes the leader lease,
// which it returns once the follower role has stopped, or until ctx ends (nil).
func (f *Follower) following(ctx context.Context) *journal.Lease {
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.run(rctx) }()
	go func() { defer wg.Done(); f.heartbeats(rctx) }()
	defer func() {
		stop()
		wg.Wait()
	}()
	var auto <-chan time.Time
	autoLog := repeatLimiter{every: followerLogEvery}
	if f.cfg.Failover == config.FailoverAuto {
		t := time.NewTicker(autoPoll)
		defer t.Stop()
		auto = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-f.promoteCh:
			lease, err := f.takeLease(ctx, req.deadline)
			req.done <- err
			if lease != nil {
				return lease
			}
		case <-auto:
			if lease := f.autoPromote(ctx, &autoLog); lease != nil {
				return lease
			}
		}
	}
}

// eligible returns nil when the follower may lead: ready (which means connected to the log and within --ready-lag
// of its end), else an error wrapping api.ErrNotEligible that says why.
func (f *Follower) eligible() error {
	st := f.Status()
	if st.State == stateReady {
		return nil
	}
	why := st.State
	if st.Error != "" {
		why += ": " + st.Error
	}
	return fmt.Errorf("node: %w: %s (a follower leads only when ready: connected to the log and at most %d entries "+
		"behind)", api.ErrNotEligible, why, f.cfg.ReadyLag)
}

// takeLease tries to take the leader lease until deadline while the follower keeps following: at once when it is
// free, or as soon as its holder lets it go or it expires. Errors wrap api.ErrNotEligible (the follower stopped being
// ready), api.ErrLeaderAlive (the lease stayed held) or api.ErrUnavailable.
func (f *Follower) takeLease(ctx context.Context, deadline time.Time) (*journal.Lease, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		if err := f.eligible(); err != nil {
			return nil, err
		}
		lease, err := f.jc.AcquireLease(ctx, f.leaseInfo(), f.cfg.LeaseTTL)
		if err == nil {
			return lease, nil
		}
		held := errors.Is(err, journal.ErrLeaseHeld)
		if serr := ctxtime.Sleep(ctx, promoteRetry); serr != nil {
			if held {
				return nil, fmt.Errorf("node: %w: %w", api.ErrLeaderAlive, err)
			}
			return nil, fmt.Errorf("node: take the leader lease: %w: %w", api.ErrUnavailable, err)
		}
	}
}

// autoPromote takes the lease when it is free and the follower is eligible (--failover auto); nil otherwise. The
// lease is created with compare-and-set: of the followers that try at once, exactly one gets it. A failure to take a
// free lease (NATS permissions that do not allow it, an unreachable server) is logged at most every
// followerLogEvery while it repeats (limit).
func (f *Follower) autoPromote(ctx context.Context, limit *repeatLimiter) *journal.Lease {
	if f.eligible() != nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := f.jc.Leader(lctx); !errors.Is(err, journal.ErrNoLeader) {
		return nil // held, or the log cannot say
	}
	if ctxtime.Sleep(ctx, rand.N(autoJitter)) != nil || f.eligible() != nil {
		return nil
	}
	actx, acancel := context.WithTimeout(ctx, f.cfg.LeaseTTL)
	defer acancel()
	lease, err := f.jc.AcquireLease(actx, f.leaseInfo(), f.cfg.LeaseTTL)
	if err != nil {
		if !errors.Is(err, journal.ErrLeaseHeld) && limit.due(err) {
			f.log.Warn("the leader lease is free but could not be taken", zap.Error(err))
		}
		return nil
	}
	f.log.Warn("the leader lease was free: taking over as leader (--failover auto)")
	return lease
}

// leaseInfo is the lease value the follower takes the lease with.
func (f *Follower) leaseInfo() journal.LeaderInfo {
	return journal.LeaderInfo{ID: f.cfg.ID, URL: f.advertise, Since: time.Now().UTC(), Async: f.cfg.SyncFollowers == 0}
}

// Promote implements api.Promoter: the follower takes the leader lease (waiting up to timeout for it to be free),
// then waits, within the same timeout, until it has replayed the log and takes writes. A node that leads already
// answers its status at once.
func (f *Follower) Promote(ctx context.Context, timeout time.Duration) (api.Status, error) {
	if f.cfg.Failover == config.FailoverOff {
		return api.Status{}, fmt.Errorf("node: %w", api.ErrFailoverOff)
	}
	deadline := time.Now().Add(timeout)
	if f.term.Load() == nil {
		req := promoteReq{deadline: deadline, done: make(chan error, 1)}
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case f.promoteCh <- req:
			select {
			case err := <-req.done:
				if err != nil {
					return api.Status{}, err
				}
			case <-ctx.Done():
				return api.Status{}, ctx.Err()
			}
		case <-ctx.Done():
			return api.Status{}, ctx.Err()
		case <-t.C:
			// The roles goroutine did not take the request: it is between roles (taking the lease by itself, or
			// following again). Leading now is as good as promoted.
			if f.term.Load() == nil {
				return api.Status{}, fmt.Errorf("node: promotion: the node is changing roles: %w", api.ErrUnavailable)
			}
		}
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		st := f.Status()
		if st.Role == api.RoleLeader && st.State == stateReady || wctx.Err() != nil {
			return st, nil
		}
		if ctxtime.Sleep(wctx, 20*time.Millisecond) != nil && ctx.Err() != nil {
			return api.Status{}, ctx.Err()
		}
	}
}

// Leading implements api.Leading: true while the node holds the lease in a leader term.
func (f *Follower) Leading() bool { return f.term.Load() != nil }

// roleLeader is the leader role, or an error wrapping api.ErrNotLeader while the node follows (a request that saw it
// lead a moment ago).
func (f *Follower) roleLeader() (*Leader, error) {
	if l := f.term.Load(); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("node: %w: this node follows", api.ErrNotLeader)
}

// Write implements api.Writer while the node leads.
func (f *Follower) Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error) {
	l, err := f.roleLeader()
	if err != nil {
		return api.WriteResult{}, err
	}
	return l.Write(ctx, req)
}

// WriteTxn implements api.TxnWriter while the node leads.
func (f *Follower) WriteTxn(ctx context.Context, req api.TxnRequest) (api.WriteResult, error) {
	l, err := f.roleLeader()
	if err != nil {
		return api.WriteResult{}, err
	}
	return l.WriteTxn(ctx, req)
}

// AwaitReadable implements api.ReadBarrier: the leader's barrier while the node leads; none while it follows (its
// reads are a follower's).
func (f *Follower) AwaitReadable(ctx context.Context, key []byte) error {
	if l := f.term.Load(); l != nil {
		return l.AwaitReadable(ctx, key)
	}
	return nil
}

// CreateSnapshot implements api.Snapshotter while the node leads.
func (f *Follower) CreateSnapshot(ctx context.Context) (any, error) {
	l, err := f.roleLeader()
	if err != nil {
		return nil, err
	}
	return l.CreateSnapshot(ctx)
}

// ListSnapshots implements api.Snapshotter while the node leads.
func (f *Follower) ListSnapshots(ctx context.Context) ([]any, error) {
	l, err := f.roleLeader()
	if err != nil {
		return nil, err
	}
	return l.ListSnapshots(ctx)
}

// Followers implements api.FollowerLister while the node leads (none while it follows).
func (f *Follower) Followers() []api.FollowerInfo {
	if l := f.term.Load(); l != nil {
		return l.Followers()
	}
	return nil
}
