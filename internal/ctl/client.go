package ctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxAnswer caps the body of one answer the client reads: a list page holds at most 10,000 keys of 1 KiB and 4 MiB
// of values (in base64), far below.
const maxAnswer = 64 << 20

// TLSOptions are the client's TLS settings for https:// URLs.
type TLSOptions struct {
	// CACert is a PEM bundle of CAs to trust instead of the system's roots; empty = the system's.
	CACert string
	// Cert and Key are a PEM client certificate and its key, for a server with --tls-client-ca; both or neither.
	Cert, Key string
	// InsecureSkipVerify accepts any server certificate (tests, first contact); the token still travels encrypted
	// but to whoever answers.
	InsecureSkipVerify bool
}

// config builds the tls.Config, or nil when nothing is set (Go's defaults).
func (o TLSOptions) config() (*tls.Config, error) {
	if o.CACert == "" && o.Cert == "" && o.Key == "" && !o.InsecureSkipVerify {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // the operator asked
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("ctl: --cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ctl: --cacert %s: no PEM certificate in it", o.CACert)
		}
		tc.RootCAs = pool
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, usagef("--cert and --key go together")
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("ctl: --cert/--key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Client calls the API of any node. Safe for concurrent use.
type Client struct {
	hc      *http.Client
	token   string        // bearer token, "" = none; never printed
	timeout time.Duration // per request, 0 = none
}

// NewClient returns a client with the given TLS settings, bearer token ("" = none) and per-request timeout (0 =
// none). It never follows redirects by itself: see Client.do.
func NewClient(tlsOpts TLSOptions, token string, timeout time.Duration) (*Client, error) {
	tc, err := tlsOpts.config()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &Client{
		hc: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		token:   token,
		timeout: timeout,
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() {
	c.hc.CloseIdleConnections()
}

// request is one API call.
type request struct {
	method  string
	base    string // a node's base URL (scheme, host, port, optional path prefix)
	path    string // escaped path, e.g. /v1/kv/a%2Fb
	query   url.Values
	body    []byte
	header  http.Header
	timeout time.Duration // overrides the client's when > 0
}

// response is a fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
	url    string // the URL that answered, after a redirect; without credentials
}

// seq is the answer's Replikv-Seq header, 0 when missing.
func (r *response) seq() uint64 {
	var n uint64
	_, _ = fmt.Sscan(r.header.Get(headerSeq), &n)
	return n
}

// do sends req and reads the whole answer, whatever its status. A write (any method but GET and HEAD) answered 307 or
// 308 is sent again, once, to the Location, with the same body and Authorization header, and only if the Location
// names the same path and query on an absolute http(s) URL and does not downgrade https to http: that is how a
// follower sends writers to the leader it advertises, and nothing else is followed. Failures to reach a node wrap
// ErrUnreachable; the error never holds the token.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	u, err := buildURL(req.base, req.path, req.query)
	if err != nil {
		return nil, err
	}
	timeout := c.timeout
	if req.timeout > 0 {
		timeout = req.timeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for hop := 0; ; hop++ {
		resp, err := c.send(ctx, req, u)
		if err != nil {
			return nil, err
		}
		if !isRedirect(resp.status) || req.method == http.MethodGet || req.method == http.MethodHead {
			return resp, nil
		}
		if hop > 0 {
			return nil, fmt.Errorf("ctl: %s %s: redirected again by the leader %s", req.method, redact(u), resp.url)
		}
		next, err := followable(u, resp.header.Get("Location"))
		if err != nil {
			return nil, fmt.Errorf("ctl: %s %s: %w", req.method, redact(u), err)
		}
		u = next
	}
}

func isRedirect(status int) bool {
	return status == http.StatusTemporaryRedirect || status == http.StatusPermanentRedirect
}

// followable checks a write's redirect target against the request's URL (see Client.do).
func followable(from *url.URL, location string) (*url.URL, error) {
	if location == "" {
		return nil, errors.New("redirect without a Location")
	}
	to, err := url.Parse(location)
	if err != nil || !to.IsAbs() || to.Host == "" || (to.Scheme != "http" && to.Scheme != "https") {
		return nil, fmt.Errorf("redirect to %q: not an absolute http(s) URL", location)
	}
	if from.Scheme == "https" && to.Scheme != "https" {
		return nil, fmt.Errorf("redirect from https to %s refused: the token would travel in clear", redact(to))
	}
	if !strings.HasSuffix(to.EscapedPath(), from.EscapedPath()) || to.RawQuery != from.RawQuery {
		return nil, fmt.Errorf("redirect to %s refused: not the same request on another node", redact(to))
	}
	to.User = nil
	return to, nil
}

// send makes one HTTP request.
func (c *Client) send(ctx context.Context, req request, u *url.URL) (*response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("ctl: %s %s: %w", req.method, redact(u), err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.body != nil && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := c.hc.Do(hr)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil, fmt.Errorf("ctl: %s %s: %w", req.method, redact(u), context.Canceled)
		}
		// *url.Error holds the URL without its password; the token is in a header, never in an error.
		if req.method != http.MethodGet && req.method != http.MethodHead && hr.Body != nil {
			return nil, fmt.Errorf("ctl: %w: %w (the write may or may not have been committed: read the key back, or retry with the same --idempotency-key)",
				ErrUnreachable, err)
		}
		return nil, fmt.Errorf("ctl: %w: %w", ErrUnreachable, err)
	}
	defer func() { _ = hresp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("ctl: %s %s: read answer: %w: %w", req.method, redact(u), ErrUnreachable, err)
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("ctl: %s %s: answer larger than %d bytes", req.method, redact(u), maxAnswer)
	}
	return &response{status: hresp.StatusCode, header: hresp.Header, body: b, url: redact(u)}, nil
}

// apiError turns an answer with an unexpected status into an error wrapping its *APIError.
func apiError(resp *response) error {
	return fmt.Errorf("ctl: %s: %w", resp.url, newAPIError(resp))
}

// newAPIError is the *APIError of an answer with an unexpected status.
func newAPIError(resp *response) *APIError {
	e := &APIError{Status: resp.status}
	var body errorBody
	if json.Unmarshal(resp.body, &body) == nil {
		e.Code, e.Message = body.Code, body.Error
	}
	switch e.Code {
	case codeUnauthorized:
		e.Hint = "set the token in REPLIKV_TOKEN or --token-file"
	case codeForbidden:
		e.Hint = "this token allows reads only"
	case codeOutcomeUnknown:
		e.Hint = "read the key back before retrying, or retry with the same --idempotency-key"
	}
	if isRedirect(resp.status) {
		e.Message = "unexpected redirect to " + resp.header.Get("Location")
	}
	return e
}

// getJSON GETs path on base and decodes a 200 answer into v. wait is how long the server may wait before it answers
// (a min_seq or strong read; 0 = no wait), which the request's timeout covers.
func (c *Client) getJSON(ctx context.Context, base, path string, query url.Values, wait time.Duration, v any) (*response, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, base: base, path: path, query: query,
		timeout: c.waitTimeout(wait)})
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return resp, apiError(resp)
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return resp, fmt.Errorf("ctl: %s: bad JSON answer: %w", resp.url, err)
	}
	return resp, nil
}

