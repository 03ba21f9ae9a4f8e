package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/replikv/replikv/internal/ctxtime"
	"go.uber.org/zap"
)

const (
	// minLeaseTTL is the shortest lease TTL accepted (the server's expiry timer is not finer than this).
	minLeaseTTL = 100 * time.Millisecond
	// maxIDLen bounds node ids in leases and heartbeats.
	maxIDLen = 256
	// acquireAttempts bounds the get/create races AcquireLease retries before giving up.
	acquireAttempts = 3
	// renewMinBackoff is the first retry delay after a failed renewal.
	renewMinBackoff = 50 * time.Millisecond
)

// noRespondersWait bounds how long AcquireLease retries a lease read or create that found no responders. On a
// cluster, a bucket just created on another server answers through this client's server only once the hosting
// server's subscriptions have crossed the route, a moment after the create returned. A variable so that tests can
// shorten it.
var noRespondersWait = 5 * time.Second

// LeaderInfo is the value of the leader lease: who leads and where writers should go.
type LeaderInfo struct {
	// ID is the leader's persistent node id (1..256 bytes).
	ID string `json:"id"`
	// URL is the leader's advertised HTTP URL.
	URL string `json:"url"`
	// Since is when this leader acquired the lease; it also tells two incarnations of the same id apart.
	Since time.Time `json:"since"`
	// Async is true when the leader confirms writes without waiting for followers (--sync-followers 0), so that
	// followers need not confirm each applied batch at once. Absent (a leader from before the field) means false:
	// followers confirm promptly, which is always safe.
	Async bool `json:"async,omitempty"`
	// Epoch is the lease key's revision when its holder took it, or took it again after it had expired: every
	// takeover has a higher one (KV revisions only grow). 0 in a lease written before the field, and in the value
	// passed to AcquireLease, which sets it.
	Epoch uint64 `json:"epoch,omitempty"`
}

// Lease is a held leader lease that renews itself until Close (or Conn.Close). Lost is closed when another node
// took the lease; the lease then no longer renews.
type Lease struct {
	c        *Conn
	info     LeaderInfo
	value    []byte
	interval time.Duration

	ctx    context.Context // cancelled by stop; bounds renewal calls
	cancel context.CancelFunc
	quit   chan struct{}
	done   chan struct{}
	lost   chan struct{}

	stopOnce  sync.Once
	closeOnce sync.Once

	rev uint64 // owned by the renewer goroutine; read by Close after it stopped
	err error  // written before lost is closed

	ttl       time.Duration // the key's lifetime without renewal (the shorter of ours and the bucket's)
	base      time.Time     // monotonic origin of confirmed
	confirmed atomic.Int64  // when the last write that kept the key ours was sent, in ns after base
	regains   atomic.Uint64 // how often the key had expired and was created again (see Regains)
	epoch     atomic.Uint64 // info.Epoch, for Epoch (the renewer changes info)
}

// AcquireLease takes the leader lease in the KV bucket "<stream>_leader" (created if missing with TTL ttl, history 1
// and Config.Replicas; an existing bucket keeps its TTL and renewals follow the shorter of the two). If the key is
// absent it is created; if it holds the same ID (a restarted leader) it is taken back; if it holds another ID the
// result wraps ErrLeaseHeld with the holder's id and url. The lease then renews every ttl/3 with compare-and-set in
// an owned goroutine; transient NATS errors are retried, a key that expired meanwhile is re-created (still ours),
// and a moved revision closes Lost with ErrLeaseLost. Other errors: ErrMalformed (bad id or ttl), ErrUnavailable,
// ErrClosed.
func (c *Conn) AcquireLease(ctx context.Context, info LeaderInfo, ttl time.Duration) (*Lease, error) {
	if err := validateID(info.ID); err != nil {
		return nil, fmt.Errorf("journal: acquire lease: %w", err)
	}
	if ttl < minLeaseTTL {
		return nil, fmt.Errorf("journal: acquire lease: %w: ttl %s below %s", ErrMalformed, ttl, minLeaseTTL)
	}
	if c.isClosed() {
		return nil, fmt.Errorf("journal: acquire lease: %w", ErrClosed)
	}
	value, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("journal: acquire lease: %w: %w", ErrMalformed, err)
	}
	kv, err := c.leaseKV(ctx, ttl)
	if err != nil {
		return nil, wrapErr("acquire lease", err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, wrapErr("acquire lease", err)
	}
	effective := ttl
	if t := status.TTL(); t > 0 && t < effective {
		effective = t
	}
	base := time.Now()
	rev, err := acquire(ctx, kv, info.ID, value)
	if err != nil {
		return nil, err
	}
	// The epoch is the revision just taken: written into the value at once, so that readers of the lease see it.
	info.Epoch = rev
	if value, err = json.Marshal(info); err != nil {
		return nil, fmt.Errorf("journal: acquire lease: %w: %w", ErrMalformed, err)
	}
	if rev, err = kv.Update(ctx, leaseKey, value, rev); err != nil {
		// Still ours with the old value (or lost already): a retry takes it back as our own.
		return nil, wrapErr("acquire lease: epoch", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lease{
		c:        c,
		info:     info,
		value:    value,
		interval: effective / 3,
		ctx:      lctx,
		cancel:   cancel,
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		lost:     make(chan struct{}),
		rev:      rev,
		ttl:      effective,
		base:     base,
	}
	l.epoch.Store(info.Epoch)
	if err := c.track(l); err != nil {
		cancel()
		return nil, fmt.Errorf("journal: acquire lease: %w", err)
	}
	c.log.Info("leader lease acquired", zap.String(fieldID, info.ID), zap.Duration("ttl", effective),
		zap.Uint64("epoch", info.Epoch))
	go l.run()
	return l, nil
}

// acquire creates the lease key or takes back our own, returning the revision now held.
func acquire(ctx context.Context, kv jetstream.KeyValue, id string, value []byte) (uint64, error) {
	for range acquireAttempts {
		entry, err := whileNoResponders(ctx, func() (jetstream.KeyValueEntry, error) { return kv.Get(ctx, leaseKey) })
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			rev, err := whileNoResponders(ctx, func() (uint64, error) { return kv.Create(ctx, leaseKey, value) })
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // someone created it meanwhile: look again
			}
			if err != nil {
				return 0, wrapErr("acquire lease: create", err)
			}
			return rev, nil
		}
		if err != nil {
			return 0, wrapErr("acquire lease: get", err)
		}
		holder, err := decodeLeaderInfo(entry.Value())
		if err != nil {
			return 0, fmt.Errorf("journal: acquire lease: %w: holder unreadable: %w", ErrLeaseHeld, err)
		}
		if holder.ID != id {
			return 0, fmt.Errorf("journal: acquire lease: %w: held by %q (%s)", ErrLeaseHeld, holder.ID, holder.URL)
		}
		rev, err := kv.Update(ctx, leaseKey, value, entry.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return 0, wrapErr("acquire lease: take back", err)
		}
		return rev, nil
	}
	return 0, fmt.Errorf("journal: acquire lease: %w: lease key keeps changing", ErrLeaseHeld)
}

