//go:build compose

package compose

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestStack_EndToEnd runs one stack through its life: it comes up, followers
// join under a write load, a follower is killed and another cut off from the
// backend network, each NATS node dies in turn, the leader restarts and is
// killed, the NATS node leading the log stream is killed a few times
// (envStreamLeaderKills) while the pauses of the writes are measured, and
// compose down removes everything. After each step every acknowledged write
// must be on the leader and the followers, and the followers must converge
// on the leader's digest. The steps share the stack, so the first failure
// ends the run.
func TestStack_EndToEnd(t *testing.T) {
	requireStack(t)
	kills, err := streamLeaderKills()
	if err != nil {
		t.Fatal(err)
	}
	sc := startScenario(t)
	t.Logf("project %s, leader on %s", sc.s.project, sc.s.leaderURL())

	steps := []struct {
		name string
		run  func(t *testing.T, sc *scenario)
	}{
		{"Up", stepUp},
		{"ScaleFollowers", stepScaleFollowers},
		{"KillFollower", stepKillFollower},
		{"PartitionFollower", stepPartitionFollower},
		{"KillNATSNodes", stepKillNATSNodes},
		{"RestartLeader", func(t *testing.T, sc *scenario) { stepLeaderDown(t, sc, false) }},
		{"KillLeader", func(t *testing.T, sc *scenario) { stepLeaderDown(t, sc, true) }},
		// Late: a failure here (a pause of writes) still lets every step before it run.
		{"KillStreamLeader", func(t *testing.T, sc *scenario) { stepKillStreamLeader(t, sc, kills) }},
		{"Down", stepDown},
	}
	for _, step := range steps {
		start := time.Now()
		ok := t.Run(step.name, func(t *testing.T) { step.run(t, sc) })
		acked, failed := sc.led.counts()
		t.Logf("%s: %v; %d writes acknowledged, %d failed so far; failed in this step: %v", step.name,
			time.Since(start).Round(100*time.Millisecond), acked, failed, sc.led.failures())
		if !ok {
			t.FailNow()
		}
	}
}

