package node

import (
	"errors"
	"testing"
	"time"
)

func TestRepeatLimiter(t *testing.T) {
	r := repeatLimiter{every: time.Hour}
	a, b := errors.New("a"), errors.New("b")
	for i, tc := range []struct {
		err  error
		want bool
	}{{a, true}, {a, false}, {b, true}, {b, false}, {a, true}} {
		if got := r.due(tc.err); got != tc.want {
			t.Fatalf("call %d (%v): due = %v, want %v", i, tc.err, got, tc.want)
		}
	}
	r.at = time.Now().Add(-2 * time.Hour)
	if !r.due(a) {
		t.Fatal("the same failure is not due again after its interval")
	}
}
