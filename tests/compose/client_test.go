//go:build compose

package compose

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
	"time"
)

// client speaks the replikv HTTP API (docs/api.md) to one node.
type client struct {
	http *http.Client
}

func newClient(timeout time.Duration, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &client{http: &http.Client{
		Timeout:   timeout,
		Transport: tr,
		// Followers redirect writes; the tests look at the redirect itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// close releases idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// apiError is the JSON error body of the API.
type apiError struct {
	Status int
	Code   string `json:"code"`
	Msg    string `json:"error"`
}

func (e *apiError) Error() string { return fmt.Sprintf("http %d %s: %s", e.Status, e.Code, e.Msg) }

// do sends a request and returns the status and body; a transport error is
// returned as error, any status is not.
func (c *client) do(ctx context.Context, method, u string, body []byte) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("%s %s: read body: %w", method, u, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// getJSON decodes a 200 answer into v; any other status is an *apiError.
func (c *client) getJSON(ctx context.Context, u string, v any) error {
	st, _, b, err := c.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return decodeError(st, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: decode %q: %w", u, tail(b, 200), err)
	}
	return nil
}

func decodeError(status int, b []byte) error {
	e := &apiError{Status: status}
	if err := json.Unmarshal(b, e); err != nil {
		e.Msg = string(tail(b, 200))
	}
	return e
}

func keyURL(base, key string, q url.Values) string {
	u := base + "/v1/kv/" + (&url.URL{Path: key}).EscapedPath()
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// put writes value under key and returns the version; a status other than
// 200 is an *apiError.
func (c *client) put(ctx context.Context, base, key string, value []byte) (uint64, error) {
	st, _, b, err := c.do(ctx, http.MethodPut, keyURL(base, key, nil), value)
	if err != nil {
		return 0, err
	}
	if st != http.StatusOK {
		return 0, decodeError(st, b)
	}
	var w struct {
		Key     string `json:"key"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return 0, fmt.Errorf("PUT %s: decode %q: %w", key, b, err)
	}
	if w.Key != key || w.Version == 0 {
		return 0, fmt.Errorf("PUT %s: unexpected answer %s", key, b)
	}
	return w.Version, nil
}

// get reads key with the given query (consistency, min_seq, timeout); it
// returns the value and version, or an *apiError.
func (c *client) get(ctx context.Context, base, key string, q url.Values) ([]byte, uint64, error) {
	st, h, b, err := c.do(ctx, http.MethodGet, keyURL(base, key, q), nil)
	if err != nil {
		return nil, 0, err
	}
	if st != http.StatusOK {
		return nil, 0, decodeError(st, b)
	}
	v, err := strconv.ParseUint(strings.Trim(h.Get("ETag"), `"`), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: ETag %q: %w", key, h.Get("ETag"), err)
	}
	return b, v, nil
}

// status is the node status object.
type status struct {
	Role        string `json:"role"`
	ID          string `json:"id"`
	State       string `json:"state"`
	AppliedSeq  uint64 `json:"applied_seq"`
	LogLastSeq  uint64 `json:"log_last_seq"`
	SnapshotSeq uint64 `json:"snapshot_seq"`
	Error       string `json:"error"`
}

func (c *client) status(ctx context.Context, base string) (status, error) {
	var s status
	err := c.getJSON(ctx, base+"/v1/status", &s)
	return s, err
}

// ready returns nil when GET /readyz answers 200.
func (c *client) ready(ctx context.Context, base string) error {
	st, _, b, err := c.do(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("readyz: %d %s", st, tail(b, 300))
	}
	return nil
}

// digest is the answer of GET /v1/digest.
type digest struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

func (c *client) digest(ctx context.Context, base string) (digest, error) {
	var d digest
	err := c.getJSON(ctx, base+"/v1/digest", &d)
	return d, err
}

// follower is one entry of the leader's GET /v1/followers.
type follower struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	AppliedSeq uint64 `json:"applied_seq"`
}

func (c *client) followers(ctx context.Context, base string) ([]follower, error) {
	var f struct {
		Followers []follower `json:"followers"`
	}
	err := c.getJSON(ctx, base+"/v1/followers", &f)
	return f.Followers, err
}

// snapshot asks the leader for a snapshot now and returns its sequence.
func (c *client) snapshot(ctx context.Context, base string) (uint64, error) {
	st, _, b, err := c.do(ctx, http.MethodPost, base+"/v1/snapshots", nil)
	if err != nil {
		return 0, err
	}
	if st != http.StatusCreated {
		return 0, decodeError(st, b)
	}
	var m struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("POST /v1/snapshots: decode %q: %w", tail(b, 200), err)
	}
	return m.Seq, nil
}

// item is one key of a listing.
type item struct {
	Version uint64
	Value   string
}

// list returns every key under prefix with its version and value, paging
// through GET /v1/kv with the extra query q (e.g. min_seq).
func (c *client) list(ctx context.Context, base, prefix string, q url.Values) (map[string]item, error) {
	items := make(map[string]item)
	after := ""
	for {
		p := url.Values{"prefix": {prefix}, "values": {"true"}, "limit": {"5000"}}
		if after != "" {
			p.Set("after", after)
		}
		for k, v := range q {
			p[k] = v
		}
		var page struct {
			Items []struct {
				Key     string `json:"key"`
				Version uint64 `json:"version"`
				Value   []byte `json:"value"`
			} `json:"items"`
			Next string `json:"next"`
		}
		if err := c.getJSON(ctx, base+"/v1/kv?"+p.Encode(), &page); err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			items[it.Key] = item{Version: it.Version, Value: string(it.Value)}
		}
		if page.Next == "" {
			return items, nil
		}
		if page.Next <= after {
			return nil, fmt.Errorf("list %s: next %q does not advance past %q", prefix, page.Next, after)
		}
		after = page.Next
	}
}
