package ctl

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"net/http"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
)

// testCluster is a leader with n followers that hold its state, each served by the real handler.
type testCluster struct {
	leader    *memNode
	lurl      string
	followers []*memNode
	furls     []string
}

func newTestCluster(t *testing.T, followers int, keys int) *testCluster {
	t.Helper()
	c := &testCluster{leader: newMemNode(api.RoleLeader, "l1")}
	c.lurl = serve(t, c.leader, "").URL
	for i := range keys {
		if _, err := c.leader.Write(t.Context(), api.WriteRequest{Op: apply.OpPut, Key: fmt.Appendf(nil, "k%03d", i),
			Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range followers {
		f := newMemNode(api.RoleFollower, fmt.Sprintf("f%d", i+1))
		f.leaderURL = c.lurl
		f.copyFrom(c.leader)
		c.followers = append(c.followers, f)
		c.furls = append(c.furls, serve(t, f, "").URL)
		ids = append(ids, f.id)
	}
	c.leader.setFollowers(time.Second, ids...)
	return c
}

// urls is the --url value: the leader and the given followers (by index).
func (c *testCluster) urls(followers ...int) string {
	u := []string{c.lurl}
	for _, i := range followers {
		u = append(u, c.furls[i])
	}
	return strings.Join(u, ",")
}

func TestRun_Status(t *testing.T) {
	c := newTestCluster(t, 2, 10)
	if _, err := c.leader.CreateSnapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.followers[0].snapSeq = 10

	t.Run("Table", func(t *testing.T) {
		r := runCLI(t, nil, "", "--url", c.urls(0), "status")
		wantCode(t, r, ExitOK)
		lines := strings.Split(r.out, "\n")
		mustContain(t, "header", lines[0], "ID", "ROLE", "STATE", "APPLIED", "LAG", "SNAPSHOT", "LAST SEEN", "URL")
		mustContain(t, "leader row", lines[1], "l1", "leader", "ready", "10", c.lurl)
		mustContain(t, "f1 row", lines[2], "f1", "follower", "ready", "ago", c.furls[0])
		mustContain(t, "f2 row", lines[3], "f2", "follower", "ready", "(unknown)")
		mustContain(t, "stdout", r.out, "newest snapshot: seq 10", "1 stored", "leader epoch: 42")
	})
	t.Run("JSON", func(t *testing.T) {
		r := runCLI(t, nil, "", "--url", c.urls(0), "status", "-o", "json")
		wantCode(t, r, ExitOK)
		var out StatusOutput
		if err := json.Unmarshal([]byte(r.out), &out); err != nil {
			t.Fatal(err)
		}
		if out.Leader != "l1" || out.Epoch != 42 || len(out.Nodes) != 3 || out.NewestSnapshot == nil || out.NewestSnapshot.Seq != 10 {
			t.Fatalf("%+v", out)
		}
		want := []struct{ id, source string }{{"l1", sourceNode}, {"f1", sourceNode}, {"f2", sourceLeader}}
		for i, w := range want {
			if n := out.Nodes[i]; n.ID != w.id || n.Source != w.source {
				t.Fatalf("node %d: %+v, want %v", i, n, w)
			}
		}
		if out.Nodes[1].SnapshotSeq == nil || *out.Nodes[1].SnapshotSeq != 10 || out.Nodes[2].SnapshotSeq != nil {
			t.Fatalf("snapshot seqs: %+v", out.Nodes)
		}
		if out.Nodes[1].LastSeen == nil || out.Nodes[0].LastSeen != nil {
			t.Fatalf("last seen: %+v", out.Nodes)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		gone := closedURL(t)
		r := runCLI(t, nil, "", "--url", c.urls(0)+","+gone, "status")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stdout", r.out, "unreachable", gone, "l1", "f2")
	})
	t.Run("NoLeader", func(t *testing.T) {
		r := runCLI(t, nil, "", "--url", c.furls[0], "status")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stderr", r.err, "add the leader's URL")
		mustContain(t, "stdout", r.out, "f1")
	})
	t.Run("LeaderURLFromFollower", func(t *testing.T) {
		// A server that reports leader_url lets a follower's URL find the whole cluster.
		f := newMemNode(api.RoleFollower, "f9")
		f.override = map[string]http.HandlerFunc{pathStatus: answerJSON(Status{Role: roleFollower, ID: "f9",
			State: stateReady, LeaderURL: c.lurl})}
		r := runCLI(t, nil, "", "--url", serve(t, f, "").URL, "status", "-o", "json")
		wantCode(t, r, ExitOK)
		var out StatusOutput
		if err := json.Unmarshal([]byte(r.out), &out); err != nil || out.Leader != "l1" {
			t.Fatalf("%v %+v", err, out)
		}
	})
	t.Run("FollowerURLFromLeader", func(t *testing.T) {
		// A server that reports each follower's url lets the leader's URL reach every follower.
		l := newMemNode(api.RoleLeader, "l2")
		l.override = map[string]http.HandlerFunc{pathFollowers: answerJSON(followersBody{Followers: []FollowerInfo{
			{ID: "f1", State: stateReady, AppliedSeq: 10, LastSeen: time.Now(), URL: c.furls[0]}}})}
		r := runCLI(t, nil, "", "--url", serve(t, l, "").URL, "status", "-o", "json")
		wantCode(t, r, ExitOK)
		var out StatusOutput
		if err := json.Unmarshal([]byte(r.out), &out); err != nil || len(out.Nodes) != 2 || out.Nodes[1].Source != sourceNode {
			t.Fatalf("%v %+v", err, out)
		}
	})
}

func TestRun_Snapshots(t *testing.T) {
	c := newTestCluster(t, 1, 5)
	t.Run("Empty", func(t *testing.T) {
		r := runCLI(t, nil, "", "--url", c.lurl, "snapshots", "list", "-o", "json")
		wantCode(t, r, ExitOK)
		if strings.TrimSpace(r.out) != `{
  "snapshots": []
}` {
			t.Fatalf("%q", r.out)
		}
	})
	t.Run("CreateThroughFollower", func(t *testing.T) {
		// The leader is found among --url, whichever comes first.
		r := runCLI(t, nil, "", "--url", c.furls[0]+","+c.lurl, "snapshots", "create")
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, "SEQ", "KEYS", "5", "l1")
	})
	t.Run("List", func(t *testing.T) {
		r := runCLI(t, nil, "", "--url", c.lurl, "snapshots", "list")
		wantCode(t, r, ExitOK)
		if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 2 {
			t.Fatalf("%q", r.out)
		}
		r = runCLI(t, nil, "", "--url", c.lurl, "snapshots", "list", "-o", "json")
		var body struct {
			Snapshots []map[string]any `json:"snapshots"`
		}
		if err := json.Unmarshal([]byte(r.out), &body); err != nil || len(body.Snapshots) != 1 ||
			body.Snapshots[0]["sha256"] == nil {
			t.Fatalf("%v %q", err, r.out) // manifests pass through whole
		}
	})
	t.Run("NoLeader", func(t *testing.T) {
		wantCode(t, runCLI(t, nil, "", "--url", c.furls[0], "snapshots", "list"), ExitUnreachable)
	})
}
