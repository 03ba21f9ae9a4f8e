package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

func newLoaderTest(t *testing.T, dir string) *Loader {
	t.Helper()
	l, err := NewLoader(dir, Options{CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("NewLoader: %v", err)
	}
	t.Cleanup(l.Abort)
	return l
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLoader_Install(t *testing.T) {
	tests := []struct {
		name      string
		keys      int
		sstTarget int
	}{
		{"Empty", 0, sstTargetBytes},
		{"OneTable", 500, sstTargetBytes},
		{"ManyTables", 2000, 4 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			// An existing store with other data must be replaced entirely.
			old, err := Open(StoreDir(dataDir), Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, old, 3, put("stale", "x", 3))
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}

			l := newLoaderTest(t, RestoreDir(dataDir))
			l.sstTarget = tt.sstTarget
			ref := apply.NewDigest()
			for i := range tt.keys {
				key, value := fmt.Appendf(nil, "key/%06d", i), fmt.Appendf(nil, "value %d", i*i)
				if err := l.Add(key, value, uint64(i+1)); err != nil {
					t.Fatalf("Add: %v", err)
				}
				ref.Add(key, value, uint64(i+1))
			}
			if err := l.Finish(9000, 8000, apply.Mark{}); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if tt.sstTarget < sstTargetBytes && l.sstCount < 2 {
				t.Fatalf("wrote %d sstables, want several", l.sstCount)
			}
			l.Abort() // a no-op after Finish
			if !exists(t, RestoreDir(dataDir)) {
				t.Fatal("Abort after Finish removed the restore")
			}
			if err := Install(dataDir); err != nil {
				t.Fatalf("Install: %v", err)
			}
			if exists(t, RestoreDir(dataDir)) || exists(t, oldDir(dataDir)) {
				t.Fatal("Install left restore or store.old behind")
			}

			db := openTest(t, StoreDir(dataDir))
			if db.Applied() != 9000 || db.SnapshotSeq() != 8000 {
				t.Fatalf("Applied = %d, SnapshotSeq = %d; want 9000, 8000", db.Applied(), db.SnapshotSeq())
			}
			v := viewTest(t, db)
			keys, digest, err := v.Digest()
			if err != nil || keys != uint64(tt.keys) || digest != ref.Sum() {
				t.Fatalf("Digest = %d, %s, %v; want %d, %s", keys, digest, err, tt.keys, ref.Sum())
			}
			wants := []want{{"stale", "", 0, false}}
			if tt.keys > 0 {
				last := tt.keys - 1
				wants = append(wants, want{"key/000000", "value 0", 1, true},
					want{fmt.Sprintf("key/%06d", last), fmt.Sprintf("value %d", last*last), uint64(last + 1), true})
			}
			checkState(t, db, wants)
			if v.Seq() != 9000 {
				t.Fatalf("view Seq = %d, want 9000", v.Seq())
			}
			// The loaded store takes further writes.
			mustApply(t, db, 9001, put("key/000000", "new", 9001))
			checkState(t, db, []want{{"key/000000", "new", 9001, true}})
		})
	}
}

func TestLoader_Add(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		value   []byte
		wantErr error
	}{
		{"OK", "m2", nil, nil},
		{"Equal", "m", nil, ErrUnordered},
		{"Smaller", "a", nil, ErrUnordered},
		{"PrefixIsSmaller", "", nil, ErrUnordered},
		{"InvalidKey", "n\x00", nil, apply.ErrInvalidKey},
		{"ValueTooLarge", "z", make([]byte, apply.MaxValueLen+1), apply.ErrValueTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoaderTest(t, filepath.Join(t.TempDir(), "restore"))
			if err := l.Add([]byte("m"), []byte("v"), 1); err != nil {
				t.Fatal(err)
			}
			err := l.Add([]byte(tt.key), tt.value, 2)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add(%q) = %v, want %v", tt.key, err, tt.wantErr)
			}
		})
	}
}

func TestLoader_Abort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "restore")
	l := newLoaderTest(t, dir)
	l.sstTarget = 1 << 10
	for i := range 100 {
		if err := l.Add(fmt.Appendf(nil, "k%04d", i), []byte("some value bytes"), 1); err != nil {
			t.Fatal(err)
		}
	}
	l.Abort()
	if exists(t, dir) {
		t.Fatal("Abort left the directory")
	}
	l.Abort()
	if err := l.Add([]byte("z"), nil, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Abort = %v, want ErrClosed", err)
	}
	if err := l.Finish(1, 1, apply.Mark{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Finish after Abort = %v, want ErrClosed", err)
	}
}

func TestNewLoader_RemovesExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "restore")
	l := newLoaderTest(t, dir)
	if err := l.Add([]byte("old"), []byte("v"), 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(5, 5, apply.Mark{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = newLoaderTest(t, dir)
	if exists(t, filepath.Join(dir, "junk")) {
		t.Fatal("NewLoader kept a file of the old directory")
	}
	mark := apply.EntryMark(7, "leader-1-ab-7", []byte("seven"))
	if err := l.Finish(7, 0, mark); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, dir)
	if db.Applied() != 7 {
		t.Fatalf("Applied = %d, want 7", db.Applied())
	}
	if seq, got := db.Mark(); seq != 7 || got != mark {
		t.Fatalf("Mark = %d, %x; want 7, %x (the first load, finished without a mark, must not leave one)", seq, got, mark)
	}
	checkState(t, db, []want{{"old", "", 0, false}})
}
