//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/replikv/replikv/internal/testutil/httpload"
)

// bulkPut writes n keys (key(i) for i in [0, n)) with random values of valueSize bytes over conns keep-alive
// connections, one request in flight each, and returns the elapsed time.
func bulkPut(ctx context.Context, addr string, conns, n int, key func(int) string, valueSize int) (time.Duration, error) {
	pool, err := httpload.DialPool(ctx, addr, conns)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	vals := make([]*values, conns) // one value generator per worker
	for w := range vals {
		vals[w] = newValues(uint64(w), valueSize)
	}
	return pool.Run(ctx, n, func(c *httpload.PutConn, w, i int) error { return c.Put(key(i), vals[w].next()) })
}

// status is the part of the status object the benchmarks read.
type status struct {
	State       string `json:"state"`
	AppliedSeq  uint64 `json:"applied_seq"`
	LogLastSeq  uint64 `json:"log_last_seq"`
	SnapshotSeq uint64 `json:"snapshot_seq"`
	Progress    struct {
		BytesDone  int64  `json:"bytes_done"`
		BytesTotal int64  `json:"bytes_total"`
		TargetSeq  uint64 `json:"target_seq"`
	} `json:"progress"`
	Error string `json:"error"`
}

// manifest is the part of a snapshot manifest the benchmarks read.
type manifest struct {
	Seq   uint64 `json:"seq"`
	Keys  uint64 `json:"keys"`
	Bytes int64  `json:"bytes"`
}

// node is an HTTP client of one replikv node.
type node struct {
	url string
	hc  *http.Client
}

func newNode(addr string) *node {
	return &node{url: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Minute}}
}

func (n *node) status(ctx context.Context) (status, error) {
	var st status
	err := n.getJSON(ctx, "/v1/status", &st)
	return st, err
}

func (n *node) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+path, nil)
	if err != nil {
		return fmt.Errorf("bench: get %s: %w", path, err)
	}
	return n.do(req, http.StatusOK, v)
}

// snapshot asks the leader for a snapshot now and returns its manifest.
func (n *node) snapshot(ctx context.Context) (manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/v1/snapshots", nil)
	if err != nil {
		return manifest{}, fmt.Errorf("bench: snapshot: %w", err)
	}
	var m manifest
	err = n.do(req, http.StatusCreated, &m)
	return m, err
}

func (n *node) do(req *http.Request, want int, v any) error {
	resp, err := n.hc.Do(req)
	if err != nil {
		return fmt.Errorf("bench: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("bench: %s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("bench: %s %s: %w: %d %s", req.Method, req.URL.Path, httpload.ErrUnexpectedStatus, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("bench: %s %s: decode: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// stateTimes records when a polled node was first seen in each state.
type stateTimes map[string]time.Time

// watchUntilReady polls status every 20 ms from start until the node is ready, recording when each state was first
// seen and the last status of each state. Connection errors before the HTTP server is up are ignored. It fails on
// failed or degraded, or after timeout.
func watchUntilReady(ctx context.Context, n *node, timeout time.Duration) (stateTimes, map[string]status, error) {
	times := stateTimes{}
	last := map[string]status{}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := n.status(ctx)
		now := time.Now()
		if err == nil {
			if _, ok := times[st.State]; !ok {
				times[st.State] = now
			}
			last[st.State] = st
			switch st.State {
			case "ready":
				return times, last, nil
			case "failed", "degraded":
				return times, last, fmt.Errorf("bench: node is %s: %s", st.State, st.Error)
			}
		}
		select {
		case <-ctx.Done():
			return times, last, fmt.Errorf("bench: node not ready within %v (last error %v): %w", timeout, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitReady polls until the node is ready.
func waitReady(ctx context.Context, n *node, timeout time.Duration) error {
	_, _, err := watchUntilReady(ctx, n, timeout)
	return err
}
