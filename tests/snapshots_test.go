//go:build e2e

package tests

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

// writeBatch PUTs n keys "<prefix><i>" on the leader.
func writeBatch(t *testing.T, lc *client, prefix string, n int) {
	t.Helper()
	for i := range n {
		lc.put(t, fmt.Sprintf("%s%05d", prefix, i), fmt.Appendf(nil, "value of %s%d", prefix, i))
	}
}

// TestOnboarding_CorruptNewestSnapshot: when the newest snapshot's data object is corrupted in S3, a new follower
// rejects it and falls back to the older snapshot, then catches up to the leader's exact state.
func TestOnboarding_CorruptNewestSnapshot(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{s3: true})
	ld := c.startLeader()
	lc := ld.api()
	writeBatch(t, lc, "a/", 300)
	older := lc.snapshot(t)
	writeBatch(t, lc, "b/", 300)
	newest := lc.snapshot(t)

	// Overwrite bytes in the middle of the object: same size, so only the checksums can tell.
	path := c.snapshotFile(newest.Seq, "data")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open newest data object: %v", err)
	}
	junk := make([]byte, 64)
	for i := range junk {
		junk[i] = byte(0xA5 ^ i)
	}
	if _, err := f.WriteAt(junk, newest.Bytes/2); err != nil {
		t.Fatalf("corrupt %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
	writeBatch(t, lc, "c/", 100)

	fol := c.startFollower("f1")
	fc := fol.api()
	st, states := fc.waitReady(t)
	checkOnboardingStates(t, states)
	if st.SnapshotSeq != older.Seq {
		t.Fatalf("follower snapshot_seq %d, want the older snapshot %d (the newest, %d, is corrupt)",
			st.SnapshotSeq, older.Seq, newest.Seq)
	}
	waitDigestEqual(t, lc, fc)
}

// TestOnboarding_AfterCompaction (file:// store): with --snapshot-keep=2, three snapshots leave the two newest and
// the log is purged below the oldest retained one. A new follower restores the newest and converges; a follower
// that was offline since before the first snapshot finds its next entry purged and re-bootstraps from the newest
// snapshot (which also shows that the log was compacted: otherwise it would simply resume from the log).
func TestOnboarding_AfterCompaction(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader("--snapshot-keep=2")
	lc := ld.api()
	writeBatch(t, lc, "early/", 100)
	offline := c.startFollower("offline")
	oc := offline.api()
	if st, _ := oc.waitReady(t); st.SnapshotSeq != 0 {
		t.Fatalf("early follower snapshot_seq %d, want 0 (no snapshot exists yet)", st.SnapshotSeq)
	}
	waitDigestEqual(t, lc, oc)
	offline.stop()

	var ms []manifestDoc
	for i := range 3 {
		writeBatch(t, lc, fmt.Sprintf("round%d/", i), 200)
		m := lc.snapshot(t)
		d := lc.digest(t) // no writes in flight: the snapshot is the current state, its checkpoint result the last entry
		if m.CheckpointSeq != d.Seq || m.Digest != d.Digest || m.Keys != d.Keys {
			t.Fatalf("snapshot %+v does not match the leader's state %+v", m, d)
		}
		ms = append(ms, m)
		checkManifestObject(t, c, m)
	}
	list := lc.snapshots(t)
	var got []uint64
	for _, m := range list {
		got = append(got, m.Seq)
	}
	if want := []uint64{ms[2].Seq, ms[1].Seq}; !slices.Equal(got, want) {
		t.Fatalf("GET /v1/snapshots seqs %v, want %v", got, want)
	}
	onDisk := c.snapshotSeqsOnDisk()
	if want := []string{fmt.Sprintf("%020d", ms[1].Seq), fmt.Sprintf("%020d", ms[2].Seq)}; !slices.Equal(onDisk, want) {
		t.Fatalf("snapshot store holds %v, want %v", onDisk, want)
	}
	writeBatch(t, lc, "tail/", 100)

	f := c.startFollower("f1")
	fc := f.api()
	st, _ := fc.waitReady(t)
	if st.SnapshotSeq != ms[2].Seq {
		t.Fatalf("follower snapshot_seq %d, want the newest %d", st.SnapshotSeq, ms[2].Seq)
	}
	waitDigestEqual(t, lc, fc)

	offline.restart(false)
	oc = offline.api()
	st, _ = oc.waitReady(t)
	if st.SnapshotSeq != ms[2].Seq {
		t.Fatalf("follower offline across the compaction: snapshot_seq %d, want the newest %d (its next log entry "+
			"was purged, so it must re-bootstrap)", st.SnapshotSeq, ms[2].Seq)
	}
	waitDigestEqual(t, lc, oc)
}