// Status returns a node's status object.
func (c *Client) Status(ctx context.Context, base string) (Status, error) {
	var st Status
	_, err := c.getJSON(ctx, base, pathStatus, nil, 0, &st)
	return st, err
}

// Followers returns the leader's follower list.
func (c *Client) Followers(ctx context.Context, leader string) ([]FollowerInfo, error) {
	var fb followersBody
	_, err := c.getJSON(ctx, leader, pathFollowers, nil, 0, &fb)
	return fb.Followers, err
}

// Snapshots returns the leader's snapshot manifests, newest first, as they came.
func (c *Client) Snapshots(ctx context.Context, leader string) ([]json.RawMessage, error) {
	var sb snapshotsBody
	_, err := c.getJSON(ctx, leader, pathSnapshots, nil, 0, &sb)
	return sb.Snapshots, err
}

// Digest returns a node's digest once it has applied minSeq (0 = at once), waiting at most wait on the server (0 =
// the server's default).
func (c *Client) Digest(ctx context.Context, base string, minSeq uint64, wait time.Duration) (Digest, error) {
	q := url.Values{}
	if minSeq > 0 {
		q.Set("min_seq", fmt.Sprint(minSeq))
	}
	if wait > 0 {
		q.Set("timeout", wait.String())
	}
	var d Digest
	_, err := c.getJSON(ctx, base, pathDigest, q, wait, &d)
	return d, err
}

// waitTimeout is the request timeout of a call that waits up to wait on the server: the longer of the client's
// timeout and wait plus 5 s for the answer to arrive; 0 (the client's own timeout) when wait or the client's timeout
// is 0.
func (c *Client) waitTimeout(wait time.Duration) time.Duration {
	if c.timeout == 0 || wait == 0 {
		return 0 // the client's own
	}
	return max(c.timeout, wait+5*time.Second)
}

// buildURL joins a base URL, an escaped path and a query.
func buildURL(base, path string, q url.Values) (*url.URL, error) {
	u, err := parseBase(base)
	if err != nil {
		return nil, err
	}
	raw := strings.TrimRight(u.String(), "/") + path
	if len(q) > 0 {
		raw += "?" + q.Encode()
	}
	out, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("ctl: url %s%s: %w", redact(u), path, err)
	}
	return out, nil
}

// parseBase parses a node's base URL: http or https, a host, no query.
func parseBase(base string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, usagef("bad node URL %q: want http(s)://host:port", redactString(base))
	}
	return u, nil
}

// redact returns u as text without a password.
func redact(u *url.URL) string {
	return u.Redacted()
}

// redactString is redact for a URL that may not parse.
func redactString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
