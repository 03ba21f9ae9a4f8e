package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Lost is closed when the lease was lost to another node (see Err). It is not closed by Close or Conn.Close.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns an error wrapping ErrLeaseLost (naming the new holder when known) once Lost is closed, else nil.
func (l *Lease) Err() error {
	select {
	case <-l.lost:
		return l.err
	default:
		return nil
	}
}

// TTL is how long the key lives without a renewal: the shorter of the TTL asked for and the bucket's.
func (l *Lease) TTL() time.Duration { return l.ttl }

// ValidUntil is the earliest time at which another node may take the lease: one TTL after the last write that kept
// the key ours was sent (the server stores it later, so its expiry comes later still). Until then no other node holds
// it, unless it is lost (see Lost). The time carries a monotonic reading: compare it with time.Now.
func (l *Lease) ValidUntil() time.Time {
	return l.base.Add(time.Duration(l.confirmed.Load()) + l.ttl)
}

// Epoch is the lease's epoch (LeaderInfo.Epoch): raised when the renewer takes the key again after it expired.
func (l *Lease) Epoch() uint64 { return l.epoch.Load() }

// Regains counts how often the renewer found the key expired and created it again. Between the expiry and the
// re-creation another node may have held the lease and written to the log: a holder that serves reads from its own
// state must catch up with the log after each regain.
func (l *Lease) Regains() uint64 { return l.regains.Load() }

// Close stops renewing and, if the lease is still ours, deletes the key (compare-and-set on our revision) so a
// successor does not have to wait for the TTL. ctx bounds the delete. Idempotent; failures are logged only.
func (l *Lease) Close(ctx context.Context) {
	l.closeOnce.Do(func() {
		l.stop()
		l.c.untrack(l)
		select {
		case <-l.lost:
			return
		default:
		}
		kv, err := l.c.leaseKV(ctx, 0)
		if err == nil {
			err = kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev))
		}
		switch {
		case err == nil:
			l.c.log.Info("leader lease released", zap.String(fieldID, l.info.ID))
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			l.c.log.Info("leader lease not released: no longer ours", zap.String(fieldID, l.info.ID))
		default:
			l.c.log.Warn("leader lease not released, it will expire", zap.String(fieldID, l.info.ID), zap.Error(err))
		}
	})
}

// stop ends the renewer and waits for it; called by Close and Conn.Close.
func (l *Lease) stop() {
	l.stopOnce.Do(func() {
		close(l.quit)
		l.cancel()
	})
	<-l.done
}

// run renews the lease every interval until stopped or lost; after a failed renewal it retries sooner, with capped
// exponential backoff.
func (l *Lease) run() {
	defer close(l.done)
	defer l.cancel()
	timer := time.NewTimer(l.interval)
	defer timer.Stop()
	backoff := renewMinBackoff
	for {
		select {
		case <-l.quit:
			return
		case <-timer.C:
		}
		lost, err := l.renew()
		switch {
		case lost != nil:
			l.err = fmt.Errorf("journal: lease: %w", lost)
			l.c.log.Error("leader lease lost", zap.String(fieldID, l.info.ID), zap.Error(lost))
			close(l.lost)
			return
		case err != nil:
			if !errors.Is(err, context.Canceled) {
				l.c.log.Warn("leader lease renewal failed, retrying", zap.Duration("retry_in", backoff), zap.Error(err))
			}
			timer.Reset(backoff)
			backoff = min(2*backoff, l.interval)
		default:
			backoff = renewMinBackoff
			timer.Reset(l.interval)
		}
	}
}

// renew extends the lease once. It returns lost != nil (wrapping ErrLeaseLost) when another node holds the key,
// err != nil for a failure worth retrying, or neither on success.
func (l *Lease) renew() (lost, err error) {
	ctx, cancel := context.WithTimeout(l.ctx, l.interval)
	defer cancel()
	sent := time.Since(l.base) // every write below is sent after this
	// The bucket handle is looked up (from the session's cache) on each renewal: the connection it was found on may
	// have been replaced since (see Conn.redial).
	kv, err := l.c.leaseKV(ctx, 0)
	if err != nil {
		return nil, wrapErr("lease renew", err)
	}
	rev, err := kv.Update(ctx, leaseKey, l.value, l.rev)
	if err == nil {
		l.rev = rev
		l.confirmed.Store(int64(sent))
		return nil, nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil, wrapErr("lease renew", err)
	}
	// The revision is not ours any more: expired (absent), our own update whose ack was lost, or someone else.
	entry, err := kv.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		rev, err := kv.Create(ctx, leaseKey, l.value)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: taken after it expired", ErrLeaseLost), nil
		}
		if err != nil {
			// The create may have landed with its answer lost: the next renewal then finds our value and takes it
			// as its own. Count the regain now, since that path cannot tell.
			l.regains.Add(1)
			return nil, wrapErr("lease re-create", err)
		}
		l.c.log.Warn("leader lease had expired, re-created", zap.String(fieldID, l.info.ID), zap.Uint64("epoch", rev))
		l.rev = rev
		l.regains.Add(1)
		l.confirmed.Store(int64(sent))
		// Another holder may have come and gone: a new epoch, written by this renewal or, if that fails, the next.
		l.info.Epoch = rev
		l.epoch.Store(rev)
		if v, err := json.Marshal(l.info); err == nil {
			l.value = v
		}
		if rev, err := kv.Update(ctx, leaseKey, l.value, l.rev); err == nil {
			l.rev = rev
		}
		return nil, nil
	}
	if err != nil {
		return nil, wrapErr("lease renew check", err)
	}
	if bytes.Equal(entry.Value(), l.value) {
		// Our own write of an earlier attempt, its answer lost: it was sent before this renewal, when exactly is
		// unknown, so it does not move ValidUntil. A write now does.
		l.rev = entry.Revision()
		again := time.Since(l.base)
		if rev, err := kv.Update(ctx, leaseKey, l.value, l.rev); err == nil {
			l.rev = rev
			l.confirmed.Store(int64(again))
		}
		return nil, nil
	}
	if holder, derr := decodeLeaderInfo(entry.Value()); derr == nil {
		return fmt.Errorf("%w: now held by %q (%s)", ErrLeaseLost, holder.ID, holder.URL), nil
	}
	return fmt.Errorf("%w: revision moved to %d", ErrLeaseLost, entry.Revision()), nil
}
