package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
)

// The CLI is tested against the real API handler (api.NewHandler) over a memory node, so that paths, paging,
// redirects, error codes and authentication are the server's own.

type memEntry struct {
	value   []byte
	version uint64
}

// memNode is a node held in memory: a leader (writes, snapshots, followers) or a follower (redirects writes).
type memNode struct {
	mu        sync.Mutex
	role, id  string
	state     string
	data      map[string]memEntry
	applied   uint64
	changed   chan struct{} // closed and replaced when applied moves
	snapSeq   uint64
	followers []api.FollowerInfo
	manifests []any
	leaderURL string // follower: where writes are redirected
	// digest, when set, replaces the computed digest (a replica whose state differs).
	digest string
	// statusFn, when set, replaces Status (a follower that onboards as it is polled).
	statusFn func() api.Status
	// step, when set, makes the node move on under writes: WaitApplied(seq) finds it at seq already, and every view
	// is step entries further.
	step uint64
	// noTxn leaves the leader without a TxnWriter (a server that does not serve POST /v1/txn).
	noTxn bool
	// txns counts the transactions WriteTxn committed.
	txns atomic.Int64
	// override answers the paths it holds instead of the API (fields the API does not have yet).
	override map[string]http.HandlerFunc
	requests atomic.Int64
	// lastAuth is the Authorization header of the last request.
	lastAuth atomic.Value
	// promoteErr is what a follower's Promote answers; nil promotes it. promoteTimeout is the timeout it was given.
	promoteErr     error
	promoteTimeout time.Duration
}

// Promote makes a follower the leader unless promoteErr is set.
func (n *memNode) Promote(_ context.Context, timeout time.Duration) (api.Status, error) {
	n.mu.Lock()
	n.promoteTimeout = timeout
	if n.promoteErr != nil {
		n.mu.Unlock()
		return api.Status{}, n.promoteErr
	}
	n.role = api.RoleLeader
	n.mu.Unlock()
	return n.Status(), nil
}

func newMemNode(role, id string) *memNode {
	return &memNode{role: role, id: id, state: api.StateReady, data: map[string]memEntry{}, changed: make(chan struct{})}
}

func (n *memNode) Status() api.Status {
	if n.statusFn != nil {
		return n.statusFn()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st := api.Status{Role: n.role, ID: n.id, State: n.state, AppliedSeq: n.applied, LogLastSeq: n.applied,
		SnapshotSeq: n.snapSeq}
	if n.role == api.RoleLeader {
		st.Epoch = 42
	}
	return st
}

func (n *memNode) Applied() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applied
}

func (n *memNode) View(context.Context) (api.View, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.applied += n.step
	v := &memView{seq: n.applied, data: make(map[string]memEntry, len(n.data)), digest: n.digest}
	for k, e := range n.data {
		v.data[k] = e
	}
	return v, nil
}

func (n *memNode) WaitApplied(ctx context.Context, seq uint64) error {
	if n.step > 0 {
		n.mu.Lock()
		n.applied = max(n.applied, seq)
		n.mu.Unlock()
	}
	for {
		n.mu.Lock()
		applied, ch := n.applied, n.changed
		n.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (n *memNode) StrongTarget(context.Context) (uint64, error) { return n.Applied(), nil }

func (n *memNode) Write(_ context.Context, req api.WriteRequest) (api.WriteResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, ok := n.data[string(req.Key)]
	if err := apply.Check(req.Op, apply.Current{Version: cur.version, Exists: ok}, req.Cond); err != nil {
		return api.WriteResult{}, err
	}
	n.applied++
	if req.Op == apply.OpDelete {
		delete(n.data, string(req.Key))
	} else {
		n.data[string(req.Key)] = memEntry{value: append([]byte(nil), req.Value...), version: n.applied}
	}
	close(n.changed)
	n.changed = make(chan struct{})
	return api.WriteResult{Version: n.applied}, nil
}

// WriteTxn checks every operation against the current state in request order (the first failure is a
// *api.TxnOpError) and then applies them all at one new version, as the leader's TxnWriter does.
func (n *memNode) WriteTxn(_ context.Context, req api.TxnRequest) (api.WriteResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, o := range req.Ops {
		e, ok := n.data[string(o.Key)]
		cur := apply.Current{Version: e.version, Exists: ok}
		if err := apply.Check(o.Op, cur, o.Cond); err != nil {
			return api.WriteResult{}, &api.TxnOpError{Index: i, Key: o.Key, Current: cur, Err: err}
		}
	}
	n.applied++
	for _, o := range req.Ops {
		if o.Op == apply.OpDelete {
			delete(n.data, string(o.Key))
		} else {
			n.data[string(o.Key)] = memEntry{value: append([]byte(nil), o.Value...), version: n.applied}
		}
	}
	n.txns.Add(1)
	close(n.changed)
	n.changed = make(chan struct{})
	return api.WriteResult{Version: n.applied}, nil
}

func (n *memNode) LeaderURL(context.Context) (string, error) {
	if n.leaderURL == "" {
		return "", api.ErrNoLeader
	}
	return n.leaderURL, nil
}

func (n *memNode) CreateSnapshot(context.Context) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := &memView{seq: n.applied, data: n.data}
	keys, digest, _ := v.Digest()
	m := map[string]any{"format": 1, "stream": "REPLIKV", "seq": n.applied, "keys": keys, "bytes": 1234,
		"sha256": strings.Repeat("0", 64), "digest": digest, "created_at": time.Now().UTC(), "leader": n.id}
	n.manifests = append([]any{m}, n.manifests...)
	n.snapSeq = n.applied
	return m, nil
}

func (n *memNode) ListSnapshots(context.Context) ([]any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]any(nil), n.manifests...), nil
}

