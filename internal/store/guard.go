package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// reserveName is the file in the store directory that holds the disk reserve (pebble ignores names it did not write).
const reserveName = "DISK_RESERVE"

// errFenced is what the file system of a failed engine returns for every change, so that an abandoned pebble instance
// can never touch the files of the one opened after it.
var errFenced = errors.New("store: engine failed, its files are fenced")

// isDiskFull reports whether err comes from a full disk or an exhausted quota. It is the one place the store maps the
// OS's errors onto ErrDiskFull.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, ErrDiskFull)
}

// wrapErr wraps err for the operation op, adding ErrDiskFull when the disk is the cause.
func wrapErr(op string, err error) error {
	if isDiskFull(err) && !errors.Is(err, ErrDiskFull) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrDiskFull, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// diskGuard is the vfs.FS pebble runs on. It exists because pebble cannot survive a failed write to its WAL or
// MANIFEST: the commit path panics (db.go commitWrite, rotateWAL; the panic in rotateWAL even unlocks an unlocked
// mutex, which no recover catches) and a MANIFEST write calls Logger.Fatalf (version_set.go logAndApply). So the guard
// keeps reserveBytes of the disk in a reserve file and:
//
//   - the first time a write to a WAL, MANIFEST or other metadata file fails with ENOSPC or EDQUOT, it deletes the
//     reserve and retries the write once, so pebble never sees that error;
//   - any such error marks the disk full: the DB then refuses writes with ErrDiskFull before they reach pebble, and
//     while it is full the guard fails the creation of new sstables at once, so flushes and compactions (whose
//     failures pebble handles by retrying) do not eat the space the WAL needs;
//   - resume checks the free space and, once the reserve can be recreated with room to spare, clears the mark.
//
// If pebble fails anyway (the reserve was too small, or the disk returned another error), fail records the error and
// fences the guard: every later change to the directory through it returns errFenced.
type diskGuard struct {
	vfs.FS // the real file system
	dir    string
	size   int64 // reserve size in bytes
	log    *zap.Logger

	full    atomic.Bool
	fenced  atomic.Bool
	failure atomic.Pointer[error]

	// mu guards the reserve file and lock.
	mu   sync.Mutex
	lock io.Closer // pebble's LOCK, so that Close can release it when pebble cannot be closed

	stopOnce sync.Once
	stop     chan struct{} // closed when the owner closes the store: ends backoff sleeps

	tripOnce sync.Once
	tripped  chan struct{} // closed the first time the disk is full or the engine fails (openPebble waits on it)
}

func newDiskGuard(dir string, reserveBytes int64, log *zap.Logger) *diskGuard {
	return &diskGuard{FS: vfs.Default, dir: dir, size: reserveBytes, log: log, stop: make(chan struct{}),
		tripped: make(chan struct{})}
}

func (g *diskGuard) trip() { g.tripOnce.Do(func() { close(g.tripped) }) }

// prepare makes sure the reserve exists before pebble opens, and fails fast with ErrDiskFull if it cannot be created
// or the disk has less than the reserve's size free on top of it.
func (g *diskGuard) prepare() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.ensureReserve(); err != nil {
		return err
	}
	avail, err := g.available()
	if err != nil {
		return err
	}
	if avail < uint64(g.size) {
		return fmt.Errorf("%w: %d bytes free beside the %d-byte reserve, %d needed", ErrDiskFull, avail, g.size, g.size)
	}
	return nil
}

// available returns the bytes free for unprivileged users on the store's file system.
func (g *diskGuard) available() (uint64, error) {
	u, err := g.FS.GetDiskUsage(g.dir)
	if err != nil {
		return 0, err
	}
	return u.AvailBytes, nil
}

// ensureReserve creates the reserve file with its blocks allocated, if it is missing or short. g.mu is held.
func (g *diskGuard) ensureReserve() error {
	path := filepath.Join(g.dir, reserveName)
	if fi, err := os.Stat(path); err == nil && fi.Size() >= g.size {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, g.size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, g.size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		if isDiskFull(err) {
			return fmt.Errorf("%w: create the %d-byte disk reserve: %w", ErrDiskFull, g.size, err)
		}
		return err
	}
	return nil
}

