package node

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

// scrape returns the value of the metric name (without labels other than the node's role) that the node at url
// exports on /metrics, and 0 when it exports none.
func scrape(t testing.TB, url, name string) float64 {
	t.Helper()
	code, b, _ := do(t, http.MethodGet, url+"/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", url, code)
	}
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return 0
}

// TestLeader_SnapshotAtCheckpoint: a snapshot is taken at a checkpoint mark the leader publishes (its sequence is the
// snapshot's), and its manifest names the checkpoint result the leader published after it, which carries the
// snapshot's key count and digest; neither entry changes the state. A second request with nothing written since
// returns the same snapshot and publishes nothing.
func TestLeader_SnapshotAtCheckpoint(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "k", 40)
	var before digestBody
	getJSON(t, lurl+"/v1/digest", &before)
	m := snapshotNow(t, lurl)
	mark, result := before.Seq+1, before.Seq+2 // the log: 40 writes, then the snapshot's two entries
	if m.Seq != mark || m.CheckpointSeq != result || m.Keys != before.Keys || m.Digest != before.Digest {
		t.Fatalf("manifest %+v; want seq %d (the mark after 40 writes), checkpoint_seq %d, the state's %d keys and "+
			"digest %s", m, mark, result, before.Keys, before.Digest)
	}
	jc := connectJournal(t, l.NATSURL())
	for seq, want := range map[uint64]apply.Checkpoint{
		mark:   {Kind: apply.CheckpointMark},
		result: {Kind: apply.CheckpointResult, Seq: mark, Keys: m.Keys},
	} {
		msg, err := jc.Entry(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		e, err := apply.DecodeEntry(msg.Data)
		if err != nil || e.Op != apply.OpCheckpoint || e.Checkpoint.Kind != want.Kind || e.Checkpoint.Seq != want.Seq ||
			e.Checkpoint.Keys != want.Keys || want.Kind == apply.CheckpointResult && e.Checkpoint.DigestHex() != m.Digest {
			t.Fatalf("log entry %d = %+v, %v; want checkpoint %+v with digest %s", seq, e, err, want, m.Digest)
		}
	}
	var after digestBody
	getJSON(t, lurl+"/v1/digest", &after)
	if after.Seq != result || after.Keys != before.Keys || after.Digest != before.Digest {
		t.Fatalf("digest after the snapshot %+v, want the same state at seq %d (was %+v)", after, result, before)
	}
	if again := snapshotNow(t, lurl); again.Seq != m.Seq || again.CheckpointSeq != m.CheckpointSeq {
		t.Fatalf("second snapshot with nothing written %+v, want the first (seq %d)", again, m.Seq)
	}
	if info, err := jc.Info(t.Context()); err != nil || info.LastSeq != result {
		t.Fatalf("log %+v, %v after a second snapshot of the same state; want it to end at %d", info, err, result)
	}
	if l.snapshotDue() {
		t.Fatal("a scheduled snapshot would be taken with nothing written since the last one")
	}
}

// TestFollower_VerifiesCheckpointsUnderLoad: while writers keep the log busy, each snapshot's checkpoint is verified
// by a follower that applies it: the leader's digest at the mark (its snapshot view) equals the follower's own at the
// same sequence, although both took their views between writes applied in the same batches.
func TestFollower_VerifiesCheckpointsUnderLoad(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "pre", 100)
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), "--id", "verifier")
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				put(t, lurl, fmt.Sprintf("load/%d/%d", w, i%50), strconv.Itoa(i))
			}
		}()
	}
	var last snapshots.Manifest
	for range 3 {
		last = snapshotNow(t, lurl)
	}
	stop.Store(true)
	wg.Wait()
	eventually(t, 20*time.Second, func() string {
		if v := scrape(t, furl, "replikv_checkpoint_verified_seq"); v != float64(last.Seq) {
			return fmt.Sprintf("last verified checkpoint %v, want %d", v, last.Seq)
		}
		return ""
	})
	if v, m := scrape(t, furl, "replikv_checkpoint_verified_total"), scrape(t, furl, "replikv_checkpoint_mismatch_total"); v < 1 || m != 0 {
		t.Fatalf("checkpoints verified %v, mismatched %v; want at least 1 and none", v, m)
	}
	digestsEqual(t, lurl, furl, 20*time.Second)
}

