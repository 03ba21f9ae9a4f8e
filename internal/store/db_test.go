package store

import (
	"errors"
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

func TestDB_Apply(t *testing.T) {
	type batch struct {
		seq  uint64
		muts []apply.Mutation
	}
	tests := []struct {
		name    string
		batches []batch
		applied uint64
		wants   []want
	}{
		{"Put", []batch{{1, []apply.Mutation{put("a", "1", 1)}}}, 1,
			[]want{{"a", "1", 1, true}, {"b", "", 0, false}}},
		{"Overwrite", []batch{{1, []apply.Mutation{put("a", "1", 1)}}, {2, []apply.Mutation{put("a", "2", 2)}}}, 2,
			[]want{{"a", "2", 2, true}}},
		{"Delete", []batch{{1, []apply.Mutation{put("a", "1", 1)}}, {2, []apply.Mutation{del("a", 2)}}}, 2,
			[]want{{"a", "", 0, false}}},
		{"DeleteAbsent", []batch{{1, []apply.Mutation{del("a", 1)}}}, 1, []want{{"a", "", 0, false}}},
		{"LaterWinsInBatch", []batch{{3, []apply.Mutation{put("a", "1", 1), del("a", 2), put("a", "3", 3),
			put("b", "x", 1), del("b", 3)}}}, 3,
			[]want{{"a", "3", 3, true}, {"b", "", 0, false}}},
		{"EmptyValue", []batch{{1, []apply.Mutation{put("a", "", 1)}}}, 1, []want{{"a", "", 1, true}}},
		{"EmptyBatchAdvancesSeq", []batch{{1, []apply.Mutation{put("a", "1", 1)}}, {9, nil}}, 9,
			[]want{{"a", "1", 1, true}}},
		{"SameSeqAgain", []batch{{4, []apply.Mutation{put("a", "1", 4)}}, {4, nil}}, 4, []want{{"a", "1", 4, true}}},
		{"LargeVersion", []batch{{1 << 40, []apply.Mutation{put("a", "big", 1<<40)}}}, 1 << 40,
			[]want{{"a", "big", 1 << 40, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, t.TempDir())
			for _, b := range tt.batches {
				mustApply(t, db, b.seq, b.muts...)
			}
			if got := db.Applied(); got != tt.applied {
				t.Fatalf("Applied = %d, want %d", got, tt.applied)
			}
			checkState(t, db, tt.wants)
		})
	}
}

func TestDB_Apply_SeqRegression(t *testing.T) {
	db := openTest(t, t.TempDir())
	mustApply(t, db, 5, put("a", "1", 5))
	err := db.Apply(4, []apply.Mutation{put("a", "2", 4)}, apply.Mark{})
	if !errors.Is(err, ErrSeqRegression) {
		t.Fatalf("Apply(4) after 5 = %v, want ErrSeqRegression", err)
	}
	if db.Applied() != 5 {
		t.Fatalf("Applied = %d after a rejected batch, want 5", db.Applied())
	}
	checkState(t, db, []want{{"a", "1", 5, true}})
}

func TestDB_Apply_CallerMayReuseBuffers(t *testing.T) {
	db := openTest(t, t.TempDir())
	key, value := []byte("k"), []byte("v1")
	mustApply(t, db, 1, apply.Mutation{Key: key, Value: value, Version: 1})
	key[0], value[1] = 'x', '9'
	checkState(t, db, []want{{"k", "v1", 1, true}, {"x", "", 0, false}})
}

func TestDB_Get_ReturnsCopy(t *testing.T) {
	db := openTest(t, t.TempDir())
	mustApply(t, db, 1, put("k", "value", 1))
	v, _, err := db.Get([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	checkState(t, db, []want{{"k", "value", 1, true}})
}

func TestDB_Version(t *testing.T) {
	db := openTest(t, t.TempDir())
	mustApply(t, db, 7, put("a", "1", 7), put("b", "2", 6))
	mustApply(t, db, 8, del("b", 8))
	tests := []struct {
		key     string
		version uint64
		exists  bool
	}{{"a", 7, true}, {"b", 0, false}, {"c", 0, false}}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			version, exists, err := db.Version([]byte(tt.key))
			if err != nil || version != tt.version || exists != tt.exists {
				t.Fatalf("Version = %d, %v, %v; want %d, %v", version, exists, err, tt.version, tt.exists)
			}
		})
	}
}