// writeZeros fills f with n zero bytes, for file systems without fallocate.
func writeZeros(f *os.File, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		chunk := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:chunk]); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// onFull handles a write that failed with ENOSPC or EDQUOT: it marks the disk full and, for a critical file, deletes
// the reserve. It reports whether the write should be retried.
func (g *diskGuard) onFull(critical bool, err error) bool {
	if g.full.CompareAndSwap(false, true) {
		g.log.Warn("store disk full: refusing writes until space returns", zap.Error(err))
	}
	g.trip()
	if !critical {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rerr := os.Remove(filepath.Join(g.dir, reserveName)); rerr == nil {
		g.log.Warn("store disk reserve released for pebble's metadata writes", zap.Int64("bytes", g.size))
	}
	return true
}

// retried records the outcome of a write retried after onFull: a critical write that failed again is an error pebble
// cannot survive (its WAL and MANIFEST writers keep the first error), so the engine has failed.
func (g *diskGuard) retried(critical bool, err error) {
	if critical && err != nil {
		g.fail(err)
	}
}

// resume reports whether writes may go on: true if the disk is not marked full, or if it has room again for the
// reserve plus as much again, in which case it recreates the reserve and clears the mark.
func (g *diskGuard) resume() bool {
	if !g.full.Load() {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.full.Load() {
		return true
	}
	avail, err := g.available()
	if err != nil || avail < 2*uint64(g.size) {
		return false
	}
	if err := g.ensureReserve(); err != nil {
		return false
	}
	g.full.Store(false)
	g.log.Info("store disk space is back: accepting writes", zap.Uint64("free_bytes", avail))
	return true
}

// fullErr is the error for a write refused because the disk is full.
func (g *diskGuard) fullErr() error {
	avail, _ := g.available()
	return fmt.Errorf("%w: %d bytes free, writes resume at %d", ErrDiskFull, avail, 2*g.size)
}

// fail records the engine's failure (the first one wins) and fences the directory.
func (g *diskGuard) fail(err error) {
	if g.failure.CompareAndSwap(nil, &err) {
		g.fenced.Store(true)
		g.trip()
		g.log.Error("store engine failed: writes are refused until the store is closed and opened again",
			zap.Error(err))
	}
}

// err returns the recorded failure, wrapping ErrDiskFull if the disk caused it, or nil.
func (g *diskGuard) err() error {
	p := g.failure.Load()
	if p == nil {
		return nil
	}
	if isDiskFull(*p) && !errors.Is(*p, ErrDiskFull) {
		return fmt.Errorf("%w: engine failed: %w", ErrDiskFull, *p)
	}
	return fmt.Errorf("engine failed: %w", *p)
}

// catch turns a panic raised by pebble on the caller's goroutine (a failed commit, or Fatalf) into an error, and
// records the failure. Panics that are programming errors (runtime errors, non-error values) go on.
func (g *diskGuard) catch(r any) error {
	var err error
	switch v := r.(type) {
	case fatalPanic:
		err = v.err
	case runtime.Error:
		panic(r)
	case error:
		err = v
	default:
		panic(r)
	}
	g.fail(err)
	return g.err()
}

// close ends the guard's waits; after a failure it also releases pebble's LOCK, which pebble's Close would have.
// It is idempotent.
func (g *diskGuard) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	if g.err() == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lock != nil {
		_ = g.lock.Close()
		g.lock = nil
	}
}

// sleep waits for d or until the guard is closed.
func (g *diskGuard) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.stop:
	}
}

// critical reports whether a failed write to the file would be fatal to pebble: everything but sstables and blob
// files, whose writers are flushes, compactions and the Loader, which all handle errors.
func critical(name string) bool {
	return !strings.HasSuffix(name, ".sst") && !strings.HasSuffix(name, ".blob")
}

// check returns errFenced after a failure, and fails the creation of a non-critical file at once while the disk is
// marked full.
func (g *diskGuard) check(name string) error {
	if g.fenced.Load() {
		return &os.PathError{Op: "write", Path: name, Err: errFenced}
	}
	if g.full.Load() && !critical(name) {
		return &os.PathError{Op: "create", Path: name, Err: syscall.ENOSPC}
	}
	return nil
}

func (g *diskGuard) wrap(name string, f vfs.File) vfs.File {
	if f == nil {
		return nil
	}
	return &guardFile{File: f, g: g, critical: critical(name)}
}

// Unwrap returns the real file system.
func (g *diskGuard) Unwrap() vfs.FS { return g.FS }

func (g *diskGuard) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := g.check(name); err != nil {
		return nil, err
	}
	f, err := g.FS.Create(name, category)
	if err != nil && isDiskFull(err) && g.onFull(critical(name), err) {
		f, err = g.FS.Create(name, category)
	}
	return g.wrap(name, f), err
}

