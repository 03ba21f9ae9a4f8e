package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/apply"
)

const (
	defaultCacheBytes = 64 << 20
	// memTableBytes is pebble's MemTableSize. It sizes the disk pebble holds beside the data, not only memory: every
	// WAL file is preallocated to 110% of it (db.go walPreallocateSize), and pebble keeps up to
	// MemTableStopWritesThreshold+1 = 3 old WAL files for reuse (open.go MaxNumRecyclableLogs) on top of the live WAL
	// and those of memtables waiting for their flush. At 64 MiB that was 7 files of 70 MiB, 490 MiB for 40 MB of data.
	// See "Disk usage" in doc.go for the numbers behind 8 MiB.
	memTableBytes = 8 << 20
	// walBytesPerSync makes pebble write the WAL back to disk in the background every 512 KiB. Without it the
	// whole WAL of a memtable stays dirty until pebble rotates the WAL, which closes the old one with an fsync on
	// the write path: BenchmarkApplyStalls (quiet disk) saw the largest apply stall go from 92 ms to 19 ms.
	walBytesPerSync = 512 << 10
	// defaultReserveBytes is the default Options.DiskReserveBytes.
	defaultReserveBytes = 8 << 20
)

// Options configures a store. Zero values mean defaults.
type Options struct {
	// Logger receives pebble's messages and the store's own; nil means zap.NewNop().
	Logger *zap.Logger
	// CacheBytes is the size of pebble's block cache in bytes; 0 means 64 MiB.
	CacheBytes int64
	// OnWriteStall, if set, is called with the duration of every write stall when it ends (pebble delays writes
	// while its flushes or compactions fall behind). It must not block.
	OnWriteStall func(time.Duration)
	// DiskReserveBytes is the size in bytes of the file the store keeps in its directory (DISK_RESERVE) and deletes
	// when the disk fills, so that pebble's WAL and MANIFEST writes in flight can finish; 0 means 8 MiB. It must
	// exceed the largest batch Apply is given. Open needs twice this much free (the reserve, and as much again), and
	// a full store takes writes again once that much is free.
	DiskReserveBytes int64
	// IdemTTL is how long idempotency records are kept after their At: Apply deletes older ones as it goes (see
	// sweepIdem). 0 keeps them forever.
	IdemTTL time.Duration
	// Now is the clock of the idempotency sweep; nil means time.Now.
	Now func() time.Time
	// noWALBytesPerSync turns the WAL's background writeback off (BenchmarkApplyStalls compares).
	noWALBytesPerSync bool
	// memTableBytes overrides memTableBytes (tests).
	memTableBytes uint64
}

func (o Options) logger() *zap.Logger {
	if o.Logger == nil {
		return zap.NewNop()
	}
	return o.Logger.With(zap.String("component", "store"))
}

func (o Options) reserveBytes() int64 {
	if o.DiskReserveBytes <= 0 {
		return defaultReserveBytes
	}
	return o.DiskReserveBytes
}

// pebbleOptions builds the pebble options shared by Open and NewLoader, with defaults filled in, running on g.
func (o Options) pebbleOptions(log *zap.Logger, g *diskGuard) *pebble.Options {
	cache := o.CacheBytes
	if cache <= 0 {
		cache = defaultCacheBytes
	}
	memTable := o.memTableBytes
	if memTable == 0 {
		memTable = memTableBytes
	}
	po := &pebble.Options{
		FS:                 g,
		CacheSize:          cache,
		MemTableSize:       memTable,
		WALBytesPerSync:    walBytesPerSync,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{log: log.With(zap.String("subsystem", "pebble")), guard: g, lim: newLimiter(logEvery)},
		EventListener:      eventListener(log, o.OnWriteStall, g),
	}
	if o.noWALBytesPerSync {
		po.WALBytesPerSync = 0
	}
	po.EnsureDefaults()
	return po
}

