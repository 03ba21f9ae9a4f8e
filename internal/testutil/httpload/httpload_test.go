package httpload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// putServer answers PUT /v1/kv/<n> with 200 and records the keys; keys >= failFrom get a 500.
func putServer(t *testing.T, failFrom int) (*httptest.Server, func() map[string]int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		mu.Lock()
		seen[key]++
		mu.Unlock()
		if n, err := strconv.Atoi(key); r.Method != http.MethodPut || err != nil || n >= failFrom {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]int, len(seen))
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

func TestPool_Run(t *testing.T) {
	srv, seen := putServer(t, 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := DialPool(ctx, srv.Listener.Addr().String(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var mu sync.Mutex
	workers := map[int]bool{}
	if _, err := pool.Run(ctx, 500, func(c *PutConn, w, i int) error {
		mu.Lock()
		workers[w] = true
		mu.Unlock()
		return c.Put(strconv.Itoa(i), []byte("v"))
	}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := seen()
	if len(got) != 500 {
		t.Fatalf("%d distinct keys, want 500", len(got))
	}
	for k, n := range got {
		if n != 1 {
			t.Fatalf("key %s written %d times", k, n)
		}
	}
	for w := range workers {
		if w < 0 || w >= 4 {
			t.Fatalf("worker %d out of range", w)
		}
	}
}

func TestPool_RunStopsAtFirstError(t *testing.T) {
	srv, seen := putServer(t, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := DialPool(ctx, srv.Listener.Addr().String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Run(ctx, 10_000, func(c *PutConn, _, i int) error { return c.Put(strconv.Itoa(i), nil) })
	if !errors.Is(err, ErrUnexpectedStatus) {
		t.Fatalf("Run = %v, want ErrUnexpectedStatus", err)
	}
	if n := len(seen()); n > 102 { // each worker sends at most one request after the first failure began
		t.Fatalf("%d requests after a failure at the 101st", n)
	}
}

// stalledPool is a pool of 2 connections to a server that never answers, and a context cancelled after 100 ms.
func stalledPool(t *testing.T) (*Pool, context.Context) {
	t.Helper()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) }) // before srv.Close: cleanups run last-in first-out
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := DialPool(ctx, srv.Listener.Addr().String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	time.AfterFunc(100*time.Millisecond, cancel)
	return pool, ctx
}

func TestPool_RunContextEnds(t *testing.T) {
	pool, ctx := stalledPool(t)
	_, err := pool.Run(ctx, 10, func(c *PutConn, _, i int) error { return c.Put(strconv.Itoa(i), nil) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after ctx ended = %v, want context.Canceled", err)
	}
}

func TestParseServerTiming(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"write;dur=0.734":                 734 * time.Microsecond,
		"write;dur=12":                    12 * time.Millisecond,
		"write;dur=1.5, db;dur=9":         1500 * time.Microsecond,
		`write;desc="x";dur=2.25;other=1`: 2250 * time.Microsecond,
		"":                                0,
		"write":                           0,
		"write;dur=":                      0,
		"write;dur=abc":                   0,
		"write;dur=-3":                    0,
	} {
		if got := parseServerTiming(v); got != want {
			t.Errorf("parseServerTiming(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestPutConn_ServerTiming: a Put keeps the answer's Server-Timing duration, and 0 when the answer has none.
func TestPutConn_ServerTiming(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/kv/timed" {
			w.Header().Set("Server-Timing", "write;dur=3.5")
		}
	}))
	t.Cleanup(srv.Close)
	c, err := DialPut(t.Context(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		key  string
		want time.Duration
	}{{"timed", 3500 * time.Microsecond}, {"plain", 0}} {
		if err := c.Put(tc.key, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if got := c.ServerTiming(); got != tc.want {
			t.Fatalf("after Put(%q): ServerTiming = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestPutConn_Post(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(b)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		if string(b) == "fail" {
			w.WriteHeader(http.StatusPreconditionFailed)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := DialPut(t.Context(), srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Post("/v1/txn", "application/json", []byte(`{"ops":[]}`)); err != nil {
		t.Fatalf("Post: %v", err)
	}
	if err := c.Post("/v1/txn", "text/plain", []byte("fail")); !errors.Is(err, ErrUnexpectedStatus) {
		t.Fatalf("Post of a refused body = %v, want ErrUnexpectedStatus", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != `POST /v1/txn application/json {"ops":[]}` {
		t.Fatalf("server saw %q", got)
	}
}

// TestPutConn_Get: a Get sends the path with its query, returns the length of the body, keeps the Server-Timing,
// and wraps ErrUnexpectedStatus for anything but 200; the connection stays usable after a refused request.
func TestPutConn_Get(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/kv/missing":
			http.Error(w, "no such key", http.StatusNotFound)
		case "/v1/kv/empty":
		default:
			w.Header().Set("Server-Timing", "read;dur=0.5")
			_, _ = w.Write([]byte(strings.Repeat("x", 5000))) // more than the reader's buffer
		}
	}))
	t.Cleanup(srv.Close)
	c, err := DialPut(t.Context(), srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Get("/v1/kv/k1?consistency=strong"); err != nil || n != 5000 {
		t.Fatalf("Get = %d, %v; want 5000, nil", n, err)
	}
	if got := c.ServerTiming(); got != 500*time.Microsecond {
		t.Fatalf("ServerTiming after Get = %v, want 500µs", got)
	}
	if _, err := c.Get("/v1/kv/missing"); !errors.Is(err, ErrUnexpectedStatus) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Get of a missing key = %v, want ErrUnexpectedStatus with 404", err)
	}
	if n, err := c.Get("/v1/kv/empty"); err != nil || n != 0 {
		t.Fatalf("Get of an empty value = %d, %v; want 0, nil", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET /v1/kv/k1?consistency=strong", "GET /v1/kv/missing", "GET /v1/kv/empty"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("server saw %q, want %q", got, want)
	}
}

// TestPutConn_PutVersion: PutVersion returns the version of the answer's quoted ETag, and an error for an answer
// without one or other than 200.
func TestPutConn_PutVersion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch key := strings.TrimPrefix(r.URL.Path, "/v1/kv/"); {
		case r.Method != http.MethodPut || string(b) != "v":
			w.WriteHeader(http.StatusBadRequest)
		case key == "refused":
			w.Header().Set("ETag", `"7"`)
			w.WriteHeader(http.StatusConflict)
		case key == "bad":
			w.Header().Set("ETag", `W/"x"`)
		case key != "none":
			w.Header().Set("ETag", `"`+strings.TrimPrefix(key, "k")+`"`)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := DialPut(t.Context(), srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, want := range []uint64{1, 42, 18446744073709551615} {
		if got, err := c.PutVersion("k"+strconv.FormatUint(want, 10), []byte("v")); err != nil || got != want {
			t.Fatalf("PutVersion = %d, %v; want %d", got, err, want)
		}
	}
	if _, err := c.PutVersion("refused", []byte("v")); !errors.Is(err, ErrUnexpectedStatus) {
		t.Fatalf("PutVersion refused = %v, want ErrUnexpectedStatus", err)
	}
	for _, key := range []string{"none", "bad"} {
		if v, err := c.PutVersion(key, []byte("v")); err == nil || errors.Is(err, ErrUnexpectedStatus) {
			t.Fatalf("PutVersion with ETag %s = %d, %v; want an ETag error", key, v, err)
		}
	}
	if got, err := c.PutVersion("k5", []byte("v")); err != nil || got != 5 { // still in step after the errors
		t.Fatalf("PutVersion after errors = %d, %v; want 5", got, err)
	}
}

// TestPool_RunGet: Run's requests may be GETs.
func TestPool_RunGet(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		_, _ = w.Write([]byte(r.URL.Path))
	}))
	t.Cleanup(srv.Close)
	pool, err := DialPool(t.Context(), srv.Listener.Addr().String(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Run(t.Context(), 200, func(c *PutConn, _, i int) error {
		path := "/v1/kv/k" + strconv.Itoa(i)
		n, err := c.Get(path)
		if err == nil && n != int64(len(path)) {
			err = fmt.Errorf("GET %s: %d bytes, want %d", path, n, len(path))
		}
		return err
	}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := hits.Load(); n != 200 {
		t.Fatalf("%d requests, want 200", n)
	}
}

// TestPool_Each: Each runs the work once on every connection, with distinct workers, lets the others finish when
// one fails, and joins their errors.
func TestPool_Each(t *testing.T) {
	srv, seen := putServer(t, 1<<30)
	pool, err := DialPool(t.Context(), srv.Listener.Addr().String(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if pool.Len() != 4 {
		t.Fatalf("Len = %d, want 4", pool.Len())
	}
	errOdd := errors.New("odd worker")
	var mu sync.Mutex
	conns := map[*PutConn]int{}
	err = pool.Each(t.Context(), func(c *PutConn, w int) error {
		mu.Lock()
		conns[c] = w
		mu.Unlock()
		for i := range 10 {
			if err := c.Put(strconv.Itoa(w*10+i), nil); err != nil {
				return err
			}
		}
		if w%2 == 1 {
			return fmt.Errorf("worker %d: %w", w, errOdd)
		}
		return nil
	})
	if msg := fmt.Sprint(err); !errors.Is(err, errOdd) || !strings.Contains(msg, "worker 1") ||
		!strings.Contains(msg, "worker 3") {
		t.Fatalf("Each = %v, want both odd workers' errors", err)
	}
	workers := map[int]bool{}
	for _, w := range conns {
		workers[w] = true
	}
	if len(conns) != 4 || len(workers) != 4 {
		t.Fatalf("work ran on %d connections as %d workers, want 4 and 4", len(conns), len(workers))
	}
	if n := len(seen()); n != 40 {
		t.Fatalf("%d distinct keys, want 40", n)
	}
	if err := pool.Each(t.Context(), func(*PutConn, int) error { return nil }); err != nil {
		t.Fatalf("Each without errors = %v", err)
	}
}

// TestPool_EachContextEnds: ctx ending closes the connections under Each's work, and its error is joined.
func TestPool_EachContextEnds(t *testing.T) {
	pool, ctx := stalledPool(t)
	err := pool.Each(ctx, func(c *PutConn, _ int) error { _, err := c.Get("/v1/kv/k"); return err })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Each after ctx ended = %v, want context.Canceled", err)
	}
}
