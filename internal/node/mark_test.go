package node

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/journal/journaltest"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
	"go.uber.org/zap"
)

// TestFollower_CheckStoreMark: the store's mark is checked against the log's entry at its sequence. A store without a
// mark, a matching entry, or an entry compacted away passes; a different payload, a different message id, or a
// sequence the log should hold but does not is a divergence found; a log that cannot be read is a divergence that
// could not be checked.
func TestFollower_CheckStoreMark(t *testing.T) {
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	jc := connectJournal(t, emb.ClientURL())
	if _, err := jc.EnsureStream(t.Context()); err != nil {
		t.Fatal(err)
	}
	data := func(seq uint64) []byte {
		return apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", seq)})
	}
	id := func(seq uint64) string { return fmt.Sprintf("leader-1-0a0b-%d", seq) }
	for seq := uint64(1); seq <= 3; seq++ {
		ack, err := jc.PublishAsync(t.Context(), data(seq), seq-1, id(seq))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ack.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := jc.Purge(t.Context(), 2); err != nil { // the log holds 2..3
		t.Fatal(err)
	}
	f := &Follower{jc: jc, log: zap.NewNop()}
	check := func(t *testing.T, seq uint64, mark apply.Mark) error {
		db, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if seq > 0 {
			if err := db.Apply(seq, nil, mark); err != nil {
				t.Fatal(err)
			}
		}
		return f.checkStoreMark(t.Context(), db)
	}
	for _, tc := range []struct {
		name  string
		seq   uint64
		mark  apply.Mark
		found bool // a divergence found; otherwise none
	}{
		{name: "no mark"},
		{name: "the log's entry", seq: 2, mark: apply.EntryMark(2, id(2), data(2))},
		{name: "compacted away", seq: 1, mark: apply.EntryMark(1, "another-leader-1", data(1))},
		{name: "other payload", seq: 2, mark: apply.EntryMark(2, id(2), data(3)), found: true},
		{name: "other message id", seq: 3, mark: apply.EntryMark(3, "another-leader-3", data(3)), found: true},
		{name: "beyond the end", seq: 4, mark: apply.EntryMark(4, id(4), data(4)), found: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(t, tc.seq, tc.mark)
			var div *divergedError
			switch {
			case !tc.found && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.found && (!errors.As(err, &div) || !div.found || !errors.Is(err, errNotTheLog)):
				t.Fatalf("got %v, want a divergence found, wrapping errNotTheLog", err)
			}
		})
	}
	t.Run("log unreachable", func(t *testing.T) {
		emb.Close()
		var div *divergedError
		if err := check(t, 2, apply.EntryMark(2, id(2), data(2))); !errors.As(err, &div) || div.found {
			t.Fatalf("got %v, want a divergence that could not be checked", err)
		}
	})
}

// startSharedNATS starts an embedded NATS server outside any node, so that leaders and followers can come and go
// around one log.
func startSharedNATS(t *testing.T) string {
	t.Helper()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return emb.ClientURL()
}

// readyLeader starts a leader on dataDir and snapDir against the log at natsURL and waits until it is ready.
func readyLeader(t *testing.T, natsURL, dataDir, snapDir string) (*Leader, string) {
	t.Helper()
	l := startLeader(t, dataDir, snapDir, "--nats-url", natsURL)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	return l, lurl
}