// DB is an open store. Apply must be called by one goroutine at a time (the owner of the write side); every other
// method is safe for concurrent use.
type DB struct {
	db      *pebble.DB
	log     *zap.Logger
	guard   *diskGuard
	gate    *gate
	applied atomic.Uint64
	snap    atomic.Uint64

	// markMu guards markSeq and mark, the last entry mark recorded (see Mark).
	markMu  sync.Mutex
	markSeq uint64
	mark    apply.Mark

	// viewsMu guards views, the open Views, which Close releases because pebble refuses to close under open
	// snapshots.
	viewsMu sync.Mutex
	views   map[*View]struct{}

	// writeMu guards the write side's reused buffers; Apply has a single caller, so it is never contended.
	writeMu sync.Mutex
	batch   *pebble.Batch
	seqBuf  [8]byte
	markBuf [markRecordSize]byte
	keyBuf  []byte
	recBuf  []byte
	// The idempotency sweep's state (see sweepIdem), guarded by writeMu too.
	idemTTL     time.Duration
	now         func() time.Time
	idemSwept   time.Time
	idemCursor  []byte
	idemExpired uint64
}

// Open opens the store in dir, creating the directory and an empty store if missing, and loads the applied and
// snapshot sequences. Errors wrap ErrDiskFull when the disk has less than twice Options.DiskReserveBytes free (checked
// before pebble starts, so a full disk fails fast), ErrCorrupt for unreadable metadata, or pebble's and the OS's
// errors.
func Open(dir string, opts Options) (db *DB, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, wrapErr("open", err)
	}
	log := opts.logger()
	g := newDiskGuard(dir, opts.reserveBytes(), log)
	if err := g.prepare(); err != nil {
		return nil, wrapErr("open", err)
	}
	pdb, err := openPebble(dir, opts.pebbleOptions(log, g), g)
	if err != nil {
		return nil, wrapErr("open", err)
	}
	db = &DB{db: pdb, log: log, guard: g, gate: newGate(), batch: pdb.NewBatch(), views: make(map[*View]struct{}),
		idemTTL: opts.IdemTTL, now: opts.Now}
	if db.now == nil {
		db.now = time.Now
	}
	applied, err := readSeq(pdb, keyApplied)
	if err == nil {
		db.applied.Store(applied)
		var snap uint64
		snap, err = readSeq(pdb, keySnapshot)
		db.snap.Store(snap)
	}
	if err == nil {
		db.markSeq, db.mark, err = readMark(pdb)
		if err == nil && db.markSeq > applied {
			err = fmt.Errorf("%w: entry mark at seq %d beyond the applied seq %d", ErrCorrupt, db.markSeq, applied)
		}
	}
	if err == nil && g.full.Load() {
		err = g.fullErr() // opening used the reserve: the disk is full after all
	}
	if err != nil {
		_ = db.batch.Close()
		_ = closePebble(pdb, g)
		return nil, wrapErr("open", err)
	}
	log.Info("store opened", zap.String("dir", dir), zap.Uint64("applied_seq", applied),
		zap.Uint64("snapshot_seq", db.snap.Load()))
	return db, nil
}

// openPebble opens pebble on g, turning a panic or Fatalf of pebble's during the open into an error. If the disk
// fills while pebble opens (pebble.Open waits for the flush of the WAL it replays, and retries a failed flush
// forever), it fails the engine and returns ErrDiskFull at once: the abandoned open's goroutines stay parked (see
// eventListener) and its directory is fenced and unlocked, so a later Open can start afresh.
func openPebble(dir string, po *pebble.Options, g *diskGuard) (*pebble.DB, error) {
	type result struct {
		db  *pebble.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if r := recover(); r != nil {
				res = result{err: g.catch(r)}
			}
			done <- res
		}()
		res.db, res.err = pebble.Open(dir, po)
	}()
	select {
	case res := <-done:
		if res.err != nil && g.err() != nil {
			g.close()
		}
		return res.db, res.err
	case <-g.tripped:
	}
	select {
	case res := <-done: // it finished anyway, or failed
		if res.err != nil && g.err() != nil {
			g.close()
		}
		return res.db, res.err
	case <-time.After(100 * time.Millisecond):
	}
	err := g.err()
	if err == nil {
		g.fail(g.fullErr())
		err = g.err()
	}
	g.close()
	go func() { // close the DB if the abandoned open ever returns one; it is fenced, so Close cannot write
		if res := <-done; res.db != nil {
			_ = closePebble(res.db, g)
		}
	}()
	return nil, err
}

