package ctl

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
)

func TestRun_Promote(t *testing.T) {
	f := newMemNode(api.RoleFollower, "f1")
	srv := serve(t, f, "")
	r := runCLI(t, nil, "", "--url", srv.URL, "promote", "--wait", "45s")
	if r.code != 0 || !strings.Contains(r.out, "f1") || !strings.Contains(r.out, "leader") ||
		!strings.Contains(r.out, "42") {
		t.Fatalf("promote: code %d, out %q, err %q", r.code, r.out, r.err)
	}
	if f.promoteTimeout != 45*time.Second {
		t.Fatalf("the server was asked to wait %v, want 45s", f.promoteTimeout)
	}
	r = runCLI(t, nil, "", "--url", srv.URL, "-o", "json", "promote")
	if r.code != 0 || !strings.Contains(r.out, `"role":"leader"`) {
		t.Fatalf("promote -o json: code %d, out %q", r.code, r.out)
	}

	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("x: %w: held by %q", api.ErrLeaderAlive, "leader-1"), "leader_alive"},
		{fmt.Errorf("x: %w: catching_up", api.ErrNotEligible), "not_eligible"},
		{api.ErrFailoverOff, "failover_off"},
	} {
		g := newMemNode(api.RoleFollower, "f2")
		g.promoteErr = tc.err
		r := runCLI(t, nil, "", "--url", serve(t, g, "").URL, "promote")
		if r.code != 1 || !strings.Contains(r.err, tc.code) {
			t.Fatalf("promote refused with %v: code %d, err %q; want 1 naming %s", tc.err, r.code, r.err, tc.code)
		}
	}
	if r := runCLI(t, nil, "", "--url", srv.URL, "promote", "--wait", "11m"); r.code != 2 {
		t.Fatalf("promote --wait 11m: code %d, want 2", r.code)
	}
	// The leader binary has no promotion endpoint.
	l := newMemNode(api.RoleLeader, "l1")
	if r := runCLI(t, nil, "", "--url", serve(t, l, "").URL, "promote"); r.code == 0 {
		t.Fatalf("promote on a leader binary: code 0, out %q", r.out)
	}
}
