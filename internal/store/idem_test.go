package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

// fakeClock is a settable clock for the idempotency sweep.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func idemRec(key string, at time.Time, hash byte) apply.Mutation {
	rec := apply.Idem{Key: []byte(key), At: uint64(at.UnixMilli())}
	rec.Hash[0] = hash
	return apply.Mutation{Idem: rec}
}

// withVersion sets a record mutation's write sequence.
func withVersion(m apply.Mutation, seq uint64) apply.Mutation { m.Version = seq; return m }

func mustIdem(t *testing.T, db *DB, key string) (uint64, apply.Idem, bool) {
	t.Helper()
	seq, rec, found, err := db.Idem([]byte(key))
	if err != nil {
		t.Fatalf("Idem(%q): %v", key, err)
	}
	return seq, rec, found
}

func TestDB_IdemRecords(t *testing.T) {
	db := openTest(t, t.TempDir())
	at := time.UnixMilli(1_700_000_000_000)
	mustApply(t, db, 1, put("a", "1", 1), withVersion(idemRec("k1", at, 7), 1))
	seq, rec, found := mustIdem(t, db, "k1")
	if !found || seq != 1 || rec.Hash[0] != 7 || rec.At != uint64(at.UnixMilli()) || string(rec.Key) != "k1" {
		t.Fatalf("Idem(k1) = %d, %+v, %v; want seq 1, hash 7, at %d", seq, rec, found, at.UnixMilli())
	}
	if _, _, found := mustIdem(t, db, "k2"); found {
		t.Fatal("Idem(k2) found a record that was never written")
	}
	// A record is not a key of the state: reads, lists and the digest see only "a".
	checkState(t, db, []want{{key: "a", value: "1", version: 1, exists: true}, {key: "ik1"}})
	v, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	keys, digest, err := v.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d := apply.NewDigest()
	d.Add([]byte("a"), []byte("1"), 1)
	if keys != 1 || digest != d.Sum() {
		t.Errorf("Digest = %d, %s; want 1 key, %s (records are not state)", keys, digest, d.Sum())
	}
	items, _, err := v.List(nil, nil, 10, false)
	if err != nil || len(items) != 1 {
		t.Errorf("List = %v, %v; want only key a", items, err)
	}
	// Written again by a later write: the newer result wins.
	mustApply(t, db, 2, put("b", "2", 2), withVersion(idemRec("k1", at.Add(time.Second), 8), 2))
	if seq, rec, _ := mustIdem(t, db, "k1"); seq != 2 || rec.Hash[0] != 8 {
		t.Errorf("after a second write Idem(k1) = %d, hash %d; want 2, 8", seq, rec.Hash[0])
	}
	// The view taken before it still has the first one.
	var got []string
	if err := v.IterateIdem(func(rec apply.Idem, seq uint64) error {
		got = append(got, fmt.Sprintf("%s@%d", rec.Key, seq))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[k1@1]" {
		t.Errorf("IterateIdem = %v; want [k1@1]", got)
	}
}

func TestDB_IdemSweep(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	db, err := Open(t.TempDir(), Options{CacheBytes: 8 << 20, IdemTTL: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	start := clock.Now()
	// More records than one sweep reads, all written at start.
	n := idemSweepMax + idemSweepMax/2
	muts := make([]apply.Mutation, 0, n)
	for i := range n {
		muts = append(muts, withVersion(idemRec(fmt.Sprintf("old-%05d", i), start, 1), 1))
	}
	mustApply(t, db, 1, muts...)
	// A record written 50 s later does not expire with them.
	clock.Add(50 * time.Second)
	mustApply(t, db, 2, withVersion(idemRec("young", clock.Now(), 2), 2))

	count := func() int {
		v, err := db.View()
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		c := 0
		if err := v.IterateIdem(func(apply.Idem, uint64) error { c++; return nil }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The sweep of batch 2 read the first idemSweepMax records (none expired) and stopped there. Past the retention
	// of the old ones, batch 3's sweep goes on from there: it deletes the remaining n-idemSweepMax old ones, reads
	// "young" (not expired) and wraps.
	clock.Add(11 * time.Second)
	mustApply(t, db, 3, withVersion(idemRec("old-00000", clock.Now(), 3), 3))
	if c, want := count(), idemSweepMax+1; c != want {
		t.Errorf("after one sweep: %d records; want %d (one sweep reads %d)", c, want, idemSweepMax)
	}
	// Within idemSweepEvery nothing more is swept; after it, the sweep starts from the first record again, which
	// batch 3 wrote again: that one survives, the other idemSweepMax-1 it reads are deleted.
	mustApply(t, db, 4)
	clock.Add(idemSweepEvery)
	mustApply(t, db, 5)
	if c := count(); c != 2 {
		t.Errorf("after the second sweep: %d records; want 2 (old-00000 rewritten, young)", c)
	}
	if seq, _, found := mustIdem(t, db, "old-00000"); !found || seq != 3 {
		t.Errorf("the record written again: found %v at %d; want it at 3", found, seq)
	}
	if _, _, found := mustIdem(t, db, "young"); !found {
		t.Error("a record within its retention was swept")
	}
	// A minute later both are expired; the sweep reads "young" first (where the last one stopped), then wraps.
	clock.Add(time.Minute)
	mustApply(t, db, 6)
	clock.Add(idemSweepEvery)
	mustApply(t, db, 7)
	if c := count(); c != 0 {
		t.Errorf("a minute later: %d records; want 0", c)
	}
}

func TestLoader_AddIdem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	l := newLoaderTest(t, dir)
	rec := func(k string) apply.Idem { return apply.Idem{Key: []byte(k), At: 5} }
	if err := l.Add([]byte("a"), []byte("1"), 3); err != nil {
		t.Fatal(err)
	}
	if err := l.AddIdem(rec("k1"), 3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		call func() error
	}{
		{"RecordNotAfterPrevious", ErrUnordered, func() error { return l.AddIdem(rec("k1"), 3) }},
		{"KeyAfterRecord", ErrUnordered, func() error { return l.Add([]byte("b"), []byte("2"), 3) }},
		{"InvalidKey", apply.ErrInvalidKey, func() error { return l.AddIdem(rec("k\x7f2"), 3) }},
		{"SeqZero", apply.ErrMalformed, func() error { return l.AddIdem(rec("k3"), 0) }},
	} {
		if err := tc.call(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.err)
		}
	}
	if err := l.AddIdem(rec("k2"), 2); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(3, 3, apply.Mark{}); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, dir)
	for k, want := range map[string]uint64{"k1": 3, "k2": 2} {
		if seq, _, found := mustIdem(t, db, k); !found || seq != want {
			t.Errorf("Idem(%s) = %d, %v; want %d", k, seq, found, want)
		}
	}
	checkState(t, db, []want{{key: "a", value: "1", version: 3, exists: true}})
}
