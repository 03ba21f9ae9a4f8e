package snapshots

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// contractPartSize is the S3 part size the contract runs with: objects above it go multipart.
const contractPartSize = 5 << 20

// RunStoreContract runs the Store contract against a backend. newStore must return a fresh store whose root does
// not exist yet, every time it is called.
func RunStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	ctx := t.Context()
	ready := func(t *testing.T) Store {
		t.Helper()
		s := newStore(t)
		if err := s.Init(ctx, true); err != nil {
			t.Fatalf("Init(create): %v", err)
		}
		return s
	}

	t.Run("InitNoCreateMissing", func(t *testing.T) {
		s := newStore(t)
		if err := s.Init(ctx, false); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Init(false) on a missing root = %v, want ErrNotFound", err)
		}
		if _, err := s.List(ctx, ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("List on a missing root = %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get on a missing root = %v, want ErrNotFound", err)
		}
	})

	t.Run("InitCreate", func(t *testing.T) {
		s := newStore(t)
		for i, create := range []bool{true, true, false} {
			if err := s.Init(ctx, create); err != nil {
				t.Fatalf("Init #%d (create=%v): %v", i, create, err)
			}
		}
		keys, err := s.List(ctx, "")
		if err != nil || len(keys) != 0 {
			t.Fatalf("List on a new root = %v, %v; want empty", keys, err)
		}
		if s.String() == "" {
			t.Fatal("String() is empty")
		}
	})

	t.Run("PutGet", func(t *testing.T) {
		s := ready(t)
		tests := []struct {
			name string
			size int
		}{
			{"Empty", 0},
			{"Small", 100},
			{"ReadAheadBoundary", singlePutMax},
			{"Multipart", contractPartSize + 1<<20 + 7},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := randomBytes(tt.size, uint64(tt.size))
				key := "objs/" + tt.name
				n, err := s.Put(ctx, key, onlyReader{bytes.NewReader(want)})
				if err != nil || n != int64(len(want)) {
					t.Fatalf("Put = %d, %v; want %d", n, err, len(want))
				}
				if got := mustGet(t, s, key); !bytes.Equal(got, want) {
					t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(want))
				}
			})
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := ready(t)
		for _, v := range []string{"first version", "second"} {
			if _, err := s.Put(ctx, "k", bytes.NewReader([]byte(v))); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, s, "k"); string(got) != v {
				t.Fatalf("Get = %q, want %q", got, v)
			}
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		s := ready(t)
		mustPut(t, s, "dir/present", "x")
		for _, key := range []string{"absent", "dir/absent", "dir/present/below", "dir"} {
			if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		s := ready(t)
		all := []string{"a/b/1", "a/b/2", "a/c", "ab", "b", "b-c/d"}
		for _, k := range []string{"b", "a/c", "ab", "a/b/2", "b-c/d", "a/b/1"} { // not in order
			mustPut(t, s, k, k)
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			{"", all},
			{"a", []string{"a/b/1", "a/b/2", "a/c", "ab"}},
			{"a/", []string{"a/b/1", "a/b/2", "a/c"}},
			{"a/b/", []string{"a/b/1", "a/b/2"}},
			{"a/b/1", []string{"a/b/1"}},
			{"b", []string{"b", "b-c/d"}},
			{"b-c/", []string{"b-c/d"}},
			{"zz", nil},
			{"zz/y/", nil},
		}
		for _, tt := range tests {
			got, err := s.List(ctx, tt.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tt.prefix, err)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && !slices.Equal(got, tt.want)) {
				t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := ready(t)
		mustPut(t, s, "d/one", "1")
		mustPut(t, s, "d/two", "2")
		for i := range 2 { // idempotent
			if err := s.Delete(ctx, "d/one"); err != nil {
				t.Fatalf("Delete #%d: %v", i, err)
			}
		}
		if err := s.Delete(ctx, "never/existed"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if _, err := s.Get(ctx, "d/one"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if got, _ := s.List(ctx, ""); !slices.Equal(got, []string{"d/two"}) {
			t.Fatalf("List after Delete = %q, want [d/two]", got)
		}
		mustPut(t, s, "d/one", "again") // the emptied directory can be reused
		if got := mustGet(t, s, "d/one"); string(got) != "again" {
			t.Fatalf("Get = %q", got)
		}
	})

	t.Run("InvalidKey", func(t *testing.T) {
		s := ready(t)
		for _, key := range []string{"", "/a", "a/", "a//b", "../x", "a/./b", ".hidden", "a\\b", "a\x00b"} {
			if _, err := s.Put(ctx, key, bytes.NewReader(nil)); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
			}
		}
		if _, err := s.List(ctx, "../"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("List(../) = %v, want ErrInvalidKey", err)
		}
	})

	t.Run("AtomicVisibility", func(t *testing.T) {
		s := ready(t)
		mustPut(t, s, "atomic/old", "old")
		want := randomBytes(contractPartSize+1<<20, 1)
		gate := newGateReader(want, 2<<20)
		var wg sync.WaitGroup
		var putErr error
		wg.Go(func() { _, putErr = s.Put(ctx, "atomic/obj", gate) })
		t.Cleanup(wg.Wait)
		t.Cleanup(gate.release)

		waitClosed(t, gate.reached, "Put to read 2 MiB")
		if _, err := s.Get(ctx, "atomic/obj"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get during Put = %v, want ErrNotFound", err)
		}
		if got, err := s.List(ctx, "atomic/"); err != nil || !slices.Equal(got, []string{"atomic/old"}) {
			t.Fatalf("List during Put = %q, %v; want only atomic/old", got, err)
		}
		gate.release()
		wg.Wait()
		if putErr != nil {
			t.Fatalf("Put: %v", putErr)
		}
		if got := mustGet(t, s, "atomic/obj"); !bytes.Equal(got, want) {
			t.Fatal("object differs after Put")
		}
	})

	t.Run("FailedPutInvisible", func(t *testing.T) {
		errBoom := errors.New("boom")
		tests := []struct {
			name  string
			after int
		}{
			{"Small", 10},
			{"Multipart", contractPartSize + 1<<20},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := ready(t)
				r := io.MultiReader(bytes.NewReader(randomBytes(tt.after, 2)), errReader{errBoom})
				if _, err := s.Put(ctx, "fail/obj", r); !errors.Is(err, errBoom) {
					t.Fatalf("Put = %v, want errBoom", err)
				}
				if _, err := s.Get(ctx, "fail/obj"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get after failed Put = %v, want ErrNotFound", err)
				}
				if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
					t.Fatalf("List after failed Put = %q, %v; want empty", got, err)
				}
			})
		}
	})

	t.Run("CanceledPut", func(t *testing.T) {
		s := ready(t)
		cctx, cancel := context.WithCancel(ctx)
		gate := newGateReader(randomBytes(3<<20, 3), 1<<20)
		t.Cleanup(gate.release)
		var wg sync.WaitGroup
		var putErr error
		wg.Go(func() { _, putErr = s.Put(cctx, "cancel/obj", gate) })
		waitClosed(t, gate.reached, "Put to read 1 MiB")
		cancel()
		gate.release()
		wg.Wait()
		if !errors.Is(putErr, context.Canceled) {
			t.Fatalf("Put = %v, want context.Canceled", putErr)
		}
		if _, err := s.Get(ctx, "cancel/obj"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after canceled Put = %v, want ErrNotFound", err)
		}
	})

	t.Run("DeletedDuringRead", func(t *testing.T) {
		s := ready(t)
		want := randomBytes(3<<20, 4)
		mustPut(t, s, "gone/obj", string(want))
		rc, err := s.Get(ctx, "gone/obj")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "gone/obj"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrNotFound) {
			t.Fatalf("reading past a Delete = %v, want ErrNotFound", err)
		}
	})

	t.Run("ReplacedDuringRead", func(t *testing.T) {
		s := ready(t)
		mustPut(t, s, "repl/obj", string(randomBytes(2<<20, 5)))
		rc, err := s.Get(ctx, "repl/obj")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "repl/obj", string(randomBytes(2<<20, 6)))
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrNotFound) {
			t.Fatalf("reading past a replacement = %v, want ErrNotFound", err)
		}
	})
}

func mustPut(t *testing.T, s Store, key, value string) {
	t.Helper()
	if _, err := s.Put(t.Context(), key, bytes.NewReader([]byte(value))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b
}

// randomBytes returns n incompressible bytes, deterministic per seed.
func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// onlyReader hides any WriterTo/Seeker so stores see a plain stream of unknown size.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// errReader fails every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// gateReader serves data but blocks once it has served at least `at` bytes, closing reached, until release.
type gateReader struct {
	data     []byte
	at       int
	served   int
	reached  chan struct{}
	released chan struct{}
	once     sync.Once
	reachOne sync.Once
}

func newGateReader(data []byte, at int) *gateReader {
	return &gateReader{data: data, at: at, reached: make(chan struct{}), released: make(chan struct{})}
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.served >= g.at {
		g.reachOne.Do(func() { close(g.reached) })
		<-g.released
	}
	if g.served == len(g.data) {
		return 0, io.EOF
	}
	n := copy(p, g.data[g.served:])
	g.served += n
	return n, nil
}

func (g *gateReader) release() { g.once.Do(func() { close(g.released) }) }

// waitClosed waits for ch with a deadline.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
