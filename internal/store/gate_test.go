package store

import (
	"runtime"
	"testing"
	"time"
)

func TestGate_Close(t *testing.T) {
	t.Run("Idle", func(t *testing.T) {
		g := newGate()
		if !g.close() {
			t.Fatal("first close returned false")
		}
		if g.close() {
			t.Fatal("second close returned true")
		}
		if g.enter() {
			t.Fatal("enter after close succeeded")
		}
	})
	t.Run("WaitsForCalls", func(t *testing.T) {
		g := newGate()
		for range 2 {
			if !g.enter() {
				t.Fatal("enter failed on an open gate")
			}
		}
		closed := make(chan bool)
		go func() { closed <- g.close() }()
		deadline := time.Now().Add(5 * time.Second)
		for g.state.Load()&gateClosed == 0 {
			if time.Now().After(deadline) {
				t.Fatal("close did not start")
			}
			runtime.Gosched()
		}
		if g.enter() {
			t.Fatal("enter succeeded while closing")
		}
		g.leave()
		select {
		case <-closed:
			t.Fatal("close returned with a call in progress")
		default:
		}
		g.leave()
		select {
		case first := <-closed:
			if !first {
				t.Fatal("close returned false")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("close did not return after the last leave")
		}
	})
}