// closePebble closes pdb, or, after an engine failure, abandons it: pebble's Close would wait for a commit pipeline
// or a background job that a failure left stuck. The guard then releases the directory's lock, and its fence keeps
// the abandoned instance's goroutines from changing any file.
func closePebble(pdb *pebble.DB, g *diskGuard) error {
	g.close() // first, so that a flush waiting out a disk-full backoff lets pebble's Close go on at once
	if g.err() != nil {
		return nil
	}
	return pdb.Close()
}

// reader is what pebble.DB and pebble.Snapshot have in common for point reads.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// readMeta reads the meta record key and hands its bytes (valid during the call) to decode; a missing record calls
// nothing and is no error, leaving the caller's zero values.
func readMeta(r reader, key []byte, decode func([]byte) error) error {
	b, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return decode(b)
}

// readSeq reads a meta sequence; a missing record is 0.
func readSeq(r reader, key []byte) (seq uint64, err error) {
	err = readMeta(r, key, func(b []byte) (err error) {
		seq, err = decodeSeq(b)
		return err
	})
	return seq, err
}

// readMark reads the keyMark record; a missing record is (0, zero Mark).
func readMark(r reader) (seq uint64, mark apply.Mark, err error) {
	err = readMeta(r, keyMark, func(b []byte) (err error) {
		seq, mark, err = decodeMark(b)
		return err
	})
	return seq, mark, err
}

// Close closes the store. It waits for calls in progress, releases Views still open, and then every later call (also
// on Views) returns ErrClosed. Close is idempotent; only the first call can return an error. After an engine failure
// (Err() != nil) Close does not hang: it abandons the pebble instance (its goroutines and memory stay until the
// process ends, and can no longer change any file) and releases the directory, so Open can be called again.
func (db *DB) Close() error {
	if !db.gate.close() {
		return nil
	}
	failed := db.guard.err() != nil
	db.viewsMu.Lock()
	if n := len(db.views); n > 0 {
		db.log.Warn("closing store with open views", zap.Int("views", n))
	}
	for v := range db.views {
		if !failed {
			_ = v.snap.Close()
		}
	}
	clear(db.views)
	db.viewsMu.Unlock()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.batch != nil && !failed {
		_ = db.batch.Close()
	}
	if failed {
		db.log.Warn("store closed after an engine failure; the pebble instance is abandoned", zap.Error(db.guard.err()))
	}
	if err := closePebble(db.db, db.guard); err != nil {
		return wrapErr("close", err)
	}
	db.log.Info("store closed", zap.Uint64("applied_seq", db.applied.Load()))
	return nil
}

// Err returns nil while the store's engine is healthy. After pebble failed (it cannot survive a failed write to its
// WAL or MANIFEST, which the disk reserve makes unlikely but cannot rule out) it returns that failure, wrapping
// ErrDiskFull if a full disk caused it; every write then returns it, reads may still work, and the owner must Close
// the store and Open it again (Open fails with ErrDiskFull while the disk is still full). An ErrDiskFull from a write
// while Err() is nil needs no reopening: the store refused the write before pebble saw it, and Apply accepts writes
// again by itself once the disk has room.
func (db *DB) Err() error {
	if err := db.guard.err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// writable returns why a write cannot go to pebble now: the engine failed, or the disk is full (then it checks
// whether space came back, one statfs).
func (db *DB) writable() error {
	if err := db.guard.err(); err != nil {
		return err
	}
	if !db.guard.resume() {
		return db.guard.fullErr()
	}
	return nil
}

// commit applies b to pebble, turning a panic or Fatalf of pebble's (a failed WAL write) into an error.
func (db *DB) commit(b *pebble.Batch, opts *pebble.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = db.guard.catch(r)
		}
	}()
	return db.db.Apply(b, opts)
}

