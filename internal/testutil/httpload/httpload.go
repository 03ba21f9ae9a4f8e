// Package httpload is a minimal HTTP/1.1 PUT (and POST and GET) client for benchmarks. It is written by hand (no
// net/http client) so that the load generator costs as little CPU as possible next to the server on a 2-core
// machine: a benchmark should measure the server stack, not the client.
package httpload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnexpectedStatus marks an answer other than 200.
var ErrUnexpectedStatus = errors.New("unexpected status")

// PutConn is one keep-alive connection sending requests (PUTs, and POSTs and GETs) one at a time. A PutConn is owned
// by one goroutine; Close may be called from another to abort it.
type PutConn struct {
	conn   net.Conn
	br     *bufio.Reader
	req    []byte
	server time.Duration // the last answer's Server-Timing duration; 0 without one
}

// ServerTiming returns the duration the server reported for the last request (its Server-Timing header's first dur,
// in milliseconds on the wire), or 0 when the answer had none.
func (c *PutConn) ServerTiming() time.Duration { return c.server }

// DialPut connects to addr (host:port).
func DialPut(ctx context.Context, addr string) (*PutConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpload: dial %s: %w", addr, err)
	}
	return &PutConn{conn: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// Put sends PUT /v1/kv/<key> with value and reads the whole answer; anything but 200 wraps ErrUnexpectedStatus.
func (c *PutConn) Put(key string, value []byte) error {
	c.putRequest(key, value)
	_, _, err := c.roundTrip("put", key)
	return err
}

// PutVersion is Put for a caller that needs the version written: it returns the version of the answer's ETag
// (a quoted decimal), and an error when the answer has none.
func (c *PutConn) PutVersion(key string, value []byte) (uint64, error) {
	c.putRequest(key, value)
	hdr, _, err := c.roundTrip("put", key)
	if err != nil {
		return 0, err
	}
	etag := hdr.Get("ETag")
	version, err := strconv.ParseUint(strings.Trim(etag, `"`), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("httpload: put %s: ETag %q: %w", key, etag, err)
	}
	return version, nil
}

// Get sends GET path (escaped, with its query: "/v1/kv/k?consistency=strong"), reads the whole answer and returns
// the length of its body; anything but 200 wraps ErrUnexpectedStatus.
func (c *PutConn) Get(path string) (int64, error) {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
	_, n, err := c.roundTrip("get", path)
	return n, err
}

// Post sends POST path with body of type contentType (a transaction: path "/v1/txn") and reads the whole answer;
// anything but 200 wraps ErrUnexpectedStatus.
func (c *PutConn) Post(path, contentType string, body []byte) error {
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bench\r\nContent-Type: "...)
	c.req = append(c.req, contentType...)
	c.req = append(c.req, "\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	_, _, err := c.roundTrip("post", path)
	return err
}

// putRequest builds PUT /v1/kv/<key> with value in c.req.
func (c *PutConn) putRequest(key string, value []byte) {
	c.req = append(c.req[:0], "PUT /v1/kv/"...)
	c.req = append(c.req, key...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(value)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, value...)
}

// roundTrip sends c.req, reads the whole answer and keeps its Server-Timing; it returns the answer's header and the
// length of its body. Anything but 200 wraps ErrUnexpectedStatus. op and target (the key or path) name the request
// in errors.
func (c *PutConn) roundTrip(op, target string) (http.Header, int64, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return nil, 0, fmt.Errorf("httpload: %s %s: %w", op, target, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("httpload: %s %s: read answer: %w", op, target, err)
	}
	c.server = parseServerTiming(resp.Header.Get("Server-Timing"))
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("httpload: %s %s: read body: %w", op, target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("httpload: %s %s: %w: status %d", op, target, ErrUnexpectedStatus, resp.StatusCode)
	}
	return resp.Header, n, nil
}

// Close closes the connection.
func (c *PutConn) Close() { _ = c.conn.Close() }

// parseServerTiming returns the first "dur=<milliseconds>" parameter of a Server-Timing value, or 0.
func parseServerTiming(v string) time.Duration {
	_, rest, ok := strings.Cut(v, "dur=")
	if !ok {
		return 0
	}
	if i := strings.IndexAny(rest, ";, "); i >= 0 {
		rest = rest[:i]
	}
	ms, err := strconv.ParseFloat(rest, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// Pool is a closed-loop load: keep-alive connections, each with one request in flight.
type Pool struct {
	conns []*PutConn
}

// DialPool dials n connections to addr. The caller must call Close.
func DialPool(ctx context.Context, addr string, n int) (*Pool, error) {
	p := &Pool{}
	for range n {
		c, err := DialPut(ctx, addr)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.conns = append(p.conns, c)
	}
	return p, nil
}

// Close closes every connection.
func (p *Pool) Close() {
	for _, c := range p.conns {
		c.Close()
	}
}

// Len returns the number of connections, and so of workers.
func (p *Pool) Len() int { return len(p.conns) }

// Each runs work(c, w) for every connection c at once, worker w (in [0, Len())) on connection c, and returns when
// every call has, with their errors joined. A failing worker does not stop the others. ctx ending closes the
// connections (the pool cannot be used afterwards), and its error is then joined to the workers'.
func (p *Pool) Each(ctx context.Context, work func(c *PutConn, w int) error) error {
	stop := context.AfterFunc(ctx, p.Close)
	defer stop()
	errs := make([]error, len(p.conns))
	var wg sync.WaitGroup
	for w, c := range p.conns {
		wg.Go(func() { errs[w] = work(c, w) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return errors.Join(err, ctx.Err())
	}
	return nil
}

// Run makes n requests, put(c, w, i) for i in [0, n), spread over the connections: worker w sends on connection c,
// one request at a time, taking the next i as it goes. put may send any request (Put, Get, Post). It returns the
// time from the first request to the last answer. The first error stops every worker and is returned (joined with
// ctx's error when ctx ended: that closes the connections, and the pool cannot be used afterwards).
func (p *Pool) Run(ctx context.Context, n int, put func(c *PutConn, w, i int) error) (time.Duration, error) {
	var (
		next     atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	_ = p.Each(ctx, func(c *PutConn, w int) error { // the workers keep only the first error
		for !failed.Load() {
			i := next.Add(1) - 1
			if i >= int64(n) {
				return nil
			}
			if err := put(c, w, int(i)); err != nil {
				errOnce.Do(func() { firstErr = err })
				failed.Store(true)
				return nil
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, errors.Join(firstErr, ctx.Err())
	}
	return elapsed, nil
}
