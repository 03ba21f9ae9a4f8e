package node

import (
	"context"
	"sync"
)

// seqNotifier lets readers wait until the applied sequence reaches a value. The apply loop calls Advance after each
// committed batch; waiters block on a channel that Advance closes and replaces (a broadcast).
type seqNotifier struct {
	mu  sync.Mutex
	seq uint64
	ch  chan struct{}
}

func newSeqNotifier(seq uint64) *seqNotifier {
	return &seqNotifier{seq: seq, ch: make(chan struct{})}
}

// Advance records seq as applied and wakes every waiter. A lower seq than already recorded is ignored.
func (n *seqNotifier) Advance(seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if seq <= n.seq {
		return
	}
	n.seq = seq
	close(n.ch)
	n.ch = make(chan struct{})
}

// Kick wakes every waiter without recording anything, so that WaitFor re-evaluates its target.
func (n *seqNotifier) Kick() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

// Seq returns the last recorded sequence.
func (n *seqNotifier) Seq() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seq
}

// Wait blocks until seq has been applied or ctx ends (returning ctx.Err()).
func (n *seqNotifier) Wait(ctx context.Context, seq uint64) error {
	for {
		n.mu.Lock()
		if n.seq >= seq {
			n.mu.Unlock()
			return nil
		}
		ch := n.ch
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitFor blocks until the recorded sequence reaches target(), which is evaluated again after every Advance and
// Kick, or until ctx ends (returning ctx.Err()). An error from target ends the wait with that error.
func (n *seqNotifier) WaitFor(ctx context.Context, target func() (uint64, error)) error {
	for {
		n.mu.Lock()
		seq, ch := n.seq, n.ch
		n.mu.Unlock()
		// target is read after seq and ch: a change that lowers it and the Kick that follows are never missed.
		t, err := target()
		if err != nil {
			return err
		}
		if seq >= t {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
