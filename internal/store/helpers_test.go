package store

import (
	"errors"
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

func openTest(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func put(key, value string, version uint64) apply.Mutation {
	return apply.Mutation{Key: []byte(key), Value: []byte(value), Version: version}
}

func del(key string, version uint64) apply.Mutation {
	return apply.Mutation{Key: []byte(key), Version: version, Delete: true}
}

func mustApply(t testing.TB, db *DB, seq uint64, muts ...apply.Mutation) {
	t.Helper()
	if err := db.Apply(seq, muts, apply.Mark{}); err != nil {
		t.Fatalf("Apply(%d): %v", seq, err)
	}
}

// want is a key's expected state; absent when !exists.
type want struct {
	key     string
	value   string
	version uint64
	exists  bool
}

type getter interface {
	Get(key []byte) ([]byte, uint64, error)
}

func checkState(t *testing.T, g getter, wants []want) {
	t.Helper()
	for _, w := range wants {
		value, version, err := g.Get([]byte(w.key))
		if !w.exists {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) = %q, %d, %v; want ErrNotFound", w.key, value, version, err)
			}
			continue
		}
		if err != nil || string(value) != w.value || version != w.version {
			t.Errorf("Get(%q) = %q, %d, %v; want %q, %d", w.key, value, version, err, w.value, w.version)
		}
	}
}
