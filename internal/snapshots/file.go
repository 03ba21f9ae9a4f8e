package snapshots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

const (
	// tempPrefix starts the names of files being written; ValidKey forbids segments starting with '.', so they can
	// never collide with a key and List skips them.
	tempPrefix = ".tmp-"
	// staleTempAge is how old a temporary file must be before Init(create=true) removes it as a crash leftover. An
	// active Put writes continuously, so its file is always recent.
	staleTempAge = time.Hour
	// copyBufSize is the buffer for Put's copy loop.
	copyBufSize = 256 << 10
	// writebackEvery is how many bytes Put writes between two requests to write the file back (see writebackFile).
	writebackEvery = 1 << 20
	// putAttempts covers a concurrent Delete removing an empty directory between Put's MkdirAll and CreateTemp.
	putAttempts = 3
)

// fileStore is the file:// backend: one file per object under root.
type fileStore struct {
	root string
	log  *zap.Logger
}

func newFileStore(root string, log *zap.Logger) *fileStore {
	return &fileStore{root: root, log: log.With(zap.String(logStore, "file://"+root))}
}

func (s *fileStore) String() string { return "file://" + s.root }

// path maps a valid key to its file.
func (s *fileStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

func (s *fileStore) Init(ctx context.Context, create bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshots: init %s: %w", s, err)
	}
	if create {
		if err := os.MkdirAll(s.root, 0o755); err != nil {
			return fmt.Errorf("snapshots: init %s: %w", s, err)
		}
		s.sweepTemp(ctx)
	}
	fi, err := os.Stat(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshots: init %s: %w", s, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("snapshots: init %s: %w", s, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("snapshots: init %s: not a directory", s)
	}
	return nil
}

// sweepTemp removes temporary files a crashed writer left behind. Errors only cost disk space, so they are logged.
func (s *fileStore) sweepTemp(ctx context.Context) {
	cutoff := time.Now().Add(-staleTempAge)
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if err := os.Remove(p); err == nil {
				s.log.Info("removed stale temporary file", zap.String(logPath, p))
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("sweep temporary files", zap.Error(err))
	}
}

func (s *fileStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := ValidKey(key); err != nil {
		return 0, fmt.Errorf("snapshots: put: %w", err)
	}
	path := s.path(key)
	dir := filepath.Dir(path)
	var (
		f   *os.File
		err error
	)
	for range putAttempts {
		if err = os.MkdirAll(dir, 0o755); err != nil {
			continue
		}
		if f, err = os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*"); err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("snapshots: put %s: %w", key, err)
	}
	n, err := s.writeTemp(ctx, f, r)
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return 0, fmt.Errorf("snapshots: put %s: %w", key, err)
	}
	// The rename is durable once the directory is; new parent directories need their own parents synced.
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return 0, fmt.Errorf("snapshots: put %s: %w", key, err)
		}
		if d == s.root || len(d) <= len(s.root) {
			break
		}
	}
	return n, nil
}

// writeTemp copies r into f, syncs and closes it. f is closed on every path.
func (s *fileStore) writeTemp(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	n, err := io.CopyBuffer(&writebackFile{f: f}, ctxReader{ctx: ctx, r: r}, make([]byte, copyBufSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (s *fileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, fmt.Errorf("snapshots: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snapshots: get %s: %w", key, err)
	}
	path := s.path(key)
	// O_NONBLOCK: opening a FIFO (or a device) planted in the store must not block the restore, uninterruptibly,
	// until a writer appears; anything but a regular file is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("snapshots: get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: get %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("snapshots: get %s: %w", key, err)
	}
	switch {
	case fi.IsDir(): // a key prefix, as on S3: no object
		_ = f.Close()
		return nil, fmt.Errorf("snapshots: get %s: %w", key, ErrNotFound)
	case !fi.Mode().IsRegular():
		_ = f.Close()
		return nil, fmt.Errorf("snapshots: get %s: %w: not a regular file (%s)", key, ErrCorrupt, fi.Mode().Type())
	}
	return &fileObject{f: f, fi: fi, path: path, key: key}, nil
}

// fileObject reads one object and, at its end, checks the key still names the same file: an unlinked file stays
// readable on POSIX systems, so this is where a deletion during the read becomes visible.
type fileObject struct {
	f    *os.File
	fi   fs.FileInfo
	path string
	key  string
	err  error // sticky
}

func (o *fileObject) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.f.Read(p)
	if errors.Is(err, io.EOF) {
		cur, serr := os.Stat(o.path)
		switch {
		case errors.Is(serr, fs.ErrNotExist):
			err = fmt.Errorf("snapshots: get %s: deleted during read: %w", o.key, ErrNotFound)
		case serr != nil:
			err = fmt.Errorf("snapshots: get %s: %w", o.key, serr)
		case !os.SameFile(o.fi, cur):
			err = fmt.Errorf("snapshots: get %s: replaced during read: %w", o.key, ErrNotFound)
		}
	} else if err != nil {
		err = fmt.Errorf("snapshots: get %s: %w", o.key, err)
	}
	o.err = err
	return n, err
}

func (o *fileObject) Close() error { return o.f.Close() }

func (s *fileStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, fmt.Errorf("snapshots: list: %w", err)
	}
	if _, err := os.Stat(s.root); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshots: list %s: %w", s, ErrNotFound)
		}
		return nil, fmt.Errorf("snapshots: list %s: %w", s, err)
	}
	// Walk only the deepest directory the prefix names completely.
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		start = s.path(prefix[:i])
	}
	keys := []string{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != start {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshots: list %s: %w", s, err)
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *fileStore) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return fmt.Errorf("snapshots: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshots: delete %s: %w", key, err)
	}
	path := s.path(key)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("snapshots: delete %s: %w", key, err)
	}
	// Remove directories left empty, up to (not including) the root; a non-empty one stops the climb.
	for d := filepath.Dir(path); len(d) > len(s.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// syncDir fsyncs a directory so renames and creations in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops a copy loop when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writebackFile writes to f and, every writebackEvery bytes, has the kernel start writing what it holds back to
// disk. Without it a snapshot's data file stays in the page cache until the fsync at the end, which then writes
// hundreds of megabytes at once and stalls the leader's own writes to the same disk for tens of milliseconds. It
// stops asking after the first failure (some file systems do not support it): the fsync still makes the file
// durable. As a plain io.Writer it also hides *os.File's ReadFrom, so CopyBuffer goes through ctxReader.
type writebackFile struct {
	f          *os.File
	n, started int64
	off        bool
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if !w.off && w.n-w.started >= writebackEvery {
		w.off = startWriteback(w.f, w.started, w.n) != nil
		w.started = w.n
	}
	return n, err
}
