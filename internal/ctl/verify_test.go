package ctl

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
)

func TestRun_Verify(t *testing.T) {
	t.Run("Equal", func(t *testing.T) {
		c := newTestCluster(t, 2, 20)
		r := runCLI(t, nil, "", "--url", c.urls(0, 1), "verify")
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, "reference", "all 3 node(s) equal at seq 20")
		if n := strings.Count(r.out, " ok "); n != 2 {
			t.Fatalf("%d ok rows:\n%s", n, r.out)
		}
	})
	t.Run("WaitsForMinSeq", func(t *testing.T) {
		// f1 is behind: verify asks it for its digest at the leader's sequence, and it answers once there.
		c := newTestCluster(t, 1, 20)
		if _, err := c.leader.Write(t.Context(), api.WriteRequest{Op: apply.OpPut, Key: []byte("late"),
			Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(100 * time.Millisecond) // the follower catches up while verify waits on it
			c.followers[0].copyFrom(c.leader)
		}()
		r := runCLI(t, nil, "", "--url", c.urls(0), "verify", "-o", "json")
		wantCode(t, r, ExitOK)
		var out VerifyOutput
		if err := json.Unmarshal([]byte(r.out), &out); err != nil {
			t.Fatal(err)
		}
		if out.Result != "ok" || out.Seq != 21 || out.Nodes[1].Seq != 21 || out.Nodes[1].Result != resultOK {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("Mismatch", func(t *testing.T) {
		c := newTestCluster(t, 2, 20)
		c.followers[1].digest = strings.Repeat("ab", 32)
		r := runCLI(t, nil, "", "--url", c.urls(0, 1), "verify")
		wantCode(t, r, ExitMismatch)
		mustContain(t, "stdout", r.out, "MISMATCH", "abababab")
		mustContain(t, "stderr", r.err, "digest mismatch at seq 20: f2")
		r = runCLI(t, nil, "", "--url", c.urls(0, 1), "verify", "-o", "json")
		wantCode(t, r, ExitMismatch)
		var out VerifyOutput
		if err := json.Unmarshal([]byte(r.out), &out); err != nil {
			t.Fatal(err)
		}
		if out.Result != "mismatch" || out.Nodes[2].Result != resultMismatch || out.Nodes[1].Result != resultOK {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("MismatchBeatsUnreachable", func(t *testing.T) {
		c := newTestCluster(t, 2, 20)
		c.followers[1].digest = strings.Repeat("ab", 32)
		r := runCLI(t, nil, "", "--url", c.urls(0, 1)+","+closedURL(t), "verify")
		wantCode(t, r, ExitMismatch)
	})
	t.Run("Unreachable", func(t *testing.T) {
		c := newTestCluster(t, 2, 20)
		gone := closedURL(t)
		r := runCLI(t, nil, "", "--url", c.urls(0, 1)+","+gone, "verify")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stdout", r.out, "unreachable", gone)
	})
	t.Run("FollowerURLUnknown", func(t *testing.T) {
		c := newTestCluster(t, 2, 20)
		r := runCLI(t, nil, "", "--url", c.urls(0), "verify")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stdout", r.out, "f2", "unchecked: URL unknown: add it to --url")
	})
	t.Run("FollowerListFails", func(t *testing.T) {
		c := newTestCluster(t, 1, 5)
		c.leader.override = map[string]http.HandlerFunc{pathFollowers: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"internal error","code":"internal"}`, http.StatusInternalServerError)
		}}
		r := runCLI(t, nil, "", "--url", c.urls(0), "verify", "-o", "json")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stderr", r.err, "follower list")
	})
	t.Run("NoLeader", func(t *testing.T) {
		c := newTestCluster(t, 1, 1)
		wantCode(t, runCLI(t, nil, "", "--url", c.furls[0], "verify"), ExitUnreachable)
	})
	t.Run("Inconclusive", func(t *testing.T) {
		// Writes go on: every answer is further than the last, never at one sequence.
		c := newTestCluster(t, 1, 20)
		c.leader.step, c.followers[0].step = 1, 2
		r := runCLI(t, nil, "", "--url", c.urls(0), "verify", "--rounds", "3", "-o", "json")
		wantCode(t, r, ExitInconclusive)
		var out VerifyOutput
		if err := json.Unmarshal([]byte(r.out), &out); err != nil {
			t.Fatal(err)
		}
		if out.Rounds != 3 || out.Result != "inconclusive" || out.Nodes[1].Result != resultInconclusive {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("BadFlags", func(t *testing.T) {
		c := newTestCluster(t, 0, 1)
		wantCode(t, runCLI(t, nil, "", "--url", c.lurl, "verify", "--rounds", "0"), ExitUsage)
	})
}
