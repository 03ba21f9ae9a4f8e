package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/testutil/smalldisk"
)

// bigPut is the seq'th key of the disk-full tests with a 512 KiB value (the contract's largest) that does not
// compress, so the data takes its size on disk.
func bigPut(seq uint64) apply.Mutation {
	value := make([]byte, apply.MaxValueLen)
	r := rand.New(rand.NewPCG(seq, 1))
	for i := 0; i < len(value); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			value[i+j] = byte(v >> (8 * j))
		}
	}
	return apply.Mutation{Key: fmt.Appendf(nil, "key/%06d", seq), Value: value, Version: seq}
}

// checkPrefix checks that the store holds exactly the keys of seqs 1..Applied() and none of the next ten.
func checkPrefix(t *testing.T, db *DB) {
	t.Helper()
	applied := db.Applied()
	for seq := uint64(1); seq <= applied+10; seq++ {
		want := bigPut(seq)
		value, version, err := db.Get(want.Key)
		switch {
		case seq <= applied && (err != nil || version != seq || !bytes.Equal(value, want.Value)):
			t.Fatalf("Get(%s) with Applied() = %d: version %d, %d bytes, %v; want version %d and its value",
				want.Key, applied, version, len(value), err, seq)
		case seq > applied && !errors.Is(err, ErrNotFound):
			t.Fatalf("Get(%s) beyond Applied() = %d: version %d, %v; want ErrNotFound", want.Key, applied, version, err)
		}
	}
}

