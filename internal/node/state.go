package node

import (
	"sync"

	"github.com/replikv/replikv/internal/api"
)

// Node states, as reported in the status object (the API owns the names).
const (
	stateStarting   = api.StateStarting
	stateRestoring  = api.StateRestoring
	stateCatchingUp = api.StateCatchingUp
	stateReady      = api.StateReady
	stateDegraded   = api.StateDegraded
	stateFailed     = api.StateFailed
)

// stateTracker holds the reported state of a node. Any goroutine may read or update it.
type stateTracker struct {
	mu          sync.Mutex
	state       string
	err         string
	progress    api.Progress
	snapshotSeq uint64
	logLastSeq  uint64
}

func (s *stateTracker) set(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	s.err = ""
	if err != nil {
		s.err = err.Error()
	}
	if state != stateRestoring && state != stateCatchingUp {
		s.progress = api.Progress{}
	}
}

func (s *stateTracker) get() (state, errText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.err
}

func (s *stateTracker) setProgress(p api.Progress) {
	s.mu.Lock()
	s.progress = p
	s.mu.Unlock()
}

func (s *stateTracker) setSnapshotSeq(seq uint64) {
	s.mu.Lock()
	s.snapshotSeq = seq
	s.mu.Unlock()
}

// observeLogLast records the log's last sequence if it is newer than the one known.
func (s *stateTracker) observeLogLast(seq uint64) {
	s.mu.Lock()
	if seq > s.logLastSeq {
		s.logLastSeq = seq
	}
	s.mu.Unlock()
}

// status builds the status object for the given role, id and applied sequence.
func (s *stateTracker) status(role, id string, applied uint64) api.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.logLastSeq
	if applied > last {
		last = applied
	}
	st := api.Status{Role: role, ID: id, State: s.state, AppliedSeq: applied, LogLastSeq: last,
		Lag: last - applied, SnapshotSeq: s.snapshotSeq, Error: s.err}
	p := s.progress
	st.Progress = &p
	return st
}

// snapshot returns the snapshot sequence reported in the status.
func (s *stateTracker) snapshot() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotSeq
}