func (g *diskGuard) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := g.check(newname); err != nil {
		return nil, err
	}
	f, err := g.FS.ReuseForWrite(oldname, newname, category)
	if err != nil && isDiskFull(err) && g.onFull(critical(newname), err) {
		f, err = g.FS.ReuseForWrite(oldname, newname, category)
	}
	return g.wrap(newname, f), err
}

func (g *diskGuard) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if g.fenced.Load() {
		return nil, &os.PathError{Op: "open", Path: name, Err: errFenced}
	}
	f, err := g.FS.OpenReadWrite(name, category, opts...)
	return g.wrap(name, f), err
}

func (g *diskGuard) Link(oldname, newname string) error {
	if g.fenced.Load() {
		return &os.PathError{Op: "link", Path: newname, Err: errFenced}
	}
	return g.FS.Link(oldname, newname)
}

func (g *diskGuard) Remove(name string) error {
	if g.fenced.Load() {
		return &os.PathError{Op: "remove", Path: name, Err: errFenced}
	}
	return g.FS.Remove(name)
}

func (g *diskGuard) RemoveAll(name string) error {
	if g.fenced.Load() {
		return &os.PathError{Op: "remove", Path: name, Err: errFenced}
	}
	return g.FS.RemoveAll(name)
}

func (g *diskGuard) Rename(oldname, newname string) error {
	if g.fenced.Load() {
		return &os.PathError{Op: "rename", Path: newname, Err: errFenced}
	}
	err := g.FS.Rename(oldname, newname)
	if err != nil && isDiskFull(err) && g.onFull(true, err) {
		err = g.FS.Rename(oldname, newname)
	}
	return err
}

func (g *diskGuard) MkdirAll(dir string, perm os.FileMode) error {
	if g.fenced.Load() {
		return &os.PathError{Op: "mkdir", Path: dir, Err: errFenced}
	}
	err := g.FS.MkdirAll(dir, perm)
	if err != nil && isDiskFull(err) && g.onFull(true, err) {
		err = g.FS.MkdirAll(dir, perm)
	}
	return err
}

// Lock keeps pebble's lock so that Close can release it after a failure.
func (g *diskGuard) Lock(name string) (io.Closer, error) {
	c, err := g.FS.Lock(name)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.lock = c
	g.mu.Unlock()
	return &guardLock{g: g, c: c}, nil
}

// guardLock is pebble's handle on its LOCK; closing it twice (pebble, then the guard) closes it once.
type guardLock struct {
	g *diskGuard
	c io.Closer
}

func (l *guardLock) Close() error {
	l.g.mu.Lock()
	defer l.g.mu.Unlock()
	if l.g.lock != l.c {
		return nil
	}
	l.g.lock = nil
	return l.c.Close()
}

// guardFile applies the guard's rules to the writes of one file.
type guardFile struct {
	vfs.File
	g        *diskGuard
	critical bool
}

func (f *guardFile) Write(p []byte) (int, error) {
	if f.g.fenced.Load() {
		return 0, errFenced
	}
	n, err := f.File.Write(p)
	if err != nil && isDiskFull(err) && f.g.onFull(f.critical, err) {
		var n2 int
		n2, err = f.File.Write(p[n:])
		n += n2
		f.g.retried(f.critical, err)
	}
	return n, err
}

func (f *guardFile) WriteAt(p []byte, off int64) (int, error) {
	if f.g.fenced.Load() {
		return 0, errFenced
	}
	n, err := f.File.WriteAt(p, off)
	if err != nil && isDiskFull(err) && f.g.onFull(f.critical, err) {
		var n2 int
		n2, err = f.File.WriteAt(p[n:], off+int64(n))
		n += n2
		f.g.retried(f.critical, err)
	}
	return n, err
}

// Sync is never retried: a failed fsync may have dropped the dirty pages, so a second one proves nothing.
func (f *guardFile) Sync() error {
	if f.g.fenced.Load() {
		return errFenced
	}
	err := f.File.Sync()
	if err != nil && isDiskFull(err) {
		f.g.onFull(false, err)
	}
	return err
}

func (f *guardFile) SyncData() error {
	if f.g.fenced.Load() {
		return errFenced
	}
	err := f.File.SyncData()
	if err != nil && isDiskFull(err) {
		f.g.onFull(false, err)
	}
	return err
}
