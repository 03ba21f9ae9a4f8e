//go:build bench

package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
)

// snapshotDataPath is where the file:// store keeps a snapshot's data object (the contract's layout).
func snapshotDataPath(root, stream string, seq uint64) string {
	return filepath.Join(root, stream, fmt.Sprintf("%020d", seq), "data")
}

// stageCeilings are the raw costs of each stage of a restore, each measured alone in the benchmark process over the
// same snapshot data file (warm in the page cache, as it is for the follower that just read it).
type stageCeilings struct {
	read   time.Duration // read the file to io.Discard (the file store's "download")
	sha256 time.Duration // SHA-256 of the file (the download check)
	zstd   time.Duration // zstd-decompress the file to io.Discard, one goroutine
	decode time.Duration // zstd + the snapshot decoder (records parsed, nothing done with them)
	digest time.Duration // the state digest over the decoded records (the content check)
	load   time.Duration // store.Loader bulk load of the decoded records (held in memory) + Finish
	keys   int
}

// measureStages measures each stage over the data file. scratch is a directory for the loader's store.
func measureStages(ctx context.Context, dataPath, scratch string, seq uint64) (stageCeilings, error) {
	var c stageCeilings
	var err error
	if c.read, err = timeFile(dataPath, func(f *os.File) error {
		_, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
		return err
	}); err != nil {
		return c, err
	}
	if c.sha256, err = timeFile(dataPath, func(f *os.File) error {
		_, err := io.CopyBuffer(sha256.New(), f, make([]byte, 1<<20))
		return err
	}); err != nil {
		return c, err
	}
	if c.zstd, err = timeFile(dataPath, func(f *os.File) error {
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer zr.Close()
		_, err = io.CopyBuffer(io.Discard, zr, make([]byte, 1<<20))
		return err
	}); err != nil {
		return c, err
	}
	if c.decode, err = timeFile(dataPath, func(f *os.File) error {
		return decodeFile(f, func([]byte, []byte, uint64) {})
	}); err != nil {
		return c, fmt.Errorf("bench: decode ceiling: %w", err)
	}
	// Keep the records in memory (untimed), so the digest and the loader can be timed alone.
	var recs records
	if _, err := timeFile(dataPath, func(f *os.File) error { return decodeFile(f, recs.add) }); err != nil {
		return c, fmt.Errorf("bench: decode: %w", err)
	}
	c.keys = recs.len()

	start := time.Now()
	dig := apply.NewDigest()
	for i := range recs.len() {
		dig.Add(recs.at(i))
	}
	_ = dig.Sum()
	c.digest = time.Since(start)

	dir := filepath.Join(scratch, "loader-ceiling")
	defer os.RemoveAll(dir)
	start = time.Now()
	l, err := store.NewLoader(dir, store.Options{})
	if err != nil {
		return c, fmt.Errorf("bench: load ceiling: %w", err)
	}
	defer l.Abort()
	for i := range recs.len() {
		if err := l.Add(recs.at(i)); err != nil {
			return c, fmt.Errorf("bench: load ceiling: %w", err)
		}
		if i%65536 == 0 && ctx.Err() != nil {
			return c, ctx.Err()
		}
	}
	if err := l.Finish(seq, seq, apply.Mark{}); err != nil {
		return c, fmt.Errorf("bench: load ceiling: %w", err)
	}
	c.load = time.Since(start)
	return c, nil
}

// decodeFile decompresses and decodes a snapshot data file, calling fn for each record.
func decodeFile(f *os.File, fn func(key, value []byte, version uint64)) error {
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer zr.Close()
	dec, err := snapshots.NewDecoder(zr)
	if err != nil {
		return err
	}
	for {
		k, v, ver, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(k, v, ver)
	}
}

func timeFile(path string, fn func(*os.File) error) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("bench: open %s: %w", path, err)
	}
	defer f.Close()
	start := time.Now()
	if err := fn(f); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", path, err)
	}
	return time.Since(start), nil
}

// records holds decoded snapshot records in one arena (keys and values back to back), so the loader ceiling does
// not pay for allocation.
type records struct {
	arena []byte
	offs  []int // per record: start of key; key length and value length follow in lens
	lens  [][2]int
	vers  []uint64
}

func (r *records) add(k, v []byte, ver uint64) {
	r.offs = append(r.offs, len(r.arena))
	r.lens = append(r.lens, [2]int{len(k), len(v)})
	r.vers = append(r.vers, ver)
	r.arena = append(r.arena, k...)
	r.arena = append(r.arena, v...)
}

func (r *records) len() int { return len(r.offs) }

func (r *records) at(i int) (key, value []byte, version uint64) {
	o, l := r.offs[i], r.lens[i]
	return r.arena[o : o+l[0]], r.arena[o+l[0] : o+l[0]+l[1]], r.vers[i]
}

// inProcessRestore runs the follower's restore path (snapshots.Repo.Restore into a store.Loader, then Finish) in
// the benchmark process on the newest snapshot under root, optionally writing a CPU profile of it. It shows where a
// restore's time goes without the process, NATS and HTTP around it.
func inProcessRestore(ctx context.Context, root, stream, scratch, profile string) (time.Duration, error) {
	st, err := snapshots.Open("file://"+root, snapshots.S3Config{}, nil)
	if err != nil {
		return 0, err
	}
	repo := snapshots.NewRepo(st, stream, nil)
	ms, err := repo.List(ctx)
	if err != nil {
		return 0, err
	}
	if len(ms) == 0 {
		return 0, fmt.Errorf("bench: no snapshot under %s", root)
	}
	dir := filepath.Join(scratch, "inprocess-restore")
	defer os.RemoveAll(dir)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, fmt.Errorf("bench: profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, fmt.Errorf("bench: profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	l, err := store.NewLoader(dir, store.Options{})
	if err != nil {
		return 0, err
	}
	defer l.Abort()
	if err := repo.Restore(ctx, ms[0], l, nil); err != nil {
		return 0, err
	}
	if err := l.Finish(ms[0].Seq, ms[0].Seq, apply.Mark{}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
