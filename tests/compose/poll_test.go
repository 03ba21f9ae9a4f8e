//go:build compose

package compose

import (
	"context"
	"errors"
	"testing"
	"time"
)

// pollInterval is the pause between two checks of a polled condition.
const pollInterval = 250 * time.Millisecond

// permanentError stops a poll at once: the condition can no longer become
// true (e.g. two nodes at the same sequence with different digests).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// permanent marks err as final for poll.
func permanent(err error) error { return permanentError{err} }

// poll calls cond until it returns nil, failing the test with the last error
// when timeout passes first or cond returns a permanent error.
func poll(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	start := time.Now()
	var last error
	for {
		err := cond(ctx)
		if err == nil {
			return
		}
		var perm permanentError
		if errors.As(err, &perm) {
			t.Fatalf("%s: %v", what, perm.err)
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not done after %v: %v", what, time.Since(start).Round(time.Second), last)
		case <-tick.C:
		}
	}
}
