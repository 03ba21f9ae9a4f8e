package httpload

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

func TestPool_RunContextEnds(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := DialPool(ctx, srv.Listener.Addr().String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = pool.Run(ctx, 10, func(c *PutConn, _, i int) error { return c.Put(strconv.Itoa(i), nil) })
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
