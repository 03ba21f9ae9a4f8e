package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

func putEntry(key, value string) []byte {
	return apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte(key), Value: []byte(value)})
}

func markEntry() []byte {
	return apply.AppendEntry(nil, apply.Entry{Op: apply.OpCheckpoint, Checkpoint: apply.Checkpoint{Kind: apply.CheckpointMark}})
}

func resultEntry(t testing.TB, seq, keys uint64, digest string) []byte {
	t.Helper()
	cp, err := apply.NewCheckpointResult(seq, keys, digest)
	if err != nil {
		t.Fatal(err)
	}
	return apply.AppendEntry(nil, apply.Entry{Op: apply.OpCheckpoint, Checkpoint: cp})
}

// TestApplier_CutsBatchAtCheckpoint: one batch of entries with checkpoints among them is applied in store batches that
// end at each checkpoint; the hook sees each checkpoint with the store at exactly its sequence (a view taken then
// holds what came before it and nothing after), a checkpoint changes no key, and the applied sequence and mark end at
// the last entry. A checkpoint result for a sequence not before its own is a bad entry, never skipped; so is an
// unknown op (what a follower older than checkpoints does with a checkpoint entry).
func TestApplier_CutsBatchAtCheckpoint(t *testing.T) {
	open := func(t *testing.T) *store.DB {
		db, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	t.Run("Cut", func(t *testing.T) {
		db := open(t)
		type seen struct {
			seq, applied uint64
			kind         apply.CheckpointKind
			keys         uint64
			digest       string
		}
		var got []seen
		a := &applier{db: db, checkpoint: func(seq uint64, cp apply.Checkpoint) {
			v, err := db.View()
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			keys, digest, err := v.Digest()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seen{seq: seq, applied: v.Seq(), kind: cp.Kind, keys: keys, digest: digest})
		}}
		// The digest of {a, b} at versions 1 and 2: what the mark at 3 must see.
		want := apply.NewDigest()
		want.Add([]byte("a"), []byte("1"), 1)
		want.Add([]byte("b"), []byte("2"), 2)
		msgs := []journal.Msg{
			{Seq: 1, Data: putEntry("a", "1"), ID: "m1"},
			{Seq: 2, Data: putEntry("b", "2"), ID: "m2"},
			{Seq: 3, Data: markEntry(), ID: "m3"},
			{Seq: 4, Data: putEntry("c", "4"), ID: "m4"},
			{Seq: 5, Data: resultEntry(t, 3, 2, want.Sum()), ID: "m5"},
			{Seq: 6, Data: markEntry(), ID: "m6"},
		}
		seq, err := a.apply(msgs)
		if err != nil || seq != 6 || db.Applied() != 6 {
			t.Fatalf("apply = %d, %v; applied %d; want 6", seq, err, db.Applied())
		}
		if len(got) != 3 || got[0] != (seen{seq: 3, applied: 3, kind: apply.CheckpointMark, keys: 2, digest: want.Sum()}) ||
			got[1].seq != 5 || got[1].applied != 5 || got[1].kind != apply.CheckpointResult || got[1].keys != 3 ||
			got[2].seq != 6 || got[2].applied != 6 || got[2].digest != got[1].digest {
			t.Fatalf("checkpoints seen %+v; want the mark at 3 with {a, b} only, the result at 5, the mark at 6 with {a, b, c}", got)
		}
		if markSeq, mark := db.Mark(); markSeq != 6 || mark != apply.EntryMark(6, "m6", msgs[5].Data) {
			t.Fatalf("store mark at %d, want the last entry's (6)", markSeq)
		}
	})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"ResultNotBefore", resultEntry(t, 2, 0, strings.Repeat("0", 64))},
		{"UnknownOp", []byte{0x01, 0x04, 0x01, 'k'}},
		{"UnknownCheckpointKind", []byte{0x01, 0x03, 0x09}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t)
			calls := 0
			a := &applier{db: db, checkpoint: func(uint64, apply.Checkpoint) { calls++ }}
			seq, err := a.apply([]journal.Msg{
				{Seq: 1, Data: markEntry(), ID: "m1"},
				{Seq: 2, Data: tc.data, ID: "bad"},
				{Seq: 3, Data: putEntry("after", "x"), ID: "m3"},
			})
			if !errors.Is(err, errBadEntry) || !strings.Contains(err.Error(), "seq 2") || seq != 1 || db.Applied() != 1 ||
				calls != 1 {
				t.Fatalf("apply = %d, %v; applied %d, %d checkpoint calls; want errBadEntry at seq 2 after applying 1",
					seq, err, db.Applied(), calls)
			}
		})
	}
}