// A follower whose disk fills while it applies gets ErrDiskFull from Apply, with nothing of the refused batch
// applied, instead of a pebble panic; once space returns, Apply takes the same batch again, and the store reopens
// holding exactly the applied prefix.
func TestDB_Apply_DiskFull(t *testing.T) {
	mnt := smalldisk.Mount(t, 48<<20)
	filler := filepath.Join(mnt, "filler")
	smalldisk.WriteFiller(t, filler, 16<<20)
	core, logs := observer.New(zapcore.InfoLevel)
	dir := filepath.Join(mnt, "store")
	db, err := Open(dir, Options{Logger: zap.New(core), CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })

	seq := uint64(1)
	for ; ; seq++ {
		err = db.Apply(seq, []apply.Mutation{bigPut(seq)}, apply.Mark{})
		if err != nil {
			break
		}
		if seq > 200 {
			t.Fatalf("applied %d batches of 512 KiB to a 48 MiB tmpfs without an error", seq)
		}
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Apply(%d) on a full disk = %v, want ErrDiskFull", seq, err)
	}
	if db.Err() != nil {
		t.Fatalf("Err() = %v after a refused write, want nil (the engine never saw the full disk)", db.Err())
	}
	if got := db.Applied(); got != seq-1 {
		t.Fatalf("Applied() = %d after Apply(%d) failed, want %d", got, seq, seq-1)
	}
	checkPrefix(t, db)
	t.Logf("disk full at seq %d: %v", seq, err)

	// Still full: refused again, cheaply, and without a flood of log lines while pebble's flushes fail.
	before := logs.Len()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if err := db.Apply(seq, []apply.Mutation{bigPut(seq)}, apply.Mark{}); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Apply(%d) on a still full disk = %v, want ErrDiskFull", seq, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := logs.Len() - before; n > 20 {
		t.Fatalf("%d log lines in one second of a full disk, want at most 20: %v", n, logs.All()[before:before+20])
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	last := seq + 3
	for ; seq <= last; seq++ {
		if err := db.Apply(seq, []apply.Mutation{bigPut(seq)}, apply.Mark{}); err != nil {
			t.Fatalf("Apply(%d) after space returned: %v", seq, err)
		}
	}
	checkPrefix(t, db)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db, err = Open(dir, Options{CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("Open after space returned: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if got := db.Applied(); got != last {
		t.Fatalf("Applied() = %d after reopening, want %d", got, last)
	}
	checkPrefix(t, db)
}

// Opening a store on a full disk fails at once with ErrDiskFull, before pebble starts (whose flush of the replayed WAL
// would retry without end, spinning and logging); once space returns it opens with its data.
func TestOpen_DiskFull(t *testing.T) {
	mnt := smalldisk.Mount(t, 48<<20)
	dir := filepath.Join(mnt, "store")
	db, err := Open(dir, Options{CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		mustApply(t, db, seq, bigPut(seq))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	smalldisk.WriteFiller(t, filler, -1)

	for _, d := range []string{dir, filepath.Join(mnt, "new")} {
		core, logs := observer.New(zapcore.DebugLevel)
		start := time.Now()
		db, err := Open(d, Options{Logger: zap.New(core), CacheBytes: 8 << 20})
		if err == nil {
			_ = db.Close()
		}
		if !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Open(%s) on a full disk = %v, want ErrDiskFull", d, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("Open(%s) on a full disk took %v", d, took)
		}
		if n := logs.Len(); n > 5 {
			t.Fatalf("Open on a full disk logged %d lines: %v", n, logs.All())
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("Open after space returned: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if db.Applied() != 4 {
		t.Fatalf("Applied() = %d, want 4", db.Applied())
	}
	checkPrefix(t, db)
	mustApply(t, db, 5, bigPut(5))
}

// A restore that fills the disk fails with ErrDiskFull and Abort removes what it wrote; NewLoader on a full disk fails
// at once.
func TestLoader_DiskFull(t *testing.T) {
	mnt := smalldisk.Mount(t, 48<<20)
	smalldisk.WriteFiller(t, filepath.Join(mnt, "filler"), 16<<20)
	dir := filepath.Join(mnt, "restore")
	l, err := NewLoader(dir, Options{CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("NewLoader: %v", err)
	}
	l.sstTarget = 4 << 20
	seq := uint64(1)
	for ; ; seq++ {
		m := bigPut(seq)
		if err = l.Add(m.Key, m.Value, m.Version); err != nil {
			break
		}
		if seq > 200 {
			t.Fatalf("loaded %d values of 512 KiB onto a 48 MiB tmpfs without an error", seq)
		}
	}
	if err == nil || !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Add(%d) on a full disk = %v, want ErrDiskFull", seq, err)
	}
	l.Abort()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore dir after Abort: %v, want it removed", err)
	}

	smalldisk.WriteFiller(t, filepath.Join(mnt, "filler2"), -1)
	if _, err := NewLoader(dir, Options{}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("NewLoader on a full disk = %v, want ErrDiskFull", err)
	}
}

// With a reserve too small for the WAL writes in flight, pebble's WAL writer does fail: the store then reports the
// engine failure through Apply and Err (instead of pebble's panic killing the process), Close abandons the engine
// without hanging, and after space returns the store opens again holding a consistent prefix.
func TestDB_Apply_DiskFull_EngineFails(t *testing.T) {
	mnt := smalldisk.Mount(t, 48<<20)
	filler := filepath.Join(mnt, "filler")
	smalldisk.WriteFiller(t, filler, 16<<20)
	dir := filepath.Join(mnt, "store")
	opts := Options{CacheBytes: 8 << 20, DiskReserveBytes: 4 << 10}
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	seq := uint64(1)
	for ; err == nil; seq++ {
		if seq > 200 {
			t.Fatalf("applied %d batches of 1 MiB to a 48 MiB tmpfs without an error", seq)
		}
		err = db.Apply(seq, []apply.Mutation{bigPut(seq)}, apply.Mark{})
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Apply on a full disk = %v, want ErrDiskFull", err)
	}
	if err := db.Err(); err != nil && !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Err() = %v, want nil or ErrDiskFull", err)
	}
	t.Logf("Apply: %v; Err(): %v", err, db.Err())
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		if err != nil && !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Close: %v, want nil or ErrDiskFull", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs after a disk-full failure")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Open may need a second try: the first can find the disk full while it flushes the WAL it replays.
	deadline := time.Now().Add(10 * time.Second)
	for db, err = Open(dir, opts); err != nil; db, err = Open(dir, opts) {
		if !errors.Is(err, ErrDiskFull) || time.Now().After(deadline) {
			t.Fatalf("Open after space returned: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { _ = db.Close() })
	checkPrefix(t, db)
	next := db.Applied() + 1
	if err := db.Apply(next, []apply.Mutation{bigPut(next)}, apply.Mark{}); err != nil {
		t.Fatalf("Apply(%d) after reopening: %v", next, err)
	}
}