// writeHistory starts a leader on dataDir and snapDir against the log at natsURL, writes n keys named after prefix,
// and stops it.
func writeHistory(t *testing.T, natsURL, dataDir, snapDir, prefix string, n int) {
	t.Helper()
	l, lurl := readyLeader(t, natsURL, dataDir, snapDir)
	putMany(t, lurl, prefix, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLeader_RefusesStoreFromAnotherLog: a leader whose store was written from a log that has since been deleted and
// recreated refuses to write: whether the new log is shorter than its store (ahead of the log) or has grown past it
// (another entry at the store's sequence), replaying the new log onto it would mix two histories.
func TestLeader_RefusesStoreFromAnotherLog(t *testing.T) {
	for _, tc := range []struct {
		name     string
		newKeys  int
		mustSay  string
		oldStore int
	}{
		{name: "new log shorter", newKeys: 10, mustSay: "ahead of the replication log", oldStore: 40},
		{name: "new log longer", newKeys: 100, mustSay: "not written from this log", oldStore: 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			natsURL := startSharedNATS(t)
			oldData, oldSnaps := t.TempDir(), t.TempDir()
			writeHistory(t, natsURL, oldData, oldSnaps, "old", tc.oldStore)
			journaltest.DeleteLog(t, natsURL, "REPLIKV")
			writeHistory(t, natsURL, t.TempDir(), t.TempDir(), "new", tc.newKeys)
			l := startLeader(t, oldData, oldSnaps, "--nats-url", natsURL)
			// A store ahead of the log is divergence once that lasted logBehindGrace.
			st := waitState(t, base(l.HTTPAddr()), stateDegraded, logBehindGrace+30*time.Second)
			mustContain(t, st.Error, tc.mustSay)
			mustContain(t, st.Error, "refusing to write")
			if code, _ := put(t, base(l.HTTPAddr()), "late", "v"); code != 503 {
				t.Fatalf("a write to the refusing leader: %d, want 503", code)
			}
		})
	}
}

// TestFollower_RebootstrapsOnAnotherLog: a follower restarted on a store written from a log that has since been
// deleted, recreated and grown past the store's sequence does not read on from there: it finds that the log's entry at
// its store's mark is another one, re-bootstraps, and ends with the new leader's state.
func TestFollower_RebootstrapsOnAnotherLog(t *testing.T) {
	natsURL := startSharedNATS(t)
	oldSnaps, followerData := t.TempDir(), t.TempDir()
	l, lurl := readyLeader(t, natsURL, t.TempDir(), oldSnaps)
	putMany(t, lurl, "old", 60)
	f := startFollower(t, followerData, oldSnaps, natsURL)
	waitState(t, base(f.HTTPAddr()), stateReady, 20*time.Second)
	digestsEqual(t, lurl, base(f.HTTPAddr()), 20*time.Second)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	lurl, newSnaps := resetLog(t, natsURL, 150)

	log, logs := observedLogger(t)
	f = startFollowerLog(t, log, followerData, newSnaps, natsURL)
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 30*time.Second)
	d := digestsEqual(t, lurl, furl, 30*time.Second)
	if d.Keys != 150 {
		t.Fatalf("follower digest over %d keys, want the new log's 150", d.Keys)
	}
	if logs.FilterMessage(msgDiverged).Len() == 0 {
		t.Fatalf("the follower did not log %q", msgDiverged)
	}
}

// TestFollower_LogRecreatedWhileFollowing: a running follower whose log is deleted and recreated under it, and grows
// past its store's sequence, must not read on from there: it ends with the new leader's state.
func TestFollower_LogRecreatedWhileFollowing(t *testing.T) {
	natsURL := startSharedNATS(t)
	snaps := t.TempDir()
	l, lurl := readyLeader(t, natsURL, t.TempDir(), snaps)
	putMany(t, lurl, "old", 60)
	f := startFollower(t, t.TempDir(), snaps, natsURL)
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	digestsEqual(t, lurl, furl, 20*time.Second)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	lurl, _ = resetLog(t, natsURL, 150)
	digestsEqual(t, lurl, furl, 30*time.Second)
}

// resetLog deletes the log at natsURL, as an operator resetting it would, starts a leader with an empty data dir and
// a snapshot dir of its own on the new log, and writes n keys named "new/...". It returns the leader's URL and its
// snapshot dir.
func resetLog(t *testing.T, natsURL string, n int) (lurl, snapDir string) {
	t.Helper()
	journaltest.DeleteLog(t, natsURL, "REPLIKV")
	snapDir = t.TempDir()
	_, lurl = readyLeader(t, natsURL, t.TempDir(), snapDir)
	putMany(t, lurl, "new", n)
	return lurl, snapDir
}

