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

func TestAdvertiseURL(t *testing.T) {
	for _, tc := range []struct{ server, host, want string }{
		{"http://0.0.0.0:8081", "f1", "http://f1:8081"},
		{"https://[::]:8443", "node-2", "https://node-2:8443"},
		{"http://127.0.0.1:8081", "f1", "http://127.0.0.1:8081"},
		{"http://[::1]:8081", "f1", "http://[::1]:8081"},
		{"http://0.0.0.0:8081", "", "http://0.0.0.0:8081"},
	} {
		if got := advertiseURL(tc.server, tc.host); got != tc.want {
			t.Errorf("advertiseURL(%q, %q) = %q, want %q", tc.server, tc.host, got, tc.want)
		}
	}
}
