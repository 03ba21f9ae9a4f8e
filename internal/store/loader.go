package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/apply"
)

// sstTargetBytes is the size of data (keys plus values) at which the Loader finishes an sstable and ingests it. It
// bounds the temporary disk space and the writer's in-memory index.
const sstTargetBytes = 64 << 20

// loaderBytesPerSync is how much of a table the Loader writes between two requests to write it back to disk (pebble's
// own default for its tables is 512 KiB).
const loaderBytesPerSync = 1 << 20

// Loader bulk-loads a restore into a fresh directory. Keys arrive in strictly increasing byte order, so they are
// written straight into sorted sstables that pebble ingests into its bottom level: no memtable, no WAL, no
// compaction. Memory stays bounded (one sstable writer) whatever the snapshot size.
//
// A Loader is owned by one goroutine. Finish or Abort must be called.
type Loader struct {
	dir   string
	log   *zap.Logger
	guard *diskGuard
	db    *pebble.DB
	wopts sstable.WriterOptions

	w         *sstable.Writer // current sstable, nil between tables
	sstTarget int             // sstTargetBytes; tests make it small
	sstPath   string
	sstBytes  int
	sstCount  int

	last     []byte
	haveLast bool
	keys     uint64
	// lastIdem is the last idempotency record's key (see AddIdem), idem their count.
	lastIdem     []byte
	haveLastIdem bool
	idem         uint64
	kbuf         []byte
	vbuf         []byte
	finished     bool
}

// NewLoader removes dir if it exists and creates an empty store in it. Errors wrap ErrDiskFull (as for Open), the OS's
// or pebble's errors.
func NewLoader(dir string, opts Options) (*Loader, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, wrapErr("new loader", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, wrapErr("new loader", err)
	}
	log := opts.logger()
	g := newDiskGuard(dir, opts.reserveBytes(), log)
	if err := g.prepare(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, wrapErr("new loader", err)
	}
	po := opts.pebbleOptions(log, g)
	db, err := openPebble(dir, po, g)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, wrapErr("new loader", err)
	}
	return &Loader{dir: dir, log: log, guard: g, db: db, wopts: po.MakeWriterOptions(6, db.TableFormat()),
		sstTarget: sstTargetBytes}, nil
}

// writable returns why the Loader cannot write now: its engine failed or the disk is full.
func (l *Loader) writable() error {
	if err := l.guard.err(); err != nil {
		return err
	}
	if !l.guard.resume() {
		return l.guard.fullErr()
	}
	return nil
}

// pebble runs fn, which calls into pebble, turning a panic or Fatalf of pebble's into an error.
func (l *Loader) pebble(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = l.guard.catch(r)
		}
	}()
	return fn()
}

// Add appends one key. key must be strictly greater than the previous key (else an error wrapping ErrUnordered)
// and valid (else apply.ErrInvalidKey or apply.ErrValueTooLarge). A full disk returns an error wrapping ErrDiskFull.
// The slices may be reused after Add returns. After an error other than a rejected key the caller must Abort.
func (l *Loader) Add(key, value []byte, version uint64) error {
	if l.db == nil {
		return fmt.Errorf("store: loader add: %w", ErrClosed)
	}
	if l.haveLast && bytes.Compare(key, l.last) <= 0 || l.haveLastIdem {
		return fmt.Errorf("store: loader add: %w", ErrUnordered)
	}
	if err := apply.ValidateKey(key); err != nil {
		return fmt.Errorf("store: loader add: %w", err)
	}
	if err := apply.ValidateValue(value); err != nil {
		return fmt.Errorf("store: loader add: %w", err)
	}
	if l.w == nil {
		if err := l.writable(); err != nil {
			return wrapErr("loader add", err)
		}
		if err := l.startTable(); err != nil {
			return wrapErr("loader add", err)
		}
	}
	l.kbuf = dataKey(l.kbuf[:0], key)
	l.vbuf = binary.AppendUvarint(l.vbuf[:0], version)
	l.vbuf = append(l.vbuf, value...)
	if err := l.w.Set(l.kbuf, l.vbuf); err != nil {
		return wrapErr("loader add", err)
	}
	l.last = append(l.last[:0], key...)
	l.haveLast = true
	l.keys++
	l.sstBytes += len(l.kbuf) + len(l.vbuf)
	if l.sstBytes >= l.sstTarget {
		if err := l.ingestTable(); err != nil {
			return wrapErr("loader add", err)
		}
	}
	return nil
}

