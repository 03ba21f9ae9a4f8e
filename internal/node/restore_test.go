package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

// keysSource is a snapshot source of n keys at seq (versions within [1, seq]).
type keysSource struct {
	seq uint64
	n   int
}

func (s keysSource) Seq() uint64 { return s.seq }

func (s keysSource) Iterate(fn func(key, value []byte, version uint64) error) error {
	for i := range s.n {
		if err := fn(fmt.Appendf(nil, "k%06d", i), fmt.Appendf(nil, "value %d of snapshot %d", i, s.seq), uint64(i)%s.seq+1); err != nil {
			return err
		}
	}
	return nil
}

// retainingStore stands for retention racing a download: the first read of a victim snapshot's data deletes that
// snapshot (manifest first, then data, as Prune does) before the read goes on.
type retainingStore struct {
	snapshots.Store
	stream  string
	victims map[uint64]bool

	mu      sync.Mutex
	deleted []uint64
}

func (s *retainingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	for seq := range s.victims {
		if key == fmt.Sprintf("%s/%020d/data", s.stream, seq) {
			return &deleteOnRead{ReadCloser: rc, del: func() error { return s.retain(ctx, seq) }}, nil
		}
	}
	return rc, nil
}

func (s *retainingStore) retain(ctx context.Context, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.victims[seq] {
		return nil
	}
	delete(s.victims, seq)
	s.deleted = append(s.deleted, seq)
	for _, name := range []string{"manifest.json", "data"} {
		if err := s.Store.Delete(ctx, fmt.Sprintf("%s/%020d/%s", s.stream, seq, name)); err != nil {
			return err
		}
	}
	return nil
}

type deleteOnRead struct {
	io.ReadCloser
	once sync.Once
	del  func() error
}

func (d *deleteOnRead) Read(p []byte) (int, error) {
	var err error
	d.once.Do(func() { err = d.del() })
	if err != nil {
		return 0, err
	}
	return d.ReadCloser.Read(p)
}

// A snapshot that retention deletes while a follower downloads it makes the follower read the manifests again and
// restore the newest one still there; when none is left, it waits for a snapshot (errNoSnapshot), it does not fail.
func TestRestorer_SnapshotDeletedMidDownload(t *testing.T) {
	const stream = "RET"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := testlog.New(t)
	setup := func(t *testing.T, victims ...uint64) (*restorer, *retainingStore) {
		t.Helper()
		st, err := snapshots.Open("file://"+t.TempDir(), snapshots.S3Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		repo := snapshots.NewRepo(st, stream, log)
		for _, src := range []keysSource{{seq: 10, n: 2000}, {seq: 20, n: 3000}} {
			if _, err := repo.Create(ctx, src, "test"); err != nil {
				t.Fatal(err)
			}
		}
		rs := &retainingStore{Store: st, stream: stream, victims: map[uint64]bool{}}
		for _, v := range victims {
			rs.victims[v] = true
		}
		return &restorer{
			repo:    snapshots.NewRepo(rs, stream, log),
			dataDir: t.TempDir(),
			log:     log,
			metrics: metrics.New("follower"),
			state:   &stateTracker{},
		}, rs
	}

	t.Run("OlderOneRestored", func(t *testing.T) {
		r, rs := setup(t, 20)
		m, err := r.restoreNewest(ctx, 1)
		if err != nil {
			t.Fatalf("restoreNewest = %v, want the older snapshot restored", err)
		}
		if m.Seq != 10 || len(rs.deleted) != 1 || rs.deleted[0] != 20 {
			t.Fatalf("restored seq %d after deleting %v; want seq 10 after deleting 20", m.Seq, rs.deleted)
		}
		db, err := store.Open(store.StoreDir(r.dataDir), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if db.Applied() != 10 {
			t.Fatalf("installed store at seq %d, want 10", db.Applied())
		}
		if v, _, err := db.Get([]byte("k001999")); err != nil || string(v) != "value 1999 of snapshot 10" {
			t.Fatalf("k001999 = %q, %v", v, err)
		}
		if _, _, err := db.Get([]byte("k002000")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("k002000 (only in the deleted snapshot) = %v, want ErrNotFound", err)
		}
	})

	t.Run("NoneLeft", func(t *testing.T) {
		r, rs := setup(t, 10, 20)
		_, err := r.restoreNewest(ctx, 1)
		if !errors.Is(err, errNoSnapshot) {
			t.Fatalf("restoreNewest with every snapshot deleted mid-download = %v, want errNoSnapshot", err)
		}
		if len(rs.deleted) != 2 {
			t.Fatalf("deleted %v, want both snapshots", rs.deleted)
		}
	})
}

// A snapshot whose data object is missing for good behind a manifest that stays, or is not a regular file (a FIFO
// planted in a file:// store, whose open would block forever), counts as corrupt after a bounded retry: the restorer
// falls back to the older snapshot. When no manifest is valid at all, the error says so.
func TestRestorer_BadDataFallsBack(t *testing.T) {
	const stream = "BAD"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := testlog.New(t)
	setup := func(t *testing.T) (*restorer, string) {
		t.Helper()
		root := t.TempDir()
		st, err := snapshots.Open("file://"+root, snapshots.S3Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		repo := snapshots.NewRepo(st, stream, log)
		for _, src := range []keysSource{{seq: 10, n: 100}, {seq: 20, n: 200}} {
			if _, err := repo.Create(ctx, src, "test"); err != nil {
				t.Fatal(err)
			}
		}
		return &restorer{repo: repo, dataDir: t.TempDir(), log: log, metrics: metrics.New("follower"),
			state: &stateTracker{}}, filepath.Join(root, stream, fmt.Sprintf("%020d", 20))
	}
	for _, tc := range []struct {
		name      string
		breakData func(t *testing.T, dir string)
	}{
		{"Missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "data")); err != nil {
				t.Fatal(err)
			}
		}},
		{"FIFO", func(t *testing.T, dir string) {
			data := filepath.Join(dir, "data")
			if err := os.Remove(data); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(data, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, dir := setup(t)
			tc.breakData(t, dir)
			m, err := r.restoreNewest(ctx, 1)
			if err != nil || m.Seq != 10 {
				t.Fatalf("restoreNewest = seq %d, %v; want the older snapshot (seq 10)", m.Seq, err)
			}
		})
	}
	t.Run("NoValidManifest", func(t *testing.T) {
		r, dir := setup(t)
		for _, d := range []string{dir, filepath.Join(filepath.Dir(dir), fmt.Sprintf("%020d", 10))} {
			if err := os.WriteFile(filepath.Join(d, "manifest.json"), []byte(`{"format":1,"bytes":9223372036854775807}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := r.restoreNewest(ctx, 1)
		if !errors.Is(err, errNoSnapshot) || !strings.Contains(err.Error(), "none is valid") {
			t.Fatalf("restoreNewest with only invalid manifests = %v, want errNoSnapshot saying none is valid", err)
		}
	})
}