// Applied returns the last applied log sequence (0 for an empty store). It is an atomic load, cheap enough for every
// request, and is updated after each Apply commits.
func (db *DB) Applied() uint64 { return db.applied.Load() }

// SnapshotSeq returns the persisted snapshot sequence: the snapshot a follower restored from, or the last snapshot a
// leader created (0 if none).
func (db *DB) SnapshotSeq() uint64 { return db.snap.Load() }

// SetSnapshotSeq records the snapshot sequence. The write is not synced: a synced write would hold back every
// apply committed after it until the fsync ends (pebble publishes commits in order), a visible stall on a busy
// leader. It becomes durable with the next flush; after a crash SnapshotSeq may show the previous value, which only
// /v1/status reports. Errors wrap ErrClosed, ErrDiskFull (see Apply) or pebble's errors.
func (db *DB) SetSnapshotSeq(seq uint64) error {
	if !db.gate.enter() {
		return fmt.Errorf("store: set snapshot seq: %w", ErrClosed)
	}
	defer db.gate.leave()
	if err := db.writable(); err != nil {
		return wrapErr("set snapshot seq", err)
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], seq)
	b := db.db.NewBatch()
	_ = b.Set(keySnapshot, buf[:], nil)
	if err := db.commit(b, pebble.NoSync); err != nil {
		return wrapErr("set snapshot seq", err)
	}
	_ = b.Close()
	db.snap.Store(seq)
	return nil
}

// Mark returns the sequence and mark of the last entry whose mark was recorded by Apply, or (0, zero Mark) when
// none was: a store loaded from a snapshot, or written by a build older than marks, has none until it applies a
// marked entry. The sequence is at most Applied(); it is below it when later batches came without a mark.
func (db *DB) Mark() (uint64, apply.Mark) {
	db.markMu.Lock()
	defer db.markMu.Unlock()
	return db.markSeq, db.mark
}

// Get returns a copy of key's value and its version. Errors wrap ErrNotFound, ErrClosed or ErrCorrupt.
func (db *DB) Get(key []byte) (value []byte, version uint64, err error) {
	if !db.gate.enter() {
		return nil, 0, fmt.Errorf("store: get: %w", ErrClosed)
	}
	defer db.gate.leave()
	value, version, err = get(db.db, key, true)
	if err != nil {
		return nil, 0, fmt.Errorf("store: get: %w", err)
	}
	return value, version, nil
}

// Version returns key's version and whether it exists, for precondition checks; a missing key is not an error.
// Errors wrap ErrClosed or ErrCorrupt.
func (db *DB) Version(key []byte) (version uint64, exists bool, err error) {
	if !db.gate.enter() {
		return 0, false, fmt.Errorf("store: version: %w", ErrClosed)
	}
	defer db.gate.leave()
	_, version, err = get(db.db, key, false)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: version: %w", err)
	}
	return version, true, nil
}