// AddIdem appends one idempotency record, the result of the write at seq. Records come after every Add, in strictly
// increasing byte order of their keys (else an error wrapping ErrUnordered); the key must be valid
// (apply.ValidateIdemKey). Errors are otherwise Add's.
func (l *Loader) AddIdem(rec apply.Idem, seq uint64) error {
	if l.db == nil {
		return fmt.Errorf("store: loader add idempotency record: %w", ErrClosed)
	}
	if l.haveLastIdem && bytes.Compare(rec.Key, l.lastIdem) <= 0 {
		return fmt.Errorf("store: loader add idempotency record: %w", ErrUnordered)
	}
	if err := apply.ValidateIdemKey(rec.Key); err != nil {
		return fmt.Errorf("store: loader add idempotency record: %w", err)
	}
	if seq == 0 || rec.At == 0 {
		return fmt.Errorf("store: loader add idempotency record: %w: seq %d, at %d", apply.ErrMalformed, seq, rec.At)
	}
	if l.w == nil {
		if err := l.writable(); err != nil {
			return wrapErr("loader add idempotency record", err)
		}
		if err := l.startTable(); err != nil {
			return wrapErr("loader add idempotency record", err)
		}
	}
	l.kbuf = idemKey(l.kbuf[:0], rec.Key)
	l.vbuf = apply.AppendIdemRecord(l.vbuf[:0], seq, rec)
	if err := l.w.Set(l.kbuf, l.vbuf); err != nil {
		return wrapErr("loader add idempotency record", err)
	}
	l.lastIdem = append(l.lastIdem[:0], rec.Key...)
	l.haveLastIdem = true
	l.idem++
	l.sstBytes += len(l.kbuf) + len(l.vbuf)
	if l.sstBytes >= l.sstTarget {
		if err := l.ingestTable(); err != nil {
			return wrapErr("loader add idempotency record", err)
		}
	}
	return nil
}

// startTable opens the next temporary sstable in the store directory (pebble ignores names it did not write).
func (l *Loader) startTable() error {
	l.sstCount++
	l.sstPath = filepath.Join(l.dir, fmt.Sprintf("load-%06d.sst", l.sstCount))
	f, err := l.guard.Create(l.sstPath, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	// Write the table back to disk as it grows, as pebble does for its own tables, instead of leaving it all to the
	// fsync when it is finished: one flush of tens of megabytes stalls every other writer of the disk.
	f = vfs.NewSyncingFile(f, vfs.SyncingFileOptions{BytesPerSync: loaderBytesPerSync})
	l.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), l.wopts)
	l.sstBytes = 0
	return nil
}

// ingestTable finishes the current sstable and moves it into the store.
func (l *Loader) ingestTable() error {
	w := l.w
	l.w = nil
	if err := w.Close(); err != nil {
		return err
	}
	if err := l.writable(); err != nil {
		return err
	}
	// Ingest links the file into the store and removes the original.
	return l.pebble(func() error { return l.db.Ingest(context.Background(), []string{l.sstPath}) })
}

// Finish ingests what is left, writes the applied sequence seq, the snapshot sequence snapshotSeq and, when not zero,
// mark as the mark of the entry at seq, flushes and fsyncs, and closes: dir is then a complete store that Open reads
// with Applied() == seq, SnapshotSeq() == snapshotSeq and Mark() == (seq, mark) (or none). After an error the caller
// must Abort.
func (l *Loader) Finish(seq, snapshotSeq uint64, mark apply.Mark) error {
	if l.db == nil {
		return fmt.Errorf("store: loader finish: %w", ErrClosed)
	}
	if l.w != nil {
		if err := l.ingestTable(); err != nil {
			return wrapErr("loader finish", err)
		}
	}
	if err := l.writable(); err != nil {
		return wrapErr("loader finish", err)
	}
	b := l.db.NewBatch()
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], seq)
	_ = b.Set(keyApplied, buf[:], nil)
	binary.BigEndian.PutUint64(buf[:], snapshotSeq)
	_ = b.Set(keySnapshot, buf[:], nil)
	if !mark.IsZero() {
		var rec [markRecordSize]byte
		encodeMark(&rec, seq, mark)
		_ = b.Set(keyMark, rec[:], nil)
	}
	if err := l.pebble(func() error { return l.db.Apply(b, pebble.Sync) }); err != nil {
		return wrapErr("loader finish", err)
	}
	_ = b.Close()
	if err := l.pebble(l.db.Flush); err != nil {
		return wrapErr("loader finish", err)
	}
	if l.guard.full.Load() {
		// The flush or a WAL write used the reserve: the store would open on a full disk.
		return wrapErr("loader finish", l.guard.fullErr())
	}
	db := l.db
	l.db = nil
	if err := closePebble(db, l.guard); err != nil {
		return wrapErr("loader finish", err)
	}
	if err := syncDir(l.dir); err != nil {
		return wrapErr("loader finish", err)
	}
	l.finished = true
	l.log.Info("restore loaded", zap.String("dir", l.dir), zap.Uint64("keys", l.keys), zap.Uint64("idempotency_records", l.idem),
		zap.Uint64("applied_seq", seq), zap.Uint64("snapshot_seq", snapshotSeq))
	return nil
}

// Abort closes the loader and removes its directory. It is a no-op after a successful Finish and safe to call more
// than once, so it can be deferred.
func (l *Loader) Abort() {
	if l.finished {
		return
	}
	if l.w != nil {
		_ = l.w.Close()
		l.w = nil
	}
	if l.db != nil {
		_ = closePebble(l.db, l.guard)
		l.db = nil
	}
	if err := os.RemoveAll(l.dir); err != nil {
		l.log.Warn("remove aborted restore", zap.String("dir", l.dir), zap.Error(err))
	}
}