// startScenario prepares a stack (not started) with what the tests rely on pinned, whatever a user's .env says, plus
// extraEnv, and a scenario over it; a cleanup stops the load, dumps the logs when the test failed and removes the
// stack.
func startScenario(t *testing.T, extraEnv ...string) *scenario {
	t.Helper()
	env := append([]string{"SNAPSHOT_INTERVAL=30s", "LOG_LEVEL=info", "AUTH_TOKEN=", "READ_TOKEN=",
		"COMPOSE_EXTRA_FILES=", "SYNC_FOLLOWERS=0", "S3_ENDPOINT=s3:7070", "S3_INSECURE=true",
		"LEADER_ADVERTISE_URL=http://leader:8080", "FOLLOWER_FAILOVER=manual", "LEASE_TTL=10s"}, extraEnv...)
	s := newStack(t, suite.root, env...)
	sc := newScenario(s)
	t.Cleanup(func() {
		sc.close()
		if t.Failed() {
			s.dumpLogs(t)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := s.down(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left, err := s.leftovers(ctx, nil); err != nil || left != "" {
			t.Errorf("cleanup: left behind: %q (%v)", left, err)
		}
	})
	return sc
}

// stepUp starts the stack with one follower, starts the load and takes
// three snapshots, so that the log is purged below the first and a follower
// joining later must restore from the S3 bucket.
func stepUp(t *testing.T, sc *scenario) {
	sc.composeCmd(t, "up", "-d", "--scale", "follower=1")
	sc.waitLeaderReady(t, 3*time.Minute)
	id := sc.containers(t, "follower", 1)[0]
	sc.waitFollowerReady(t, id, 3*time.Minute)

	sc.startLoad()
	sc.waitAcks(t, 200, time.Minute)
	var last uint64
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		seq, err := sc.c.snapshot(ctx, sc.leaderURL())
		cancel()
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if seq <= last {
			t.Fatalf("snapshot at seq %d after one at %d", seq, last)
		}
		last = seq
		sc.waitAcks(t, 100, time.Minute)
	}
}

// stepScaleFollowers scales to three followers under load: the new ones
// restore from a snapshot, become ready and show up at the leader.
func stepScaleFollowers(t *testing.T, sc *scenario) {
	first := sc.containers(t, "follower", 1)[0]
	sc.composeCmd(t, "up", "-d", "--scale", "follower=3", "--no-recreate")
	ids := sc.containers(t, "follower", 3)
	if ids[0] != first {
		t.Fatalf("follower %s was replaced by %s despite --no-recreate", first, ids[0])
	}
	var want []string
	for _, id := range ids {
		sc.waitFollowerReady(t, id, 4*time.Minute)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		base, err := sc.followerURL(ctx, id)
		var st status
		if err == nil {
			st, err = sc.c.status(ctx, base)
		}
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if st.Role != "follower" || st.ID == "" {
			t.Fatalf("follower %s status %+v", id, st)
		}
		if id != first && st.SnapshotSeq == 0 {
			t.Errorf("follower %s joined without a snapshot (snapshot_seq 0); the log was purged, it must restore", id)
		}
		want = append(want, st.ID)
	}
	poll(t, time.Minute, "leader lists the followers", func(ctx context.Context) error {
		fs, err := sc.c.followers(ctx, sc.leaderURL())
		if err != nil {
			return err
		}
		var got []string
		for _, f := range fs {
			if f.State == "ready" {
				got = append(got, f.ID)
			}
		}
		for _, id := range want {
			if !slices.Contains(got, id) {
				return fmt.Errorf("ready followers %v lack %s", got, id)
			}
		}
		return nil
	})
	sc.settle(t)
}

// stepKillFollower kills a follower under load and starts it again: it
// resumes from its own data (same snapshot) and converges.
func stepKillFollower(t *testing.T, sc *scenario) {
	id := sc.containers(t, "follower", 3)[1]
	before := sc.followerStatus(t, id)
	sc.dockerCmd(t, "kill", id)
	sc.waitAcks(t, 100, time.Minute)
	sc.dockerCmd(t, "start", id)
	sc.waitFollowerReady(t, id, 3*time.Minute)
	after := sc.followerStatus(t, id)
	if after.ID != before.ID || after.SnapshotSeq != before.SnapshotSeq {
		t.Errorf("follower %s was %+v before the kill, %+v after: it did not resume from its own data", id, before, after)
	}
	sc.settle(t)
}

// stepPartitionFollower cuts a follower off the backend network (NATS, S3):
// its HTTP port still answers eventual reads from local state, strong reads
// time out with 504; once reconnected it converges.
func stepPartitionFollower(t *testing.T, sc *scenario) {
	id := sc.containers(t, "follower", 3)[2]
	ctx, cancel := context.WithTimeout(t.Context(), sc.docker)
	backend, err := sc.s.network(ctx, "backend")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	key, _, ok := sc.led.anyAcked()
	if !ok {
		t.Fatal("no acknowledged write yet")
	}
	sc.dockerCmd(t, "network", "disconnect", backend, id)
	sc.waitAcks(t, 100, time.Minute)

	ctx, cancel = context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	base, err := sc.followerURL(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sc.c.get(ctx, base, key, nil); err != nil {
		t.Fatalf("eventual read while partitioned: %v", err)
	}
	if _, err := sc.c.digest(ctx, base); err != nil {
		t.Fatalf("eventual digest while partitioned: %v", err)
	}
	start := time.Now()
	_, _, err = sc.c.get(ctx, base, key, url.Values{"consistency": {"strong"}, "timeout": {"2s"}})
	expectStatus(t, "strong read while partitioned", err, 504, "timeout")
	if d := time.Since(start); d < 1500*time.Millisecond || d > 20*time.Second {
		t.Errorf("strong read with timeout=2s answered after %v", d)
	}

	sc.dockerCmd(t, "network", "connect", backend, id)
	sc.waitFollowerReady(t, id, 3*time.Minute)
	sc.newWriteReachesFollowers(t, "marker/partition")
	sc.settle(t)
}

// stepKillNATSNodes kills the NATS nodes one at a time under load: writes
// go on (the stream has three replicas) and nothing acknowledged is lost
// while the node is down; then the node starts again. Killing each node in
// turn makes sure the stream's leader and the server the leader is
// connected to are among the victims. One fault at a time, as an R3 stream
// survives: a node dies only once every replica is current again (a
// restarted one catches up first), as in an operator's rolling restart.
func stepKillNATSNodes(t *testing.T, sc *scenario) {
	mon := sc.startNATSMonitor(t)
	for _, svc := range []string{"nats1", "nats2", "nats3"} {
		poll(t, 3*time.Minute, "log stream healthy before "+svc+" dies", func(ctx context.Context) error {
			_, err := mon.healthy(ctx)
			return err
		})
		id := sc.containers(t, svc, 1)[0]
		sc.dockerCmd(t, "kill", id)
		sc.waitAcks(t, 300, 2*time.Minute)
		sc.stopLoad(t)
		seq := sc.verifyLeader(t)
		ids := sc.containers(t, "follower", 3)
		sc.verifyFollower(t, ids[0], seq)
		sc.converge(t, 3*time.Minute)
		sc.dockerCmd(t, "start", id)
		sc.startLoad()
		// Writes with the node back; by then it has rejoined the cluster
		// (it needs a second or two) before the next node goes down.
		sc.waitAcks(t, 500, 2*time.Minute)
		t.Logf("%s killed and restarted; failed writes so far: %v", svc, sc.led.failures())
	}
	sc.settle(t)
}

// stepLeaderDown restarts the leader container (docker restart, or docker
// kill + start) under load: every acknowledged write survives and the
// followers keep following.
func stepLeaderDown(t *testing.T, sc *scenario, kill bool) {
	id := sc.containers(t, "leader", 1)[0]
	if kill {
		sc.dockerCmd(t, "kill", id)
		sc.dockerCmd(t, "start", id)
	} else {
		sc.dockerCmd(t, "restart", id)
	}
	sc.waitLeaderReady(t, 3*time.Minute)
	sc.waitAcks(t, 100, 2*time.Minute)
	sc.stopLoad(t)
	sc.verifyLeader(t)
	if kill {
		sc.newWriteReachesFollowers(t, "marker/kill-leader")
	} else {
		sc.newWriteReachesFollowers(t, "marker/restart-leader")
	}
	sc.startLoad()
	sc.settle(t)
}

// stepDown stops the load, checks the final state once more and runs
// scripts/compose.sh down: no container, network or volume (named or
// anonymous) of the project may be left.
func stepDown(t *testing.T, sc *scenario) {
	sc.stopLoad(t)
	seq := sc.verifyLeader(t)
	for _, id := range sc.containers(t, "follower", 3) {
		sc.verifyFollower(t, id, seq)
	}
	sc.converge(t, 3*time.Minute)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	volumes, err := sc.s.volumesOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(volumes) < 8 { // nats1-3, s3, leader, three followers
		t.Fatalf("volumes before down: %v, want at least 8", volumes)
	}
	if _, err := sc.s.run(ctx, filepath.Join(sc.s.root, "scripts", "compose.sh"), "down"); err != nil {
		t.Fatal(err)
	}
	left, err := sc.s.leftovers(ctx, volumes)
	if err != nil {
		t.Fatal(err)
	}
	if left != "" {
		t.Fatalf("left behind after down: %s", left)
	}
}
