//go:build e2e

package tests

import (
	"fmt"
	"net/http"
	"testing"
)

// TestLeader_KillRestart: SIGKILL the leader mid-load and restart it on the same data dir and NATS port. Every write
// the load saw acknowledged survives with its value and version (or a later write's), the follower reconnects and
// converges, and the leader takes writes again.
func TestLeader_KillRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	// The embedded NATS server dies with the leader. Its file store buffers new messages in process memory and
	// writes them out asynchronously unless sync_interval is "always", so without it a message JetStream already
	// acknowledged (and the leader answered 200 for) could vanish with the SIGKILL. The contract's durability
	// promise for a killed leader therefore needs --nats-sync-interval=always.
	ld := c.startLeader("--nats-sync-interval=always")
	f := c.startFollower("f1")
	lg := startLoad(t, ld.api(), loadOpts{workers: 6})
	lg.waitAcked(t, 2000)
	ld.kill()
	ledger := lg.stop()
	t.Logf("killed the leader after %d acknowledged writes (%d unknown outcomes)", ledger.acked, ledger.failed)

	ld.restart(true, "--nats-listen="+hostPort(t, c.natsURL))
	if got := ld.NATSURL(); hostPort(t, got) != hostPort(t, c.natsURL) {
		t.Fatalf("restarted NATS on %s, want %s", got, c.natsURL)
	}
	lc := ld.api()
	lc.waitReady(t)
	verifyLoad(t, lc, ledger)

	fc := f.api()
	fc.waitReady(t)
	waitDigestEqual(t, lc, fc)
	verifyLoad(t, fc, ledger)

	w := lc.put(t, "after/restart", []byte("ok"))
	r := fc.must(t, http.MethodGet, fmt.Sprintf("%s?min_seq=%d", kvPath("after/restart"), w.Version), nil, nil, http.StatusOK)
	if string(r.Body) != "ok" {
		t.Fatalf("follower read after the restart: %q", r.Body)
	}
}

// TestFollower_KillRestart: SIGKILL a follower mid-load and restart it. It resumes from its own store (it does not
// restore again, although a newer snapshot exists by then) and converges to the leader's digest.
func TestFollower_KillRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader()
	lc := ld.api()
	lg := startLoad(t, lc, loadOpts{})
	lg.waitAcked(t, 800)
	s1 := lc.snapshot(t)

	f := c.startFollower("f1")
	fc := f.api()
	st, _ := fc.waitReady(t)
	if st.SnapshotSeq != s1.Seq {
		t.Fatalf("follower restored snapshot_seq %d, want the only snapshot %d", st.SnapshotSeq, s1.Seq)
	}
	lg.waitAcked(t, lg.acked.Load()+800)
	f.kill()
	lg.waitAcked(t, lg.acked.Load()+800)
	s2 := lc.snapshot(t) // a restart that started over would restore this one
	if s2.Seq <= s1.Seq {
		t.Fatalf("second snapshot seq %d not after the first %d", s2.Seq, s1.Seq)
	}

	f.restart(false)
	fc = f.api()
	st, states := fc.waitReady(t)
	for _, s := range states {
		if s == "restoring" {
			t.Fatalf("restarted follower went through restoring (states %v): it started over", states)
		}
	}
	if st.SnapshotSeq != s1.Seq {
		t.Fatalf("restarted follower snapshot_seq %d, want %d (unchanged; %d would mean it restored again)",
			st.SnapshotSeq, s1.Seq, s2.Seq)
	}
	ledger := lg.stop()
	ledger.requireDefinite(t)
	waitDigestEqual(t, lc, fc)
	verifyLoad(t, fc, ledger)
}