// get reads key from r, copying the value only if withValue. Errors wrap ErrNotFound or ErrCorrupt.
func get(r reader, key []byte, withValue bool) ([]byte, uint64, error) {
	var stack [64]byte
	b, closer, err := r.Get(dataKey(stack[:0], key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	defer closer.Close()
	version, value, err := decodeValue(b)
	if err != nil {
		return nil, 0, err
	}
	if !withValue {
		return nil, version, nil
	}
	return append(make([]byte, 0, len(value)), value...), version, nil
}

// Apply commits muts and the new applied sequence seq in one atomic pebble batch. The batch is not synced: the log
// is the source of truth and recovery replays from applied+1, while pebble's WAL recovers a consistent prefix. muts
// may touch the same key several times (the later one wins); an empty muts only advances the sequence. Each put
// stores its Mutation.Version as the key's version; a mutation with an idempotency record stores the record (see
// Idem), and the batch also deletes expired records (Options.IdemTTL). A non-zero mark, the apply.EntryMark of the entry at seq, is
// recorded in the same batch (see Mark); a zero mark keeps the previous one.
//
// seq < Applied() returns an error wrapping ErrSeqRegression and changes nothing. A full disk returns an error
// wrapping ErrDiskFull and changes nothing either (Applied() stays): once a write of pebble's hit ENOSPC or EDQUOT,
// Apply refuses batches before they reach pebble until the disk has twice Options.DiskReserveBytes free, so the owner
// just calls Apply again later with the same batch, unless Err() reports that the engine failed (then Close and Open).
// Other errors wrap ErrClosed, the Err() failure, or pebble's errors. Only one goroutine may call Apply at a time;
// readers may run concurrently and see either all of a batch or none of it.
func (db *DB) Apply(seq uint64, muts []apply.Mutation, mark apply.Mark) error {
	if !db.gate.enter() {
		return fmt.Errorf("store: apply: %w", ErrClosed)
	}
	defer db.gate.leave()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if applied := db.applied.Load(); seq < applied {
		return fmt.Errorf("store: apply: %w: %d after %d", ErrSeqRegression, seq, applied)
	}
	if err := db.writable(); err != nil {
		return wrapErr("apply", err)
	}
	b := db.batch
	b.Reset()
	if err := db.sweepIdem(b); err != nil {
		return err
	}
	for i := range muts {
		m := &muts[i]
		if len(m.Idem.Key) > 0 {
			db.keyBuf = idemKey(db.keyBuf[:0], m.Idem.Key)
			db.recBuf = apply.AppendIdemRecord(db.recBuf[:0], m.Version, m.Idem)
			if err := b.Set(db.keyBuf, db.recBuf, nil); err != nil {
				return fmt.Errorf("store: apply: %w", err)
			}
			continue
		}
		if m.Delete {
			op := b.DeleteDeferred(1 + len(m.Key))
			op.Key[0] = prefixData
			copy(op.Key[1:], m.Key)
			if err := op.Finish(); err != nil {
				return fmt.Errorf("store: apply: %w", err)
			}
			continue
		}
		op := b.SetDeferred(1+len(m.Key), uvarintLen(m.Version)+len(m.Value))
		op.Key[0] = prefixData
		copy(op.Key[1:], m.Key)
		n := binary.PutUvarint(op.Value, m.Version)
		copy(op.Value[n:], m.Value)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("store: apply: %w", err)
		}
	}
	binary.BigEndian.PutUint64(db.seqBuf[:], seq)
	if err := b.Set(keyApplied, db.seqBuf[:], nil); err != nil {
		return fmt.Errorf("store: apply: %w", err)
	}
	if !mark.IsZero() {
		encodeMark(&db.markBuf, seq, mark)
		if err := b.Set(keyMark, db.markBuf[:], nil); err != nil {
			return fmt.Errorf("store: apply: %w", err)
		}
	}
	if err := db.commit(b, pebble.NoSync); err != nil {
		if db.guard.err() != nil {
			db.batch = nil // pebble may still hold it; Close must not touch it
		}
		return wrapErr("apply", err)
	}
	db.applied.Store(seq)
	if !mark.IsZero() {
		db.markMu.Lock()
		db.markSeq, db.mark = seq, mark
		db.markMu.Unlock()
	}
	return nil
}

// uvarintLen is the size of binary.PutUvarint(v).
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Sync fsyncs pebble's WAL, making every Apply so far durable. Errors wrap ErrClosed, the Err() failure, or pebble's
// errors (ErrDiskFull if the disk caused them).
func (db *DB) Sync() (err error) {
	if !db.gate.enter() {
		return fmt.Errorf("store: sync: %w", ErrClosed)
	}
	defer db.gate.leave()
	if err := db.guard.err(); err != nil {
		return wrapErr("sync", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = wrapErr("sync", db.guard.catch(r))
		}
	}()
	if err := db.db.LogData(nil, pebble.Sync); err != nil {
		return wrapErr("sync", err)
	}
	return nil
}