func TestDB_Reopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, 1, put("a", "1", 1), put("b", "2", 1))
	mustApply(t, db, 2, del("b", 2), put("c", "3", 2))
	if err := db.SetSnapshotSeq(1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db = openTest(t, dir)
	if db.Applied() != 2 || db.SnapshotSeq() != 1 {
		t.Fatalf("after reopen Applied = %d, SnapshotSeq = %d; want 2, 1", db.Applied(), db.SnapshotSeq())
	}
	checkState(t, db, []want{{"a", "1", 1, true}, {"b", "", 0, false}, {"c", "3", 2, true}})
}

// TestDB_Mark: Apply records a non-zero mark with its sequence in the same batch, a zero mark keeps the previous
// one, the mark survives a reopen, and a damaged mark record keeps the store from opening.
func TestDB_Mark(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if seq, m := db.Mark(); seq != 0 || !m.IsZero() {
		t.Fatalf("new store: Mark = %d, %x; want none", seq, m)
	}
	m3 := apply.EntryMark(3, "id-3", []byte("three"))
	for _, step := range []struct {
		seq  uint64
		mark apply.Mark
	}{{1, apply.Mark{}}, {3, m3}, {5, apply.Mark{}}} {
		if err := db.Apply(step.seq, []apply.Mutation{put("k", "v", step.seq)}, step.mark); err != nil {
			t.Fatalf("Apply(%d): %v", step.seq, err)
		}
	}
	if seq, m := db.Mark(); seq != 3 || m != m3 {
		t.Fatalf("Mark = %d, %x; want 3, %x", seq, m, m3)
	}
	viewMark := func() (apply.Mark, bool) {
		v, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		return v.EntryMark()
	}
	if m, ok := viewMark(); ok {
		t.Fatalf("View at 5 with the mark at 3: EntryMark = %x, true; want none", m)
	}
	m6 := apply.EntryMark(6, "id-6", []byte("six"))
	if err := db.Apply(6, nil, m6); err != nil {
		t.Fatal(err)
	}
	if m, ok := viewMark(); !ok || m != m6 {
		t.Fatalf("View at 6: EntryMark = %x, %t; want %x", m, ok, m6)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	if seq, m := db.Mark(); seq != 6 || m != m6 || db.Applied() != 6 {
		t.Fatalf("after reopen Mark = %d, %x, Applied = %d; want 6, %x, 6", seq, m, db.Applied(), m6)
	}
	if err := db.db.Set(keyMark, []byte("short"), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			_ = db.Close()
		}
		t.Fatalf("Open with a damaged mark: %v, want ErrCorrupt", err)
	}
}

func TestDB_Sync(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, 1, put("a", "1", 1))
	if err := db.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	checkState(t, db, []want{{"a", "1", 1, true}})
}

func TestOpen_CreatesDir(t *testing.T) {
	dir := t.TempDir() + "/a/b/store"
	db := openTest(t, dir)
	if db.Applied() != 0 || db.SnapshotSeq() != 0 {
		t.Fatalf("new store Applied = %d, SnapshotSeq = %d; want 0, 0", db.Applied(), db.SnapshotSeq())
	}
}

func TestDB_Close(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, 1, put("a", "1", 1))
	v, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]func() error{
		"Get":            func() error { _, _, err := db.Get([]byte("a")); return err },
		"Version":        func() error { _, _, err := db.Version([]byte("a")); return err },
		"Apply":          func() error { return db.Apply(2, nil, apply.Mark{}) },
		"SetSnapshotSeq": func() error { return db.SetSnapshotSeq(1) },
		"Sync":           db.Sync,
		"View":           func() error { _, err := db.View(); return err },
		"ViewGet":        func() error { _, _, err := v.Get([]byte("a")); return err },
		"ViewList":       func() error { _, _, err := v.List(nil, nil, 10, false); return err },
		"ViewIterate":    func() error { return v.Iterate(func(_, _ []byte, _ uint64) error { return nil }) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("%s after Close = %v, want ErrClosed", name, err)
			}
		})
	}
	if err := v.Close(); err != nil {
		t.Fatalf("View.Close after DB.Close: %v", err)
	}
}