// whileNoResponders runs op again, with a growing pause, while it fails because nothing answered, for at most
// noRespondersWait; it then returns op's last result. Nothing answering means nothing was read or stored, so a
// retry is safe. A stream that stays unreachable still fails, with op's error, once the wait is over.
func whileNoResponders[T any](ctx context.Context, op func() (T, error)) (T, error) {
	deadline := time.Now().Add(noRespondersWait)
	pause := 10 * time.Millisecond
	for {
		v, err := op()
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
			return v, err
		}
		if time.Until(deadline) < pause {
			return v, err
		}
		if ctxtime.Sleep(ctx, pause) != nil {
			return v, err
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// leaseKV returns the lease bucket, creating it with ttl when ttl > 0 and it does not exist. The handle is cached in
// the current session, so that a session that replaced a closed one (see Conn.redial) looks it up again.
func (c *Conn) leaseKV(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	s := c.session()
	c.mu.Lock()
	kv := s.leaseKV
	c.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	bucket := leaseBucket(c.stream)
	kv, err := s.js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && ttl > 0 {
		kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:    bucket,
			TTL:       ttl,
			History:   1,
			Replicas:  c.replicas,
			Storage:   jetstream.FileStorage,
			Placement: placement(c.streamTags),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = s.js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	s.leaseKV = kv
	c.mu.Unlock()
	return kv, nil
}

// Leader returns the current lease holder. Errors: ErrNoLeader (no bucket, no key, expired or deleted),
// ErrMalformed (unreadable value), ErrUnavailable, ErrClosed.
func (c *Conn) Leader(ctx context.Context) (LeaderInfo, error) {
	kv, err := c.leaseKV(ctx, 0)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return LeaderInfo{}, fmt.Errorf("journal: leader: %w", ErrNoLeader)
	}
	if err != nil {
		return LeaderInfo{}, wrapErr("leader", err)
	}
	entry, err := kv.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return LeaderInfo{}, fmt.Errorf("journal: leader: %w", ErrNoLeader)
	}
	if err != nil {
		return LeaderInfo{}, wrapErr("leader", err)
	}
	info, err := decodeLeaderInfo(entry.Value())
	if err != nil {
		return LeaderInfo{}, fmt.Errorf("journal: leader: %w", err)
	}
	return info, nil
}

// decodeLeaderInfo parses a lease value; it wraps ErrMalformed when it is not a LeaderInfo with a valid id.
func decodeLeaderInfo(b []byte) (LeaderInfo, error) {
	var info LeaderInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return LeaderInfo{}, fmt.Errorf("%w: lease value: %w", ErrMalformed, err)
	}
	if err := validateID(info.ID); err != nil {
		return LeaderInfo{}, fmt.Errorf("lease value: %w", err)
	}
	return info, nil
}

// validateID checks a node id: 1..256 bytes.
func validateID(id string) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("%w: id length %d, want 1..%d", ErrMalformed, len(id), maxIDLen)
	}
	return nil
}
