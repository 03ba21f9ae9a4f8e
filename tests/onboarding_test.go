//go:build e2e

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// onboardingOrder is the order of states a joining follower may pass before it is first ready.
var onboardingOrder = []string{"starting", "restoring", "catching_up", "ready"}

// checkOnboardingStates fails unless states (distinct states in the order seen) follow onboardingOrder.
func checkOnboardingStates(t *testing.T, states []string) {
	t.Helper()
	last := -1
	for _, s := range states {
		i := slices.Index(onboardingOrder, s)
		if i < 0 || i < last {
			t.Fatalf("onboarding states %v: %q out of order (want a subsequence of %v)", states, s, onboardingOrder)
		}
		last = i
	}
}

// TestOnboarding_UnderLoad: with snapshots in S3, a follower joining under a live write load restores the newest
// snapshot, catches up and converges to the leader's exact state.
func TestOnboarding_UnderLoad(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{s3: true})
	ld := c.startLeader()
	lc := ld.api()
	lg := startLoad(t, lc, loadOpts{})
	lg.waitAcked(t, 1000)
	s1 := lc.snapshot(t)
	lg.waitAcked(t, lg.acked.Load()+1000)
	s2 := lc.snapshot(t)
	if s2.Seq <= s1.Seq {
		t.Fatalf("snapshots out of order: %d then %d", s1.Seq, s2.Seq)
	}
	checkManifestObject(t, c, s2)
	list := lc.snapshots(t)
	if len(list) != 2 || list[0].Seq != s2.Seq || list[1].Seq != s1.Seq {
		t.Fatalf("GET /v1/snapshots: %+v, want seqs [%d %d] newest first", list, s2.Seq, s1.Seq)
	}
	if st := lc.status(t); st.SnapshotSeq != s2.Seq {
		t.Fatalf("leader status snapshot_seq %d, want the last snapshot %d", st.SnapshotSeq, s2.Seq)
	}
	lg.waitAcked(t, lg.acked.Load()+500)

	f := c.startFollower("joiner")
	fc := f.api()
	st, states := fc.waitReady(t)
	t.Logf("joining follower states: %v", states)
	checkOnboardingStates(t, states)
	if st.SnapshotSeq != s2.Seq {
		t.Fatalf("follower snapshot_seq %d, want the newest snapshot %d", st.SnapshotSeq, s2.Seq)
	}
	lg.waitAcked(t, lg.acked.Load()+500)
	ledger := lg.stop()
	ledger.requireDefinite(t)
	waitDigestEqual(t, lc, fc)
	verifyLoad(t, fc, ledger)
}

// checkManifestObject checks the stored manifest.json against the one the API returned (the snapshot store
// layout of the contract).
func checkManifestObject(t *testing.T, c *cluster, m manifestDoc) {
	t.Helper()
	path := c.snapshotFile(m.Seq, "manifest.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("manifest of snapshot %d not where the layout says: %v", m.Seq, err)
	}
	var stored manifestDoc
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatalf("stored manifest %s: %v", path, err)
	}
	if stored != m {
		t.Fatalf("stored manifest %+v differs from the API's %+v", stored, m)
	}
	fi, err := os.Stat(c.snapshotFile(m.Seq, "data"))
	if err != nil {
		t.Fatalf("data of snapshot %d not where the layout says: %v", m.Seq, err)
	}
	if fi.Size() != m.Bytes {
		t.Fatalf("data object of snapshot %d has %d bytes, manifest says %d", m.Seq, fi.Size(), m.Bytes)
	}
}

// TestOnboarding_ThreeAtOnce: three followers onboarding at the same time from S3 under load all become ready and
// converge to the leader's digest.
func TestOnboarding_ThreeAtOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{s3: true})
	ld := c.startLeader()
	lc := ld.api()
	lg := startLoad(t, lc, loadOpts{workers: 3})
	lg.waitAcked(t, 1000)
	s := lc.snapshot(t)

	var fs []*proc
	for i := range 3 {
		f := c.newFollower(fmt.Sprintf("f%d", i+1))
		f.start(false)
		fs = append(fs, f)
	}
	for _, f := range fs {
		st, states := f.api().waitReady(t)
		checkOnboardingStates(t, states)
		if st.SnapshotSeq != s.Seq {
			t.Fatalf("%s: snapshot_seq %d, want %d", f.name, st.SnapshotSeq, s.Seq)
		}
	}
	ledger := lg.stop()
	for _, f := range fs {
		waitDigestEqual(t, lc, f.api())
		verifyLoad(t, f.api(), ledger)
	}
}

// TestOnboarding_CatchUpMirror: with --catchup-mirror on the leader, a follower joining under load restores the
// newest snapshot, catches up from the log's mirror, then follows the log itself, and converges to the leader's
// exact state.
func TestOnboarding_CatchUpMirror(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader("--catchup-mirror")
	lc := ld.api()
	lg := startLoad(t, lc, loadOpts{})
	lg.waitAcked(t, 1000)
	s := lc.snapshot(t)
	lg.waitAcked(t, lg.acked.Load()+2000) // the joiner starts far more than --ready-lag behind the snapshot

	f := c.startFollower("joiner")
	fc := f.api()
	st, states := fc.waitReady(t)
	checkOnboardingStates(t, states)
	if st.SnapshotSeq != s.Seq {
		t.Fatalf("follower snapshot_seq %d, want %d", st.SnapshotSeq, s.Seq)
	}
	lg.waitAcked(t, lg.acked.Load()+500)
	ledger := lg.stop()
	ledger.requireDefinite(t)
	waitDigestEqual(t, lc, fc)
	verifyLoad(t, fc, ledger)
	out, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"catching up from the log's mirror", "caught up from the mirror; following the log"} {
		if !strings.Contains(string(out), `"msg":"`+msg+`"`) {
			t.Fatalf("the follower did not log %q", msg)
		}
	}
	if strings.Contains(string(out), "instead of its mirror") {
		t.Fatal("the follower fell back from the mirror to the log")
	}
}