// TestLeader_LogRecreatedWhileLeading: a running leader whose log is deleted, and recreated empty while the leader
// waits to resynchronise with it, does not publish onto the new log: its writes fail, it turns degraded because its
// store is ahead of the log, and the new log stays empty.
func TestLeader_LogRecreatedWhileLeading(t *testing.T) {
	natsURL := startSharedNATS(t)
	_, lurl := readyLeader(t, natsURL, t.TempDir(), t.TempDir())
	putMany(t, lurl, "old", 40)

	journaltest.DeleteLog(t, natsURL, "REPLIKV")
	// A write while there is no log fails (nothing answers the publish) and sends the leader's pipeline to resync
	// with the log, which it retries until a log exists again.
	if code, _ := put(t, lurl, "orphan", "v"); code < 300 {
		t.Fatalf("a write while the log is gone: %d", code)
	}
	jc := connectJournal(t, natsURL)
	if _, err := jc.EnsureStream(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, logBehindGrace+30*time.Second, func() string {
		if code, _ := put(t, lurl, "late", "v"); code < 300 {
			t.Fatalf("a write after the log was recreated: %d", code)
		}
		var st statusBody
		getJSON(t, lurl+"/v1/status", &st)
		if st.State != stateDegraded || !strings.Contains(st.Error, "ahead of the replication log") {
			return fmt.Sprintf("state %q (error %q), want degraded, store ahead of the log", st.State, st.Error)
		}
		return ""
	})
	if info, err := jc.Info(t.Context()); err != nil || info.LastSeq != 0 {
		t.Fatalf("the recreated log: %+v, %v; want it empty", info, err)
	}
}

