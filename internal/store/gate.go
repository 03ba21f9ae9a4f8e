package store

import "sync/atomic"

// gateClosed is the high bit of gate.state; the low bits count calls in progress.
const gateClosed = 1 << 62

// gate lets calls run until it is closed and lets close wait for the calls in progress. A call inside a call (such
// as Get from an Iterate callback) is fine; closing from inside a call deadlocks.
type gate struct {
	state atomic.Int64
	done  chan struct{} // closed when the gate is closed and no call is in progress
}

func newGate() *gate { return &gate{done: make(chan struct{})} }

// enter registers a call; false means the gate is closed and the call must not run.
func (g *gate) enter() bool {
	for {
		s := g.state.Load()
		if s&gateClosed != 0 {
			return false
		}
		if g.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// leave ends a call that enter admitted.
func (g *gate) leave() {
	if g.state.Add(-1) == gateClosed {
		close(g.done)
	}
}

// close stops new calls and waits for the ones in progress. Only the first close returns true.
func (g *gate) close() bool {
	for {
		s := g.state.Load()
		if s&gateClosed != 0 {
			<-g.done
			return false
		}
		if g.state.CompareAndSwap(s, s|gateClosed) {
			if s == 0 {
				close(g.done)
			}
			<-g.done
			return true
		}
	}
}