// verifierFixture is a checkpoint verifier running on a store whose digest computation a test can hold back.
type verifierFixture struct {
	c       *checkpointVerifier
	holder  *storeHolder
	m       *metrics.Metrics
	release chan struct{} // each digest waits for a receive (or for its cancellation)
	started chan uint64   // the seq of each digest as it starts
	stop    func()
}

func newVerifierFixture(t *testing.T, keys ...string) *verifierFixture {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var muts []apply.Mutation
	for i, k := range keys {
		muts = append(muts, apply.Mutation{Key: []byte(k), Value: []byte("v"), Version: uint64(i + 1)})
	}
	if err := db.Apply(uint64(len(keys)+1), muts, apply.Mark{}); err != nil {
		t.Fatal(err)
	}
	fx := &verifierFixture{holder: &storeHolder{}, m: metrics.New("follower"), release: make(chan struct{}),
		started: make(chan uint64, 16)}
	_ = fx.holder.swap(db)
	fx.c = newCheckpointVerifier(zap.NewNop(), fx.m)
	fx.c.compute = func(ctx context.Context, v iterableView) (uint64, string, error) {
		fx.started <- v.Seq()
		select {
		case <-fx.release:
		case <-ctx.Done():
			return 0, "", ctx.Err()
		}
		return digestPaced(ctx, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fx.c.run(ctx) }()
	fx.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(func() {
		fx.stop()
		if err := fx.holder.swap(nil); err != nil {
			t.Error(err)
		}
	})
	return fx
}

// view opens a view of the fixture's store (at its applied seq).
func (fx *verifierFixture) view(t *testing.T) api.View {
	t.Helper()
	v, err := fx.holder.view(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// result is the checkpoint result of the fixture's store as it is, for seq.
func (fx *verifierFixture) result(t *testing.T, seq uint64) apply.Checkpoint {
	t.Helper()
	v := fx.view(t)
	defer v.Close()
	keys, digest, err := v.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := apply.NewCheckpointResult(seq, keys, digest)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func (fx *verifierFixture) waitStarted(t *testing.T, seq uint64) {
	t.Helper()
	select {
	case got := <-fx.started:
		if got != seq {
			t.Fatalf("digest started at seq %d, want %d", got, seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no digest started (want seq %d)", seq)
	}
}

func (fx *verifierFixture) counts(t *testing.T) (verified, mismatched float64) {
	return metricValue(t, fx.m, "replikv_checkpoint_verified_total"), metricValue(t, fx.m, "replikv_checkpoint_mismatch_total")
}

// metricValue returns the sum of the values of the counters and gauges called name in m's registry whose labels
// include every name=value pair of labels.
func metricValue(t testing.TB, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, x := range mf.GetMetric() {
			for _, want := range labels {
				found := false
				for _, l := range x.GetLabel() {
					found = found || l.GetName()+"="+l.GetValue() == want
				}
				if !found {
					continue metric
				}
			}
			v += x.GetCounter().GetValue() + x.GetGauge().GetValue()
		}
	}
	return v
}

// TestCheckpointVerifier: the follower's own digest at a checkpoint is compared with the leader's result whichever
// comes first; an equal one is counted as verified, a different one as a mismatch handed to the apply loop with both
// digests; a newer mark replaces one still waiting (closing its view); a result for a state the follower never held
// is ignored; reset closes every view (so the store can be swapped) and drops a mismatch not acted on yet.
func TestCheckpointVerifier(t *testing.T) {
	const seq = 3 // the fixture's store, with two keys, is at seq 3
	t.Run("ResultAfterDigest", func(t *testing.T) {
		fx := newVerifierFixture(t, "a", "b")
		fx.c.atMark(seq, fx.view(t))
		fx.waitStarted(t, seq)
		fx.release <- struct{}{}
		eventually(t, 10*time.Second, func() string {
			fx.c.mu.Lock()
			defer fx.c.mu.Unlock()
			if _, ok := fx.c.local[seq]; !ok {
				return "own digest not computed yet"
			}
			return ""
		})
		fx.c.atResult(seq+1, fx.result(t, seq))
		if v, m := fx.counts(t); v != 1 || m != 0 || metricValue(t, fx.m, "replikv_checkpoint_verified_seq") != seq {
			t.Fatalf("verified %v, mismatched %v, verified seq %v; want 1, 0, %d", v, m,
				metricValue(t, fx.m, "replikv_checkpoint_verified_seq"), seq)
		}
	})
	t.Run("ResultBeforeDigest", func(t *testing.T) {
		fx := newVerifierFixture(t, "a", "b")
		fx.c.atMark(seq, fx.view(t))
		fx.waitStarted(t, seq)
		leader := fx.result(t, seq)
		leader.Keys++
		leader.Digest[0] ^= 0xff
		fx.c.atResult(seq+2, leader)
		fx.release <- struct{}{}
		var mm *checkpointMismatchError
		select {
		case mm = <-fx.c.mismatches:
		case <-time.After(10 * time.Second):
			t.Fatal("no mismatch reported")
		}
		own := fx.result(t, seq)
		if mm.seq != seq || mm.resultSeq != seq+2 || mm.leaderDigest != leader.DigestHex() ||
			mm.localDigest != own.DigestHex() || mm.leaderKeys != 3 || mm.localKeys != 2 {
			t.Fatalf("mismatch %+v; want seq %d, result %d, leader %s (3 keys), local %s (2 keys)", mm, seq, seq+2,
				leader.DigestHex(), own.DigestHex())
		}
		for _, s := range []string{"seq 3", "seq 5", leader.DigestHex(), own.DigestHex()} {
			mustContain(t, mm.Error(), s)
		}
		if v, m := fx.counts(t); v != 0 || m != 1 {
			t.Fatalf("verified %v, mismatched %v; want 0, 1", v, m)
		}
	})
	t.Run("NewerMarkReplacesWaiting", func(t *testing.T) {
		fx := newVerifierFixture(t, "a", "b")
		fx.c.atMark(seq, fx.view(t))
		fx.waitStarted(t, seq)
		waiting := fx.view(t)
		fx.c.atMark(seq, waiting)
		fx.c.atMark(seq, fx.view(t)) // replaces (and closes) waiting
		if _, _, err := waiting.Get([]byte("a")); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("replaced view: Get = %v, want ErrClosed", err)
		}
		fx.release <- struct{}{}
		fx.waitStarted(t, seq)
		fx.release <- struct{}{}
	})
	t.Run("ResultForAnotherState", func(t *testing.T) {
		fx := newVerifierFixture(t, "a")
		fx.c.atResult(9, apply.Checkpoint{Kind: apply.CheckpointResult, Seq: 7})
		if v, m := fx.counts(t); v != 0 || m != 0 {
			t.Fatalf("verified %v, mismatched %v; want nothing", v, m)
		}
	})
	t.Run("ViewAfterStop", func(t *testing.T) {
		// The apply loop may hand over a view after the verifier's goroutine stopped: it is closed at once, or the
		// follower's store could never be closed.
		fx := newVerifierFixture(t, "a")
		fx.stop()
		v := fx.view(t)
		fx.c.atMark(2, v)
		if _, _, err := v.Get([]byte("a")); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("view handed over after the stop: Get = %v, want ErrClosed", err)
		}
	})
	t.Run("ResetReleasesViews", func(t *testing.T) {
		fx := newVerifierFixture(t, "a", "b")
		fx.c.atMark(seq, fx.view(t))
		fx.waitStarted(t, seq)
		fx.c.atMark(seq, fx.view(t))
		fx.c.mismatches <- &checkpointMismatchError{seq: 1} // from before: not to be acted on after a reset
		fx.c.reset()
		done := make(chan error, 1)
		go func() { done <- fx.holder.swap(nil) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the store cannot be swapped after reset: a view stays open")
		}
		select {
		case mm := <-fx.c.mismatches:
			t.Fatalf("mismatch %v survived the reset", mm)
		default:
		}
	})
}

// TestDigestPaced: the paced digest is the view's digest.
func TestDigestPaced(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var muts []apply.Mutation
	for i := range 5000 {
		muts = append(muts, apply.Mutation{Key: fmt.Appendf(nil, "k%05d", i), Value: fmt.Appendf(nil, "%d", i), Version: 1})
	}
	if err := db.Apply(1, muts, apply.Mark{}); err != nil {
		t.Fatal(err)
	}
	h := &storeHolder{}
	_ = h.swap(db)
	v, err := h.view(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	wantKeys, want, err := v.Digest()
	if err != nil {
		t.Fatal(err)
	}
	keys, got, err := digestPaced(t.Context(), v.(iterableView))
	if err != nil || keys != wantKeys || got != want {
		t.Fatalf("digestPaced = %d, %s, %v; want %d, %s", keys, got, err, wantKeys, want)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := digestPaced(ctx, v.(iterableView)); !errors.Is(err, context.Canceled) {
		t.Fatalf("digestPaced with a cancelled context = %v", err)
	}
}

// checkpointLog is a log with checkpoints, written by hand, and a snapshot store beside it:
//
//	1 put, 2 mark, 3 result for 2 (the digest of snapshot A), 4 put, 5 mark, 6 result for 5 (leaderDigest5)
type checkpointLog struct {
	jc            *journal.Conn
	snapDir       string
	repo          *snapshots.Repo
	a             snapshots.Manifest // at 2, vouched by 3
	leaderDigest5 string
}

func newCheckpointLog(t *testing.T) *checkpointLog {
	t.Helper()
	cl := &checkpointLog{jc: connectJournal(t, startSharedNATS(t)), snapDir: t.TempDir()}
	if _, err := cl.jc.EnsureStream(t.Context()); err != nil {
		t.Fatal(err)
	}
	log := testlog.New(t)
	st, err := snapshots.Open("file://"+cl.snapDir, snapshots.S3Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Init(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	cl.repo = snapshots.NewRepo(st, "REPLIKV", log)
	cl.a = cl.create(t, keysSource{seq: 2, n: 10}, 3)
	cl.leaderDigest5 = strings.Repeat("ab", 32)
	for i, data := range [][]byte{putEntry("k", "1"), markEntry(), resultEntry(t, 2, cl.a.Keys, cl.a.Digest),
		putEntry("k", "4"), markEntry(), resultEntry(t, 5, 12, cl.leaderDigest5)} {
		seq := uint64(i + 1)
		ack, err := cl.jc.PublishAsync(t.Context(), data, seq-1, fmt.Sprintf("leader-x-1-%d", seq))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ack.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

// create writes a snapshot of src whose manifest names checkpointSeq (0: none).
func (cl *checkpointLog) create(t *testing.T, src keysSource, checkpointSeq uint64) snapshots.Manifest {
	t.Helper()
	var vouch snapshots.Vouch
	if checkpointSeq > 0 {
		vouch = func(context.Context, snapshots.Manifest) (uint64, error) { return checkpointSeq, nil }
	}
	m, err := cl.repo.CreateVouched(t.Context(), src, "test", vouch)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (cl *checkpointLog) restorer(t *testing.T) *restorer {
	return &restorer{repo: cl.repo, dataDir: t.TempDir(), log: testlog.New(t), metrics: metrics.New("follower"),
		state: &stateTracker{}, jc: cl.jc}
}

// TestSnapshotVouched: a manifest is vouched for when the entry it names is the log's checkpoint result for its seq
// with its digest and key count; the log contradicts it (corrupt) when the entry says otherwise, is no such result,
// is missing, or when the snapshot's seq is a checkpoint mark and the manifest names no result; a snapshot between
// checkpoints is not vouched for, and not corrupt either.
func TestSnapshotVouched(t *testing.T) {
	cl := newCheckpointLog(t)
	at5 := func(f func(m *snapshots.Manifest)) snapshots.Manifest {
		m := cl.a
		m.Seq, m.Keys, m.Digest, m.CheckpointSeq = 5, 12, cl.leaderDigest5, 6
		f(&m)
		return m
	}
	for _, tc := range []struct {
		name string
		m    snapshots.Manifest
		want error // nil, errNotVouched or snapshots.ErrCorrupt
	}{
		{"Vouched", cl.a, nil},
		{"VouchedAt5", at5(func(*snapshots.Manifest) {}), nil},
		{"OtherDigest", at5(func(m *snapshots.Manifest) { m.Digest = strings.Repeat("cd", 32) }), snapshots.ErrCorrupt},
		{"OtherKeyCount", at5(func(m *snapshots.Manifest) { m.Keys = 11 }), snapshots.ErrCorrupt},
		{"NamesAPut", at5(func(m *snapshots.Manifest) { m.CheckpointSeq = 4 }), snapshots.ErrCorrupt},
		{"NamesAnotherResult", at5(func(m *snapshots.Manifest) { m.Seq, m.CheckpointSeq = 5, 3 }), snapshots.ErrCorrupt},
		{"NamesNothing", at5(func(m *snapshots.Manifest) { m.CheckpointSeq = 99 }), snapshots.ErrCorrupt},
		{"MarkWithoutResult", at5(func(m *snapshots.Manifest) { m.CheckpointSeq = 0 }), snapshots.ErrCorrupt},
		{"BetweenCheckpoints", at5(func(m *snapshots.Manifest) { m.Seq, m.CheckpointSeq = 4, 0 }), errNotVouched},
		{"BeyondTheLog", at5(func(m *snapshots.Manifest) { m.Seq, m.CheckpointSeq = 50, 0 }), errNotVouched},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := snapshotVouched(t.Context(), cl.jc, tc.m)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("snapshotVouched = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRestorer_Checkpoints: a snapshot that the log's checkpoint contradicts is refused as corrupt and an older one
// restored, whether its manifest names the checkpoint or not; a snapshot between checkpoints is restored on a first
// onboarding, but not when only a vouched-for snapshot will do; when no snapshot is vouched for, the error says so.
func TestRestorer_Checkpoints(t *testing.T) {
	t.Run("Contradicted", func(t *testing.T) {
		cl := newCheckpointLog(t)
		cl.create(t, keysSource{seq: 5, n: 12}, 6) // crafted: self-consistent, but not the leader's state at 5
		r := cl.restorer(t)
		m, err := r.restoreNewest(t.Context(), 1)
		if err != nil || m.Seq != cl.a.Seq {
			t.Fatalf("restoreNewest = seq %d, %v; want the vouched snapshot %d", m.Seq, err, cl.a.Seq)
		}
		if n := metricValue(t, r.metrics, "replikv_errors_total", "component=restore", "kind=corrupt"); n != 1 {
			t.Fatalf("restore corrupt errors %v, want 1", n)
		}
	})
	t.Run("MarkWithoutResult", func(t *testing.T) {
		cl := newCheckpointLog(t)
		cl.create(t, keysSource{seq: 5, n: 12}, 0)
		if m, err := cl.restorer(t).restoreNewest(t.Context(), 1); err != nil || m.Seq != cl.a.Seq {
			t.Fatalf("restoreNewest = seq %d, %v; want the vouched snapshot %d", m.Seq, err, cl.a.Seq)
		}
	})
	t.Run("BetweenCheckpoints", func(t *testing.T) {
		cl := newCheckpointLog(t)
		cl.create(t, keysSource{seq: 4, n: 12}, 0)
		if m, err := cl.restorer(t).restoreNewest(t.Context(), 1); err != nil || m.Seq != 4 {
			t.Fatalf("restoreNewest = seq %d, %v; want the newest, 4", m.Seq, err)
		}
		if m, err := cl.restorer(t).restoreVouched(t.Context(), 1); err != nil || m.Seq != cl.a.Seq {
			t.Fatalf("restoreVouched = seq %d, %v; want the vouched snapshot %d", m.Seq, err, cl.a.Seq)
		}
	})
	t.Run("NoneVouched", func(t *testing.T) {
		cl := newCheckpointLog(t)
		dir := filepath.Join(cl.snapDir, "REPLIKV", fmt.Sprintf("%020d", cl.a.Seq))
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		cl.create(t, keysSource{seq: 4, n: 12}, 0)
		_, err := cl.restorer(t).restoreVouched(t.Context(), 1)
		if !errors.Is(err, errNoSnapshot) || !errors.Is(err, errNotVouched) || !strings.Contains(err.Error(), "vouch") {
			t.Fatalf("restoreVouched = %v, want errNoSnapshot saying no snapshot is vouched for", err)
		}
	})
}

// readManifest reads the manifest of seq in the file:// snapshot store at snapDir.
func readManifest(t *testing.T, snapDir string, seq uint64) snapshots.Manifest {
	t.Helper()
	b, err := os.ReadFile(manifestPath(snapDir, seq))
	if err != nil {
		t.Fatal(err)
	}
	var m snapshots.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeManifest replaces the manifest of m.Seq in the file:// snapshot store at snapDir.
func writeManifest(t *testing.T, snapDir string, m snapshots.Manifest) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifestPath(snapDir, m.Seq), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func manifestPath(snapDir string, seq uint64) string {
	return filepath.Join(snapDir, "REPLIKV", fmt.Sprintf("%020d", seq), "manifest.json")
}
