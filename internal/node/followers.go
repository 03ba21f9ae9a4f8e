package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/journal"
)

const (
	// followerStale is how long a follower counts for synchronous replication after its last heartbeat.
	followerStale = 10 * time.Second
	// followerForget is how long a silent follower stays listed by GET /v1/followers.
	followerForget = 10 * time.Minute
)

type followerState struct {
	hb       journal.Heartbeat
	lastSeen time.Time
}

// followerTable tracks followers from their heartbeats (the leader side of sync replication). Heartbeats arrive on
// the NATS subscription goroutine; writes waiting for replication block in waitReplicated.
type followerTable struct {
	mu      sync.Mutex
	m       map[string]*followerState
	changed chan struct{} // closed and replaced on every update
	now     func() time.Time
}

func newFollowerTable() *followerTable {
	return &followerTable{m: map[string]*followerState{}, changed: make(chan struct{}), now: time.Now}
}

// update records a heartbeat and wakes writes waiting for replication.
func (t *followerTable) update(hb journal.Heartbeat) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[hb.ID]
	if !ok {
		s = &followerState{}
		t.m[hb.ID] = s
	}
	// Heartbeats can be reordered across reconnects: never move a follower's applied seq backwards unless it
	// restarted from scratch (its state then is not ready).
	if hb.Applied < s.hb.Applied && hb.State == stateReady {
		hb.Applied = s.hb.Applied
	}
	s.hb = hb
	s.lastSeen = t.now()
	close(t.changed)
	t.changed = make(chan struct{})
}

// replicated counts ready, recently seen followers that applied seq.
func (t *followerTable) replicated(seq uint64) (int, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	cutoff := t.now().Add(-followerStale)
	for _, s := range t.m {
		if s.hb.State == stateReady && s.hb.Applied >= seq && s.lastSeen.After(cutoff) {
			n++
		}
	}
	return n, t.changed
}

// waitReplicated waits until k followers applied seq or ctx ends; it returns how many had.
func (t *followerTable) waitReplicated(ctx context.Context, seq uint64, k int) (int, bool) {
	for {
		n, ch := t.replicated(seq)
		if n >= k {
			return n, true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			n, _ := t.replicated(seq)
			return n, n >= k
		}
	}
}

// list returns the followers heard from in the last followerForget, sorted by id.
func (t *followerTable) list(logLast uint64) []api.FollowerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	cutoff := t.now().Add(-followerForget)
	out := make([]api.FollowerInfo, 0, len(t.m))
	for id, s := range t.m {
		if s.lastSeen.Before(cutoff) {
			delete(t.m, id)
			continue
		}
		lag := s.hb.Lag
		if logLast > s.hb.Applied && logLast-s.hb.Applied > lag {
			lag = logLast - s.hb.Applied
		}
		out = append(out, api.FollowerInfo{ID: id, State: s.hb.State, AppliedSeq: s.hb.Applied, Lag: lag,
			LastSeen: s.lastSeen.UTC(), URL: s.hb.URL})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
