package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/metrics"
)

// fakeEntry is one key in a fakeNode.
type fakeEntry struct {
	value   []byte
	version uint64
}

// fakeNode is an in-memory Node. Its knobs are set before the handler runs; applied may move concurrently.
type fakeNode struct {
	status    Status
	viewErr   error
	strongSeq uint64
	strongErr error
	waitErr   error
	viewSeq   uint64 // when set, the sequence of every view instead of applied

	strongCalls atomic.Int32
	openViews   atomic.Int32

	mu      sync.Mutex
	applied uint64
	changed chan struct{} // closed and replaced when applied moves
	waiting chan struct{} // gets a token when WaitApplied blocks
	data    map[string]fakeEntry
}

func newFakeNode(applied uint64) *fakeNode {
	return &fakeNode{applied: applied, changed: make(chan struct{}), waiting: make(chan struct{}, 1), data: map[string]fakeEntry{},
		status: Status{Role: RoleLeader, ID: "n1", State: StateReady, AppliedSeq: applied}}
}

func (n *fakeNode) put(key, value string, version uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.data[key] = fakeEntry{value: []byte(value), version: version}
}

func (n *fakeNode) setApplied(seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.applied = seq
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *fakeNode) Status() Status { return n.status }

func (n *fakeNode) Applied() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applied
}

func (n *fakeNode) View(context.Context) (View, error) {
	if n.viewErr != nil {
		return nil, n.viewErr
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v := &fakeView{node: n, seq: n.applied, data: make(map[string]fakeEntry, len(n.data))}
	if n.viewSeq != 0 {
		v.seq = n.viewSeq
	}
	for k, e := range n.data {
		v.data[k] = e
	}
	n.openViews.Add(1)
	return v, nil
}

func (n *fakeNode) WaitApplied(ctx context.Context, seq uint64) error {
	if n.waitErr != nil {
		return n.waitErr
	}
	for {
		n.mu.Lock()
		applied, changed := n.applied, n.changed
		n.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case n.waiting <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (n *fakeNode) StrongTarget(context.Context) (uint64, error) {
	n.strongCalls.Add(1)
	if n.strongErr != nil {
		return 0, n.strongErr
	}
	return n.strongSeq, nil
}

// fakeView is a copy of a fakeNode's data.
type fakeView struct {
	node   *fakeNode
	seq    uint64
	data   map[string]fakeEntry
	closed bool
}

func (v *fakeView) Seq() uint64 { return v.seq }

func (v *fakeView) Get(key []byte) ([]byte, uint64, error) {
	e, ok := v.data[string(key)]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return e.value, e.version, nil
}

func (v *fakeView) List(prefix, after []byte, limit int, values bool) ([]Item, []byte, error) {
	keys := make([]string, 0, len(v.data))
	for k := range v.data {
		if strings.HasPrefix(k, string(prefix)) && k > string(after) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var next []byte
	if len(keys) > limit {
		keys = keys[:limit]
		next = []byte(keys[limit-1])
	}
	items := make([]Item, len(keys))
	for i, k := range keys {
		items[i] = Item{Key: []byte(k), Version: v.data[k].version}
		if values {
			items[i].Value = v.data[k].value
		}
	}
	return items, next, nil
}

func (v *fakeView) Digest() (uint64, string, error) {
	return uint64(len(v.data)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", nil
}

func (v *fakeView) Close() error {
	if v.closed {
		panic("view closed twice")
	}
	v.closed = true
	v.node.openViews.Add(-1)
	return nil
}

// fakeWriter records the requests it gets and answers with res/err.
type fakeWriter struct {
	res   WriteResult
	err   error
	block bool          // wait for ctx to end, then return its error
	delay time.Duration // take this long

	mu   sync.Mutex
	reqs []WriteRequest
}

func (w *fakeWriter) Write(ctx context.Context, req WriteRequest) (WriteResult, error) {
	w.mu.Lock()
	w.reqs = append(w.reqs, req)
	w.mu.Unlock()
	if w.block {
		<-ctx.Done()
		return WriteResult{}, ctx.Err()
	}
	time.Sleep(w.delay)
	return w.res, w.err
}

func (w *fakeWriter) calls() []WriteRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WriteRequest(nil), w.reqs...)
}

// fakeRedirector answers with url/err.
type fakeRedirector struct {
	url string
	err error
}

func (f fakeRedirector) LeaderURL(context.Context) (string, error) { return f.url, f.err }

// fakeSnapshots answers with fixed manifests or err.
type fakeSnapshots struct {
	list []any
	err  error
}

func (f fakeSnapshots) CreateSnapshot(context.Context) (any, error) {
	if f.err != nil {
		return nil, f.err
	}
	return map[string]any{"format": 1, "seq": 42}, nil
}

func (f fakeSnapshots) ListSnapshots(context.Context) ([]any, error) { return f.list, f.err }

// fakeFollowers returns a fixed list.
type fakeFollowers []FollowerInfo

func (f fakeFollowers) Followers() []FollowerInfo { return append([]FollowerInfo(nil), f...) }

// newLeader returns a leader handler over node and w; mod may adjust the config.
func newLeader(t *testing.T, node *fakeNode, w Writer, mod func(*Config)) http.Handler {
	t.Helper()
	cfg := Config{Node: node, Writer: w, Snapshots: fakeSnapshots{}, Followers: fakeFollowers{},
		Metrics: metrics.New(RoleLeader)}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

// newFollower returns a follower handler over node and r.
func newFollower(t *testing.T, node *fakeNode, r Redirector) http.Handler {
	t.Helper()
	h, err := NewHandler(Config{Node: node, Redirector: r})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

// do serves one request; headers alternate name, value.
func do(h http.Handler, method, target string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// errorCode decodes an error answer's code, failing the test when the body is not the error JSON.
func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %q)", ct, rec.Body.String())
	}
	var e errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("decode error body %q: %v", rec.Body.String(), err)
	}
	if e.Error == "" {
		t.Errorf("error body %q has no message", rec.Body.String())
	}
	return e.Code
}

// decode unmarshals a JSON answer into v.
func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
}

// checkAnswer checks the status, the Replikv-Seq header and, for error answers, the code.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d (body %q)", rec.Code, status, rec.Body.String())
	}
	if rec.Header().Get(HeaderSeq) == "" {
		t.Errorf("no %s header", HeaderSeq)
	}
	if code != "" {
		if got := errorCode(t, rec); got != code {
			t.Errorf("code = %q, want %q", got, code)
		}
	}
}

// bigBody returns a reader of n bytes.
func bigBody(n int) io.Reader { return bytes.NewReader(make([]byte, n)) }

// newRecorder returns a fresh response recorder.
func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