// TestFollower_CheckpointMismatchRebootstraps: a key written into a stopped follower's store behind the log's back
// goes unnoticed by everything else (the follower resumes and reports ready); the next checkpoint finds the state
// different from the leader's: the follower counts the mismatch, reports degraded with both sequences and both
// digests, then re-bootstraps from the snapshot the checkpoint vouches for and ends with the leader's digest.
func TestFollower_CheckpointMismatchRebootstraps(t *testing.T) {
	snapDir, fdir := t.TempDir(), t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "k", 50)
	f := startFollower(t, fdir, snapDir, l.NATSURL(), "--id", "edited")
	digestsEqual(t, lurl, base(f.HTTPAddr()), 20*time.Second)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := store.Open(store.StoreDir(fdir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Apply(db.Applied(), []apply.Mutation{{Key: []byte("intruder"), Value: []byte("x"), Version: 1}},
		apply.Mark{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	f = startFollower(t, fdir, snapDir, l.NATSURL(), "--id", "edited")
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	var edited digestBody
	getJSON(t, furl+"/v1/digest", &edited)
	if edited.Keys != 51 {
		t.Fatalf("edited follower holds %d keys, want 51", edited.Keys)
	}

	m := snapshotNow(t, lurl)
	st := waitState(t, furl, stateDegraded, 20*time.Second)
	for _, s := range []string{fmt.Sprintf("checkpoint seq %d", m.Seq), fmt.Sprintf("result at seq %d", m.CheckpointSeq),
		m.Digest, edited.Digest, "vouches"} {
		mustContain(t, st.Error, s)
	}
	if n := scrape(t, furl, "replikv_checkpoint_mismatch_total"); n != 1 {
		t.Fatalf("replikv_checkpoint_mismatch_total %v, want 1", n)
	}
	st = waitState(t, furl, stateReady, 30*time.Second)
	if st.SnapshotSeq != m.Seq {
		t.Fatalf("snapshot_seq %d after the re-bootstrap, want the vouched snapshot %d", st.SnapshotSeq, m.Seq)
	}
	digestsEqual(t, lurl, furl, 20*time.Second)
	if n := scrape(t, furl, "replikv_checkpoint_mismatch_total"); n != 1 {
		t.Fatalf("replikv_checkpoint_mismatch_total %v after the re-bootstrap, want still 1", n)
	}
}

// TestFollower_CraftedSnapshot: a format-valid snapshot with a self-consistent manifest (no entry_mark) but another
// state, planted in the snapshot store, never leaves a follower ready with a digest other than the leader's. Planted
// at a checkpoint (replacing the leader's snapshot there, its manifest naming the leader's checkpoint result), the log
// contradicts it and the follower restores the older snapshot. Planted between checkpoints, where the log says
// nothing about it, the follower restores it, and the next checkpoint finds it out: degraded, then a re-bootstrap from
// the snapshot that checkpoint vouches for.
func TestFollower_CraftedSnapshot(t *testing.T) {
	setup := func(t *testing.T) (l *Leader, lurl, snapDir string, plant func(seq uint64, keys int) snapshots.Manifest) {
		snapDir = t.TempDir()
		l = startLeader(t, t.TempDir(), snapDir)
		lurl = base(l.HTTPAddr())
		waitState(t, lurl, stateReady, 20*time.Second)
		log := testlog.New(t)
		st, err := snapshots.Open("file://"+snapDir, snapshots.S3Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		repo := snapshots.NewRepo(st, "REPLIKV", log)
		return l, lurl, snapDir, func(seq uint64, keys int) snapshots.Manifest {
			m, err := repo.Create(t.Context(), keysSource{seq: seq, n: keys}, "mallory")
			if err != nil {
				t.Fatal(err)
			}
			if m.EntryMark != "" || m.CheckpointSeq != 0 {
				t.Fatalf("planted manifest %+v has an entry mark or a checkpoint", m)
			}
			return m
		}
	}

	t.Run("AtCheckpoint", func(t *testing.T) {
		l, lurl, snapDir, plant := setup(t)
		putMany(t, lurl, "a", 50)
		older := snapshotNow(t, lurl)
		putMany(t, lurl, "b", 20)
		newest := snapshotNow(t, lurl)
		putMany(t, lurl, "c", 5)
		if err := os.RemoveAll(filepath.Dir(manifestPath(snapDir, newest.Seq))); err != nil {
			t.Fatal(err)
		}
		crafted := plant(newest.Seq, 60)
		crafted.CheckpointSeq = newest.CheckpointSeq // point at the leader's checkpoint, as a careful forger would
		writeManifest(t, snapDir, crafted)
		if got := readManifest(t, snapDir, newest.Seq); got.Digest == newest.Digest || got.CheckpointSeq != newest.CheckpointSeq {
			t.Fatalf("planted manifest %+v", got)
		}

		log, logs := observedLogger(t)
		f := startFollowerLog(t, log, t.TempDir(), snapDir, l.NATSURL(), "--id", "onboarding")
		furl := base(f.HTTPAddr())
		st := waitState(t, furl, stateReady, 30*time.Second)
		if st.SnapshotSeq != older.Seq {
			t.Fatalf("snapshot_seq %d, want the older snapshot %d (the log contradicts the one at %d)", st.SnapshotSeq,
				older.Seq, newest.Seq)
		}
		if logs.FilterMessageSnippet("contradicts the log's checkpoint").Len() == 0 {
			t.Fatal("the follower did not say why it refused the planted snapshot")
		}
		digestsEqual(t, lurl, furl, 20*time.Second)
		// Catching up from the older snapshot, it applied the newest checkpoint and verified it.
		eventually(t, 20*time.Second, func() string {
			if v := scrape(t, furl, "replikv_checkpoint_verified_seq"); v != float64(newest.Seq) {
				return fmt.Sprintf("last verified checkpoint %v, want %d", v, newest.Seq)
			}
			return ""
		})
	})

	t.Run("BetweenCheckpoints", func(t *testing.T) {
		l, lurl, snapDir, plant := setup(t)
		putMany(t, lurl, "a", 50)
		older := snapshotNow(t, lurl) // 51, vouched by 52
		putMany(t, lurl, "b", 10)     // 53..62
		crafted := plant(60, 30)

		f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), "--id", "onboarding")
		furl := base(f.HTTPAddr())
		if st := waitState(t, furl, stateReady, 30*time.Second); st.SnapshotSeq != crafted.Seq || older.Seq >= crafted.Seq {
			t.Fatalf("snapshot_seq %d, want the planted %d (newer than %d, and not at a checkpoint)", st.SnapshotSeq,
				crafted.Seq, older.Seq)
		}
		next := snapshotNow(t, lurl)
		st := waitState(t, furl, stateDegraded, 20*time.Second)
		mustContain(t, st.Error, fmt.Sprintf("checkpoint seq %d", next.Seq))
		mustContain(t, st.Error, next.Digest)
		st = waitState(t, furl, stateReady, 30*time.Second)
		if st.SnapshotSeq != next.Seq {
			t.Fatalf("snapshot_seq %d after the re-bootstrap, want the vouched snapshot %d", st.SnapshotSeq, next.Seq)
		}
		digestsEqual(t, lurl, furl, 20*time.Second)
	})
}