func (n *memNode) Followers() []api.FollowerInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]api.FollowerInfo(nil), n.followers...)
}

// copyFrom makes n hold src's state (a follower that caught up).
func (n *memNode) copyFrom(src *memNode) {
	src.mu.Lock()
	data, applied := make(map[string]memEntry, len(src.data)), src.applied
	for k, e := range src.data {
		data[k] = e
	}
	src.mu.Unlock()
	n.mu.Lock()
	n.data, n.applied = data, applied
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

type memView struct {
	seq    uint64
	data   map[string]memEntry
	digest string
}

func (v *memView) Seq() uint64 { return v.seq }

func (v *memView) Get(key []byte) ([]byte, uint64, error) {
	e, ok := v.data[string(key)]
	if !ok {
		return nil, 0, api.ErrNotFound
	}
	return e.value, e.version, nil
}

func (v *memView) sorted() []string {
	keys := make([]string, 0, len(v.data))
	for k := range v.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *memView) List(prefix, after []byte, limit int, values bool) ([]api.Item, []byte, error) {
	var items []api.Item
	for _, k := range v.sorted() {
		if !strings.HasPrefix(k, string(prefix)) || (after != nil && k <= string(after)) {
			continue
		}
		if len(items) == limit {
			return items, items[len(items)-1].Key, nil
		}
		it := api.Item{Key: []byte(k), Version: v.data[k].version}
		if values {
			it.Value = v.data[k].value
		}
		items = append(items, it)
	}
	return items, nil, nil
}

func (v *memView) Digest() (uint64, string, error) {
	d := apply.NewDigest()
	for _, k := range v.sorted() {
		d.Add([]byte(k), v.data[k].value, v.data[k].version)
	}
	if v.digest != "" {
		return d.Keys(), v.digest, nil
	}
	return d.Keys(), d.Sum(), nil
}

func (v *memView) Close() error { return nil }

// serve starts an httptest server with the real API handler over n. token is --auth-token ("" = none).
func serve(t *testing.T, n *memNode, token string) *httptest.Server {
	t.Helper()
	cfg := api.Config{Node: n, AuthToken: token}
	if n.role == api.RoleLeader {
		cfg.Writer, cfg.Snapshots, cfg.Followers = n, n, n
		if !n.noTxn {
			cfg.Txn = n
		}
	} else {
		cfg.Redirector, cfg.Promoter = n, n
	}
	h, err := api.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.requests.Add(1)
		n.lastAuth.Store(r.Header.Get("Authorization"))
		if o := n.override[r.URL.Path]; o != nil {
			o(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// result is one run of the CLI.
type result struct {
	code     int
	out, err string
}

// runCLI runs the CLI with args, env (NAME=value pairs) and stdin.
func runCLI(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	return runCLIWith(t, IO{In: strings.NewReader(stdin)}, env, args...)
}

func runCLIWith(t *testing.T, cio IO, env []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	cio.Out, cio.Err = &out, &errb
	if cio.In == nil {
		cio.In = strings.NewReader("")
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cio.Getenv = func(k string) string { return vars[k] }
	if cio.IsTerminal == nil {
		cio.IsTerminal = func(io.Writer) bool { return false }
	}
	if cio.Now == nil {
		cio.Now = time.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := Main(ctx, args, cio)
	return result{code: code, out: out.String(), err: errb.String()}
}

// stepClock returns a clock that starts at start and advances by step at each reading.
func stepClock(start time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	now := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := now
		now = now.Add(step)
		return t
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.out, r.err)
	}
}

// redirectTo answers every request with 307 to location.
func redirectTo(location string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
}

// redirectServer is an httptest server answering everything with 307 to location.
func redirectServer(t *testing.T, location string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(redirectTo(location))
	t.Cleanup(srv.Close)
	return srv
}

// tlsCA writes the certificate of an httptest TLS server to a PEM file for --cacert and returns its path.
func tlsCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedURL is the URL of a server that is gone: connections are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// answerJSON is an override that answers v as JSON.
func answerJSON(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

// setFollowers sets the leader's follower list, each seen ago before now.
func (n *memNode) setFollowers(ago time.Duration, ids ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.followers = nil
	for _, id := range ids {
		n.followers = append(n.followers, api.FollowerInfo{ID: id, State: api.StateReady, AppliedSeq: n.applied,
			LastSeen: time.Now().Add(-ago).UTC()})
	}
}
