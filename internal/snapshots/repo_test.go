package snapshots

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/testutil/versitygw"
	"go.uber.org/zap/zaptest"
)

const testStream = "REPLIKV"

func TestRepo_File(t *testing.T) {
	t.Parallel()
	runRepoSuite(t, newFileTestStore)
}

func TestRepo_S3(t *testing.T) {
	t.Parallel()
	runRepoSuite(t, s3Factory(versitygw.Start(t)))
}

// runRepoSuite runs the Repo tests on one backend.
func runRepoSuite(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := t.Context()
	newRepo := func(t *testing.T) (*Repo, Store) {
		t.Helper()
		s := newStore(t)
		if err := s.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		return NewRepo(s, testStream, zaptest.NewLogger(t)), s
	}
	create := func(t *testing.T, r *Repo, src Source) Manifest {
		t.Helper()
		m, err := r.Create(ctx, src, "leader-1")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		return m
	}

	t.Run("RoundTrip", func(t *testing.T) {
		r, _ := newRepo(t)
		src := &sliceSource{seq: 100, recs: []record{
			{"a", "", 1},
			{"b/" + strings.Repeat("k", apply.MaxKeyLen-2), "long key", 2},
			{"c", strings.Repeat("v", apply.MaxValueLen), 100},
			{"ключ", "unicode", 50},
		}}
		m := create(t, r, src)
		keys, digest := digestOf(src)
		if m.Format != 1 || m.Stream != testStream || m.Seq != 100 || m.Keys != keys || m.Digest != digest ||
			m.Leader != "leader-1" || m.Bytes <= 0 || m.CreatedAt.IsZero() {
			t.Fatalf("manifest = %+v; want seq 100, %d keys, digest %s", m, keys, digest)
		}
		list, err := r.List(ctx)
		if err != nil || len(list) != 1 || list[0].SHA256 != m.SHA256 || !list[0].CreatedAt.Equal(m.CreatedAt) {
			t.Fatalf("List = %+v, %v; want [%+v]", list, err, m)
		}
		var sink collectSink
		var calls [][2]int64
		err = r.Restore(ctx, list[0], &sink, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if !slices.Equal(sink.recs, src.recs) {
			t.Fatalf("restored %d records that differ from the %d created", len(sink.recs), len(src.recs))
		}
		if len(calls) < 2 || calls[0] != [2]int64{0, m.Bytes} || calls[len(calls)-1] != [2]int64{m.Bytes, m.Bytes} {
			t.Fatalf("progress calls = %v, want from 0 to %d", calls, m.Bytes)
		}
	})

	t.Run("PacedAndReused", func(t *testing.T) {
		// A paced repo compresses on one goroutine; every Create after the first reuses the cached encoder. Each
		// snapshot must still restore to exactly its source.
		r0, _ := newRepo(t)
		seq := uint64(0)
		for _, r := range []*Repo{r0.WithCreateCPU(0.5), r0, r0.WithCreateCPU(0.5), r0, r0.WithCreateCPU(1)} {
			for range 2 {
				seq += 10
				src := &genSource{seq: seq, n: 3000, valueLen: 100, random: true}
				m := create(t, r, src)
				keys, digest := digestOf(src)
				if m.Keys != keys || m.Digest != digest {
					t.Fatalf("manifest %+v, want %d keys and digest %s", m, keys, digest)
				}
				var sink collectSink
				if err := r.Restore(ctx, m, &sink, nil); err != nil || uint64(len(sink.recs)) != keys {
					t.Fatalf("Restore = %v with %d records, want %d", err, len(sink.recs), keys)
				}
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		r, _ := newRepo(t)
		m := create(t, r, &sliceSource{seq: 5})
		empty := sha256.Sum256(nil)
		if m.Keys != 0 || m.Digest != hex.EncodeToString(empty[:]) {
			t.Fatalf("manifest of an empty store = %+v", m)
		}
		var sink collectSink
		if err := r.Restore(ctx, m, &sink, nil); err != nil || len(sink.recs) != 0 {
			t.Fatalf("Restore = %v with %d records", err, len(sink.recs))
		}
	})

	t.Run("Vouched", func(t *testing.T) {
		// The vouch runs after the data and before the manifest: it sees the manifest to be, and what it returns is
		// the manifest's checkpoint_seq. A failed vouch leaves no snapshot.
		r, _ := newRepo(t)
		src := &genSource{seq: 30, n: 100, valueLen: 10}
		keys, digest := digestOf(src)
		var seen Manifest
		m, err := r.CreateVouched(ctx, src, "leader-1", func(ctx context.Context, draft Manifest) (uint64, error) {
			seen = draft
			if list, err := r.List(ctx); err != nil || len(list) != 0 {
				t.Errorf("manifest visible before the vouch: %+v, %v", list, err)
			}
			return 32, nil
		})
		if err != nil || m.CheckpointSeq != 32 || seen.Seq != 30 || seen.Keys != keys || seen.Digest != digest ||
			seen.CheckpointSeq != 0 {
			t.Fatalf("CreateVouched = %+v, %v after a vouch of %+v; want checkpoint_seq 32, %d keys, digest %s", m, err,
				seen, keys, digest)
		}
		if list, err := r.List(ctx); err != nil || len(list) != 1 || list[0].CheckpointSeq != 32 {
			t.Fatalf("List = %+v, %v; want the manifest with checkpoint_seq 32", list, err)
		}
		errVouch := errors.New("log unreachable")
		_, err = r.CreateVouched(ctx, &genSource{seq: 40, n: 10, valueLen: 10}, "leader-1",
			func(context.Context, Manifest) (uint64, error) { return 0, errVouch })
		if !errors.Is(err, errVouch) {
			t.Fatalf("CreateVouched with a failing vouch = %v, want its error", err)
		}
		_, err = r.CreateVouched(ctx, &genSource{seq: 50, n: 10, valueLen: 10}, "leader-1",
			func(context.Context, Manifest) (uint64, error) { return 50, nil })
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("CreateVouched vouched at its own seq = %v, want ErrCorrupt", err)
		}
		if list, err := r.List(ctx); err != nil || len(list) != 1 || list[0].Seq != 30 {
			t.Fatalf("List = %+v, %v; want only the vouched snapshot 30", list, err)
		}
	})

	t.Run("Seq0", func(t *testing.T) {
		r, _ := newRepo(t)
		if _, err := r.Create(ctx, &sliceSource{seq: 0}, "l"); !errors.Is(err, ErrEmptyLog) {
			t.Fatalf("Create at seq 0 = %v, want ErrEmptyLog", err)
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		r, _ := newRepo(t)
		for _, seq := range []uint64{20, 3, 1000, 100} {
			create(t, r, &genSource{seq: seq, n: 10, valueLen: 8})
		}
		list, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(list); !slices.Equal(got, []uint64{1000, 100, 20, 3}) {
			t.Fatalf("List seqs = %v, want [1000 100 20 3]", got)
		}
	})

	t.Run("CreateExisting", func(t *testing.T) {
		r, s := newRepo(t)
		first := create(t, r, &genSource{seq: 9, n: 10, valueLen: 8})
		before := mustGet(t, s, dataKey(testStream, 9))
		second := create(t, r, &genSource{seq: 9, n: 3, valueLen: 8}) // different content: must not be written
		if second != first {
			t.Fatalf("second Create = %+v, want the existing %+v", second, first)
		}
		if after := mustGet(t, s, dataKey(testStream, 9)); !bytes.Equal(before, after) {
			t.Fatal("second Create rewrote the data object")
		}
	})

	// The entry mark of a MarkedSource goes into the manifest. An existing snapshot with the same mark, or without
	// one, is kept as above; one with another mark is of another history of the log, and is replaced.
	t.Run("CreateEntryMark", func(t *testing.T) {
		r, _ := newRepo(t)
		markA := apply.EntryMark(9, "leader-a-9", []byte("a"))
		markB := apply.EntryMark(9, "leader-b-9", []byte("b"))
		first := create(t, r, &markedSource{Source: &genSource{seq: 9, n: 10, valueLen: 8}, mark: markA})
		if got, ok := first.Mark(); !ok || got != markA || first.EntryMark != hex.EncodeToString(markA[:]) {
			t.Fatalf("manifest entry_mark %q, want %x", first.EntryMark, markA)
		}
		if again := create(t, r, &markedSource{Source: &genSource{seq: 9, n: 3, valueLen: 8}, mark: markA}); again != first {
			t.Fatalf("Create with the same mark = %+v, want the existing %+v", again, first)
		}
		if unmarked := create(t, r, &genSource{seq: 9, n: 3, valueLen: 8}); unmarked != first {
			t.Fatalf("Create without a mark = %+v, want the existing %+v", unmarked, first)
		}
		other := create(t, r, &markedSource{Source: &genSource{seq: 9, n: 3, valueLen: 8}, mark: markB})
		if got, ok := other.Mark(); !ok || got != markB || other.Keys != 3 {
			t.Fatalf("Create with another mark = %+v, want a new snapshot of 3 keys marked %x", other, markB)
		}
		list, err := r.List(ctx)
		if err != nil || len(list) != 1 || list[0] != other {
			t.Fatalf("List = %+v, %v; want [%+v]", list, err, other)
		}
		var sink collectSink
		if err := r.Restore(ctx, list[0], &sink, nil); err != nil || len(sink.recs) != 3 {
			t.Fatalf("Restore of the replacement: %d records, %v", len(sink.recs), err)
		}
	})

	t.Run("CreateFailsInvisible", func(t *testing.T) {
		errSource := errors.New("source failed")
		tests := []struct {
			name    string
			src     Source
			wantErr error
		}{
			{"SourceError", &sliceSource{seq: 5, recs: []record{{"a", "1", 1}}, err: errSource}, errSource},
			{"Unordered", &sliceSource{seq: 5, recs: []record{{"b", "1", 1}, {"a", "1", 1}}}, nil},
			{"BadVersion", &sliceSource{seq: 5, recs: []record{{"a", "1", 6}}}, nil},
			{"InvalidKey", &sliceSource{seq: 5, recs: []record{{"a\x00", "1", 1}}}, apply.ErrInvalidKey},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, s := newRepo(t)
				_, err := r.Create(ctx, tt.src, "l")
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Create = %v, want %v", err, tt.wantErr)
				}
				if keys, err := s.List(ctx, ""); err != nil || len(keys) != 0 {
					t.Fatalf("objects after a failed Create: %q, %v", keys, err)
				}
			})
		}
	})

	t.Run("CreateCanceled", func(t *testing.T) {
		r, s := newRepo(t)
		cctx, cancel := context.WithCancel(ctx)
		src := funcSource{seq: 10, fn: func(yield func(k, v []byte, ver uint64) error) error {
			for i := range 100000 {
				if i == 5000 {
					cancel()
				}
				if err := yield(fmt.Appendf(nil, "k%09d", i), []byte("v"), 1); err != nil {
					return err
				}
			}
			return nil
		}}
		if _, err := r.Create(cctx, src, "l"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Create = %v, want context.Canceled", err)
		}
		if keys, err := s.List(ctx, ""); err != nil || len(keys) != 0 {
			t.Fatalf("objects after a canceled Create: %q, %v", keys, err)
		}
	})

	t.Run("Corrupt", func(t *testing.T) {
		tests := []struct {
			name   string
			data   func(b []byte) []byte // rewrites the stored data object
			mani   func(m *Manifest)     // changes the manifest given to Restore
			header bool                  // copy the data to another seq's directory
		}{
			{name: "FlipMiddle", data: func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
			{name: "FlipChecksum", data: func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }},
			{name: "Truncated", data: func(b []byte) []byte { return b[:len(b)-10] }},
			{name: "Appended", data: func(b []byte) []byte { return append(b, 0, 0, 0) }},
			{name: "WrongSHA", mani: func(m *Manifest) { m.SHA256 = strings.Repeat("0", 64) }},
			{name: "WrongBytes", mani: func(m *Manifest) { m.Bytes++ }},
			{name: "WrongKeys", mani: func(m *Manifest) { m.Keys-- }},
			{name: "MoreKeys", mani: func(m *Manifest) { m.Keys++ }},
			{name: "WrongDigest", mani: func(m *Manifest) { m.Digest = strings.Repeat("1", 64) }},
			{name: "HeaderSeq", header: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, s := newRepo(t)
				m := create(t, r, &genSource{seq: 50, n: 500, valueLen: 100, random: true})
				key := dataKey(testStream, m.Seq)
				if tt.data != nil {
					b := tt.data(mustGet(t, s, key))
					mustPut(t, s, key, string(b))
				}
				if tt.mani != nil {
					tt.mani(&m)
				}
				if tt.header {
					mustPut(t, s, dataKey(testStream, 51), string(mustGet(t, s, key)))
					m.Seq = 51
					body, _ := m.encode()
					mustPut(t, s, manifestKey(testStream, 51), string(body))
				}
				err := r.Restore(ctx, m, &collectSink{}, nil)
				t.Log(err)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Restore = %v, want ErrCorrupt", err)
				}
			})
		}
	})

	t.Run("InvisibleWithoutValidManifest", func(t *testing.T) {
		r, s := newRepo(t)
		good := create(t, r, &genSource{seq: 10, n: 10, valueLen: 8})
		mustPut(t, s, dataKey(testStream, 40), "data without manifest")
		mustPut(t, s, manifestKey(testStream, 41), "{not json")
		wrongSeq := good
		wrongSeq.Seq = 43
		body, _ := wrongSeq.encode()
		mustPut(t, s, manifestKey(testStream, 42), string(body)) // describes 43, stored under 42
		other := good
		other.Stream = "OTHER"
		body, _ = other.encode()
		mustPut(t, s, manifestKey(testStream, 44), string(body))
		mustPut(t, s, testStream+"/not-a-seq/manifest.json", "x")
		mustPut(t, s, "OTHER/00000000000000000099/manifest.json", "x")
		list, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(list); !slices.Equal(got, []uint64{10}) {
			t.Fatalf("List seqs = %v, want [10]", got)
		}
	})

	t.Run("DataMissing", func(t *testing.T) {
		r, s := newRepo(t)
		m := create(t, r, &genSource{seq: 10, n: 10, valueLen: 8})
		if err := s.Delete(ctx, dataKey(testStream, 10)); err != nil {
			t.Fatal(err)
		}
		if err := r.Restore(ctx, m, &collectSink{}, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Restore = %v, want ErrNotFound", err)
		}
	})

	t.Run("DeletedMidRestore", func(t *testing.T) {
		tests := []struct {
			name     string
			manifest bool // delete the manifest too, as retention does
		}{
			{"DataOnly", false},
			{"Pruned", true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, s := newRepo(t)
				m := create(t, r, &genSource{seq: 10, n: 2000, valueLen: 1024, random: true}) // ~2 MiB, read well after the first record
				deleted := false
				sink := funcSink(func([]byte, []byte, uint64) error {
					if !deleted {
						deleted = true
						if tt.manifest {
							if err := s.Delete(ctx, manifestKey(testStream, 10)); err != nil {
								return err
							}
						}
						return s.Delete(ctx, dataKey(testStream, 10))
					}
					return nil
				})
				err := r.Restore(ctx, m, sink, nil)
				t.Log(err)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("Restore = %v, want ErrNotFound", err)
				}
			})
		}
	})

	t.Run("SinkError", func(t *testing.T) {
		r, _ := newRepo(t)
		m := create(t, r, &genSource{seq: 10, n: 10, valueLen: 8})
		errSink := errors.New("disk full")
		err := r.Restore(ctx, m, funcSink(func([]byte, []byte, uint64) error { return errSink }), nil)
		if !errors.Is(err, errSink) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			t.Fatalf("Restore = %v, want the sink's error only", err)
		}
	})

	t.Run("RestoreCanceled", func(t *testing.T) {
		r, _ := newRepo(t)
		m := create(t, r, &genSource{seq: 10, n: 5000, valueLen: 8})
		cctx, cancel := context.WithCancel(ctx)
		n := 0
		err := r.Restore(cctx, m, funcSink(func([]byte, []byte, uint64) error {
			if n++; n == 10 {
				cancel()
			}
			return nil
		}), nil)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("Restore = %v, want context.Canceled", err)
		}
	})

	t.Run("RestoreWrongStream", func(t *testing.T) {
		r, _ := newRepo(t)
		m := create(t, r, &genSource{seq: 10, n: 1, valueLen: 8})
		m.Stream = "OTHER"
		if err := r.Restore(ctx, m, &collectSink{}, nil); err == nil {
			t.Fatal("Restore accepted another stream's manifest")
		}
	})

	t.Run("Prune", func(t *testing.T) {
		tests := []struct {
			name        string
			snapshots   []uint64 // created with manifests
			orphans     []uint64 // data objects without a manifest
			keep        int
			wantDeleted []uint64 // newest first
			wantLeft    []uint64 // seq directories left in the store, newest first
			foreign     []uint64 // snapshots ours says are not ours
		}{
			{"NeverBelowTwo", []uint64{1, 2, 3, 4, 5}, nil, 0, []uint64{3, 2, 1}, []uint64{5, 4}, nil},
			{"KeepThree", []uint64{1, 2, 3, 4, 5}, nil, 3, []uint64{2, 1}, []uint64{5, 4, 3}, nil},
			{"FewerThanKeep", []uint64{1, 2}, nil, 3, nil, []uint64{2, 1}, nil},
			{"Orphans", []uint64{10, 20, 30}, []uint64{5, 15, 25, 40}, 2, []uint64{10}, []uint64{40, 30, 25, 20}, nil},
			{"OnlyOrphans", nil, []uint64{5, 6}, 2, nil, []uint64{6, 5}, nil},
			// Others' snapshots neither count towards keep nor go, whether newer or older than ours.
			{"Foreign", []uint64{1, 2, 3, 4, 5, 6, 7}, nil, 2, []uint64{3, 1}, []uint64{7, 6, 5, 4, 2},
				[]uint64{2, 6, 7}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				base := newStore(t)
				if err := base.Init(ctx, true); err != nil {
					t.Fatal(err)
				}
				s := &recordingStore{Store: base}
				r := NewRepo(s, testStream, zaptest.NewLogger(t))
				for _, seq := range tt.snapshots {
					create(t, r, &genSource{seq: seq, n: 3, valueLen: 8})
				}
				for _, seq := range tt.orphans {
					mustPut(t, s, dataKey(testStream, seq), "orphan")
				}
				var ours func(Manifest) bool
				if tt.foreign != nil {
					ours = func(m Manifest) bool { return !slices.Contains(tt.foreign, m.Seq) }
				}
				deleted, err := r.Prune(ctx, tt.keep, ours)
				if err != nil {
					t.Fatal(err)
				}
				if got := seqs(deleted); !slices.Equal(got, tt.wantDeleted) {
					t.Fatalf("deleted = %v, want %v", got, tt.wantDeleted)
				}
				keys, err := s.List(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				var left []uint64
				for _, k := range keys {
					seq, _, ok := parseKey(testStream, k)
					if ok && (len(left) == 0 || left[len(left)-1] != seq) {
						left = append(left, seq)
					}
				}
				slices.Reverse(left)
				if !slices.Equal(left, tt.wantLeft) {
					t.Fatalf("left = %v (keys %q), want %v", left, keys, tt.wantLeft)
				}
				// Manifest before data, for every pruned snapshot.
				for _, seq := range tt.wantDeleted {
					mi := slices.Index(s.deletes, manifestKey(testStream, seq))
					di := slices.Index(s.deletes, dataKey(testStream, seq))
					if mi < 0 || di < 0 || mi > di {
						t.Fatalf("deletes %q: manifest of %d not deleted before its data", s.deletes, seq)
					}
				}
			})
		}
	})
}

// funcSource is a Source whose Iterate is a function.
type funcSource struct {
	seq uint64
	fn  func(yield func(k, v []byte, ver uint64) error) error
}

func (f funcSource) Seq() uint64 { return f.seq }
func (f funcSource) Iterate(fn func(key, value []byte, version uint64) error) error {
	return f.fn(fn)
}

func seqs(ms []Manifest) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}