// snapshotNow takes a snapshot on the leader at lurl and returns its manifest.
func snapshotNow(t *testing.T, lurl string) snapshots.Manifest {
	t.Helper()
	code, b, _ := do(t, http.MethodPost, lurl+"/v1/snapshots", nil)
	if code != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", code, b)
	}
	var m snapshots.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSnapshots_OfAnotherLog: a snapshot store that still holds a snapshot of an earlier history of the log (the log
// was deleted and recreated, the bucket kept) is not used for the new one. The leader's manifests carry the entry
// mark of the log entry at their sequence; followers skip a snapshot whose mark the log does not have, whether the new
// log is still shorter than the snapshot or has grown past it, and the leader's retention and log compaction ignore
// it.
func TestSnapshots_OfAnotherLog(t *testing.T) {
	natsURL := startSharedNATS(t)
	snaps := t.TempDir()
	l, lurl := readyLeader(t, natsURL, t.TempDir(), snaps)
	putMany(t, lurl, "old", 200)
	jc := connectJournal(t, natsURL)
	old := snapshotNow(t, lurl)
	if old.Seq != 201 {
		t.Fatalf("snapshot at seq %d, want 201 (its checkpoint mark after 200 writes)", old.Seq)
	}
	e, err := jc.Entry(t.Context(), old.Seq) // compaction keeps the snapshot's own entry
	if err != nil {
		t.Fatal(err)
	}
	if want := apply.EntryMark(e.Seq, e.ID, e.Data); old.EntryMark != hex.EncodeToString(want[:]) {
		t.Fatalf("manifest entry_mark %q, want the log entry's %x", old.EntryMark, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	journaltest.DeleteLog(t, natsURL, "REPLIKV")
	_, lurl = readyLeader(t, natsURL, t.TempDir(), snaps)
	putMany(t, lurl, "new", 50)
	onboard := func(what string) {
		t.Helper()
		log, logs := observedLogger(t)
		f := startFollowerLog(t, log, t.TempDir(), snaps, natsURL)
		furl := base(f.HTTPAddr())
		waitState(t, furl, stateReady, 30*time.Second)
		digestsEqual(t, lurl, furl, 30*time.Second)
		var st statusBody
		getJSON(t, furl+"/v1/status", &st)
		if st.SnapshotSeq == old.Seq {
			t.Fatalf("%s: the follower restored the earlier log's snapshot %d", what, old.Seq)
		}
		if logs.FilterMessageSnippet("snapshot is of another history of the log").Len() == 0 {
			t.Fatalf("%s: the follower did not say it skipped the earlier log's snapshot", what)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	onboard("new log shorter than the snapshot")
	putMany(t, lurl, "more", 300)
	onboard("new log longer than the snapshot")

	ours := snapshotNow(t, lurl)
	var list struct {
		Snapshots []snapshots.Manifest `json:"snapshots"`
	}
	getJSON(t, lurl+"/v1/snapshots", &list)
	if len(list.Snapshots) != 2 || list.Snapshots[0].Seq != ours.Seq || list.Snapshots[1].Seq != old.Seq {
		t.Fatalf("snapshots %+v, want the new %d and the earlier log's %d", list.Snapshots, ours.Seq, old.Seq)
	}
	info, err := jc.Info(t.Context())
	if err != nil || info.FirstSeq != ours.Seq {
		t.Fatalf("log after the snapshot: %+v, %v; want it compacted below the new snapshot only (first seq %d)",
			info, err, ours.Seq)
	}
}

// TestCompaction_KeepsEachSnapshotsEntry: log compaction purges below the oldest retained snapshot's sequence, not
// past it, so the entry of every retained snapshot stays in the log and its mark can be checked (the only snapshot of
// a young log included), and a new follower checks its restored store against the log instead of finding nothing to
// compare.
func TestCompaction_KeepsEachSnapshotsEntry(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--snapshot-keep", "2")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	jc := connectJournal(t, l.NATSURL())
	var taken []snapshots.Manifest
	for i := range 3 {
		putMany(t, lurl, fmt.Sprintf("r%d", i), 50)
		taken = append(taken, snapshotNow(t, lurl))
		info, err := jc.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		oldest := taken[max(0, len(taken)-2)]
		if info.FirstSeq != oldest.Seq {
			t.Fatalf("after snapshot %d: the log starts at %d, want the oldest retained snapshot's %d", i, info.FirstSeq,
				oldest.Seq)
		}
		mark, ok := oldest.Mark()
		if !ok {
			t.Fatalf("snapshot %d has no entry mark", oldest.Seq)
		}
		if err := checkMarkAt(t.Context(), jc, oldest.Seq, mark); err != nil {
			t.Fatalf("oldest retained snapshot %d: %v", oldest.Seq, err)
		}
	}
	log, logs := observedLogger(t)
	f := startFollowerLog(t, log, t.TempDir(), snapDir, l.NATSURL())
	furl := base(f.HTTPAddr())
	if st := waitState(t, furl, stateReady, 20*time.Second); st.SnapshotSeq != taken[2].Seq {
		t.Fatalf("snapshot_seq %d, want %d", st.SnapshotSeq, taken[2].Seq)
	}
	if n := logs.FilterMessageSnippet("nothing to check").Len(); n > 0 {
		t.Fatalf("the follower found nothing to check its store against %d times", n)
	}
	digestsEqual(t, lurl, furl, 10*time.Second)
}

// TestBehindWatch: a log that ends before the store is divergence only once it lasted logBehindGrace; any other
// outcome in between starts the grace over.
func TestBehindWatch(t *testing.T) {
	var w behindWatch
	behind := fmt.Errorf("resync: %w: store applied seq 9, log last seq 8", errLogBehind)
	now := time.Unix(1000, 0)
	if err := w.escalate(behind, now); errors.Is(err, errDiverged) || !errors.Is(err, errLogBehind) {
		t.Fatalf("the first time: %v, want the error as it is", err)
	}
	if err := w.escalate(behind, now.Add(logBehindGrace-time.Millisecond)); errors.Is(err, errDiverged) {
		t.Fatalf("within the grace: %v, want no divergence", err)
	}
	other := errors.New("stream info: timeout")
	if err := w.escalate(other, now.Add(logBehindGrace)); err != other {
		t.Fatalf("another error: %v, want it as it is", err)
	}
	// The log answered otherwise meanwhile: the grace starts over.
	later := now.Add(logBehindGrace + time.Second)
	if err := w.escalate(behind, later); errors.Is(err, errDiverged) {
		t.Fatalf("behind again after another outcome: %v, want the grace to start over", err)
	}
	err := w.escalate(behind, later.Add(logBehindGrace))
	if !errors.Is(err, errDiverged) || !errors.Is(err, errLogBehind) || !strings.Contains(err.Error(), "refusing to write") {
		t.Fatalf("behind for the whole grace: %v, want errDiverged wrapping errLogBehind", err)
	}
	if err := w.escalate(nil, later.Add(2*logBehindGrace)); err != nil {
		t.Fatalf("nil: %v", err)
	}
}
