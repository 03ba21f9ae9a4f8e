//go:build e2e

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	readyTimeout  = 90 * time.Second // a node becoming ready (restores, catching up) on a busy 2-core machine
	digestTimeout = 60 * time.Second // a follower reaching the leader's seq and digest
	pollEvery     = 25 * time.Millisecond
)

// newHTTPClient returns a client that never follows redirects (so tests see 307s) and whose idle connections are
// closed when the test ends.
func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// client talks to one node's HTTP API. Safe for concurrent use.
type client struct {
	base  string
	token string
	hc    *http.Client
}

// response is a fully read HTTP answer.
type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r *response) String() string {
	b := r.Body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %s", r.Code, b)
}

// seqHeader is the Replikv-Seq header as a number (-1 when missing or malformed).
func (r *response) seqHeader() int64 {
	v, err := strconv.ParseInt(r.Header.Get("Replikv-Seq"), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// do sends one request; path includes the query. hdr may be nil.
func (c *client) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: read body: %w", method, path, err)
	}
	return &response{Code: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// call sends a request and fails the test on a transport error only.
func (c *client) call(t *testing.T, method, path string, body []byte, hdr http.Header) *response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.do(ctx, method, path, body, hdr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

// must sends a request and fails the test on a transport error or an unexpected status.
func (c *client) must(t *testing.T, method, path string, body []byte, hdr http.Header, want int) *response {
	t.Helper()
	r := c.call(t, method, path, body, hdr)
	if r.Code != want {
		t.Fatalf("%s %s%s: got %s, want %d", method, c.base, path, r, want)
	}
	return r
}

// kvPath is /v1/kv/<key> with the key escaped segment by segment ("/" stays a separator).
func kvPath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/v1/kv/" + strings.Join(parts, "/")
}

// Documents of the HTTP API (CONTRACT.md).

type statusDoc struct {
	Role        string         `json:"role"`
	ID          string         `json:"id"`
	State       string         `json:"state"`
	AppliedSeq  uint64         `json:"applied_seq"`
	LogLastSeq  uint64         `json:"log_last_seq"`
	Lag         int64          `json:"lag"`
	SnapshotSeq uint64         `json:"snapshot_seq"`
	Progress    map[string]any `json:"progress"`
	Error       string         `json:"error"`
}

type digestDoc struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

type writeDoc struct {
	Key        string `json:"key"`
	Version    uint64 `json:"version"`
	Replicated *int   `json:"replicated"`
}

type errorDoc struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

type manifestDoc struct {
	Format    int    `json:"format"`
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Keys      uint64 `json:"keys"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
	Digest    string `json:"digest"`
	CreatedAt string `json:"created_at"`
	Leader    string `json:"leader"`
	// CheckpointSeq is the log entry of the snapshot's checkpoint result, the leader's last entry right after it.
	CheckpointSeq uint64 `json:"checkpoint_seq"`
}

type followerDoc struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	AppliedSeq uint64 `json:"applied_seq"`
	Lag        int64  `json:"lag"`
	LastSeen   string `json:"last_seen"`
}

type listItem struct {
	Key     string `json:"key"`
	Version uint64 `json:"version"`
	Value   []byte `json:"value"` // base64 in JSON
}

type listDoc struct {
	Items []listItem `json:"items"`
	Next  string     `json:"next"`
	Seq   uint64     `json:"seq"`
}

func decode[T any](t *testing.T, r *response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r, err)
	}
	return v
}

// Typed helpers.

func (c *client) status(t *testing.T) statusDoc {
	t.Helper()
	return decode[statusDoc](t, c.must(t, http.MethodGet, "/v1/status", nil, nil, http.StatusOK))
}

func (c *client) digest(t *testing.T) digestDoc {
	t.Helper()
	return decode[digestDoc](t, c.must(t, http.MethodGet, "/v1/digest", nil, nil, http.StatusOK))
}

func (c *client) put(t *testing.T, key string, value []byte) writeDoc {
	t.Helper()
	return decode[writeDoc](t, c.must(t, http.MethodPut, kvPath(key), value, nil, http.StatusOK))
}

func (c *client) snapshot(t *testing.T) manifestDoc {
	t.Helper()
	m := decode[manifestDoc](t, c.must(t, http.MethodPost, "/v1/snapshots", nil, nil, http.StatusCreated))
	if m.Format != 1 || m.Seq == 0 || m.Stream == "" || len(m.SHA256) != 64 || len(m.Digest) != 64 || m.Bytes <= 0 ||
		m.CheckpointSeq <= m.Seq {
		t.Fatalf("POST /v1/snapshots: implausible manifest %+v", m)
	}
	if _, err := time.Parse(time.RFC3339, m.CreatedAt); err != nil {
		t.Fatalf("POST /v1/snapshots: created_at %q: %v", m.CreatedAt, err)
	}
	return m
}

func (c *client) snapshots(t *testing.T) []manifestDoc {
	t.Helper()
	return decode[struct {
		Snapshots []manifestDoc `json:"snapshots"`
	}](t, c.must(t, http.MethodGet, "/v1/snapshots", nil, nil, http.StatusOK)).Snapshots
}

func (c *client) followers(t *testing.T) []followerDoc {
	t.Helper()
	return decode[struct {
		Followers []followerDoc `json:"followers"`
	}](t, c.must(t, http.MethodGet, "/v1/followers", nil, nil, http.StatusOK)).Followers
}

// list reads every key under prefix (all pages, with values) and returns them with the seq of each page.
func (c *client) list(t *testing.T, prefix string) ([]listItem, []uint64) {
	t.Helper()
	var items []listItem
	var seqs []uint64
	after := ""
	for {
		q := url.Values{"prefix": {prefix}, "values": {"true"}, "limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		page := decode[listDoc](t, c.must(t, http.MethodGet, "/v1/kv?"+q.Encode(), nil, nil, http.StatusOK))
		items = append(items, page.Items...)
		seqs = append(seqs, page.Seq)
		if page.Next == "" {
			break
		}
		if page.Next <= after || len(page.Items) == 0 {
			t.Fatalf("list %s: next %q does not advance past %q (%d items)", c.base, page.Next, after, len(page.Items))
		}
		after = page.Next
	}
	for i := 1; i < len(items); i++ {
		if items[i-1].Key >= items[i].Key {
			t.Fatalf("list %s: keys out of order: %q then %q", c.base, items[i-1].Key, items[i].Key)
		}
	}
	return items, seqs
}

// readyz fetches /readyz (no auth) and returns the status code and the status object in the body.
func (c *client) readyz(ctx context.Context) (int, statusDoc, error) {
	var st statusDoc
	r, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil)
	if err != nil {
		return 0, st, err
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return r.Code, st, fmt.Errorf("readyz: decode %s: %w", r, err)
	}
	return r.Code, st, nil
}

// waitReady polls /readyz until it answers 200 (state ready), failing after readyTimeout. State failed is not
// final: a follower reports it while it retries (e.g. S3 unreachable) and may still become ready.
// It returns the status and every distinct state seen on the way, in order.
func (c *client) waitReady(t *testing.T) (statusDoc, []string) {
	t.Helper()
	var states []string
	deadline := time.Now().Add(readyTimeout)
	var last statusDoc
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code, st, err := c.readyz(ctx)
		cancel()
		lastErr = err
		if err == nil {
			last = st
			if len(states) == 0 || states[len(states)-1] != st.State {
				states = append(states, st.State)
			}
			if code == http.StatusOK {
				if st.State != "ready" {
					t.Fatalf("%s: /readyz 200 with state %q", c.base, st.State)
				}
				return st, states
			}
			if code != http.StatusServiceUnavailable {
				t.Fatalf("%s: /readyz answered %d", c.base, code)
			}
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("%s: not ready within %v; last status %+v (err %v), states %v", c.base, readyTimeout, last, lastErr, states)
	return last, states
}

// waitDigestEqual polls both nodes until they report the same seq with the same digest. Equal seqs with different
// digests fail at once: that is divergence, not lag.
func waitDigestEqual(t *testing.T, leader, follower *client) digestDoc {
	t.Helper()
	deadline := time.Now().Add(digestTimeout)
	var l, f digestDoc
	for time.Now().Before(deadline) {
		l, f = leader.digest(t), follower.digest(t)
		if l.Seq == f.Seq {
			if l.Digest != f.Digest || l.Keys != f.Keys {
				t.Fatalf("divergence at seq %d: leader %+v, follower %s %+v", l.Seq, l, follower.base, f)
			}
			return l
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("follower %s did not reach the leader's digest within %v: leader %+v, follower %+v",
		follower.base, digestTimeout, l, f)
	return l
}

// eventually polls cond until it returns true or the timeout passes, then fails with the last message.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	msg := ""
	for {
		var ok bool
		ok, msg = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, msg)
		}
		time.Sleep(pollEvery)
	}
}
