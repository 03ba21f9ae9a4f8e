package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

// makeStore creates a closed store in dir whose only key "who" holds name.
func makeStore(t *testing.T, dir, name string) {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, db, 1, put("who", name, 1))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// makeRestore creates a finished restore in dataDir whose only key "who" holds name.
func makeRestore(t *testing.T, dataDir, name string) {
	t.Helper()
	l := newLoaderTest(t, RestoreDir(dataDir))
	if err := l.Add([]byte("who"), []byte(name), 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(1, 1, apply.Mark{}); err != nil {
		t.Fatal(err)
	}
}

func TestInstall(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dataDir string)
		wantErr error
		wantWho string // "" means no store
	}{
		{"Fresh", func(t *testing.T, d string) { makeRestore(t, d, "new") }, nil, "new"},
		{"ReplacesStore", func(t *testing.T, d string) {
			makeStore(t, StoreDir(d), "old")
			makeRestore(t, d, "new")
		}, nil, "new"},
		{"LeftoverOld", func(t *testing.T, d string) {
			makeStore(t, oldDir(d), "older")
			makeStore(t, StoreDir(d), "old")
			makeRestore(t, d, "new")
		}, nil, "new"},
		{"NoRestore", func(t *testing.T, d string) { makeStore(t, StoreDir(d), "old") }, os.ErrNotExist, "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			tt.setup(t, dataDir)
			err := Install(dataDir)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Install = %v, want %v", err, tt.wantErr)
			}
			if exists(t, oldDir(dataDir)) || exists(t, RestoreDir(dataDir)) {
				t.Fatal("store.old or restore left behind")
			}
			db := openTest(t, StoreDir(dataDir))
			checkState(t, db, []want{{"who", tt.wantWho, 1, true}})
		})
	}
}

func TestCleanStale(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, dataDir string)
		wantStore string // "" means no store
	}{
		{"Nothing", func(*testing.T, string) {}, ""},
		{"KeepsStore", func(t *testing.T, d string) { makeStore(t, StoreDir(d), "live") }, "live"},
		{"CrashMidRestore", func(t *testing.T, d string) {
			makeStore(t, StoreDir(d), "live")
			// A loader that never finished: its process died, leaving files and no applied sequence.
			l, err := NewLoader(RestoreDir(d), Options{})
			if err != nil {
				t.Fatal(err)
			}
			l.sstTarget = 1 << 10
			for i := range 200 {
				if err := l.Add([]byte{'k', byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)}, []byte("v"), 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.db.Close(); err != nil { // simulate the crash: files stay, no Finish
				t.Fatal(err)
			}
			l.db, l.finished = nil, true
		}, "live"},
		{"CrashMidInstall", func(t *testing.T, d string) {
			// Renamed store to store.old, crashed before restore became store.
			makeStore(t, oldDir(d), "old")
			makeRestore(t, d, "new")
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			tt.setup(t, dataDir)
			if err := CleanStale(dataDir); err != nil {
				t.Fatalf("CleanStale: %v", err)
			}
			if exists(t, RestoreDir(dataDir)) || exists(t, oldDir(dataDir)) {
				t.Fatal("CleanStale left restore or store.old")
			}
			if !exists(t, StoreDir(dataDir)) {
				if tt.wantStore != "" {
					t.Fatal("CleanStale removed the live store")
				}
				return
			}
			db := openTest(t, StoreDir(dataDir))
			checkState(t, db, []want{{"who", tt.wantStore, 1, true}})
		})
	}
	t.Run("MissingDataDir", func(t *testing.T) {
		if err := CleanStale(filepath.Join(t.TempDir(), "none")); err != nil {
			t.Fatalf("CleanStale: %v", err)
		}
	})
}
