package node_test

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

	"github.com/replikv/replikv/internal/testutil/httpload"
)

// rawConn is one keep-alive HTTP/1.1 connection written by hand, as httpload's (the load generator shares the
// server's two cores and should cost them little), for what httpload does not do: GETs, and PUTs whose answer's
// version the caller needs. It is owned by one goroutine; close may be called from another to abort it.
type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s: %w", addr, err)
	}
	return &rawConn{conn: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

func (c *rawConn) close() { _ = c.conn.Close() }

// get sends GET path (escaped, with its query) and returns the length of the answer's body; anything but 200 wraps
// httpload.ErrUnexpectedStatus.
func (c *rawConn) get(path string) (int64, error) {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
	resp, err := c.roundTrip()
	if err != nil {
		return 0, fmt.Errorf("bench: get %s: %w", path, err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("bench: get %s: body: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: get %s: %w: status %d", path, httpload.ErrUnexpectedStatus, resp.StatusCode)
	}
	return n, nil
}

// put sends PUT /v1/kv/<key> with value and returns the version of the answer's ETag; anything but 200 wraps
// httpload.ErrUnexpectedStatus.
func (c *rawConn) put(key string, value []byte) (uint64, error) {
	c.req = append(c.req[:0], "PUT /v1/kv/"...)
	c.req = append(c.req, key...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(value)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, value...)
	resp, err := c.roundTrip()
	if err != nil {
		return 0, fmt.Errorf("bench: put %s: %w", key, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("bench: put %s: body: %w", key, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: put %s: %w: status %d", key, httpload.ErrUnexpectedStatus, resp.StatusCode)
	}
	version, err := strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: put %s: ETag %q: %w", key, resp.Header.Get("ETag"), err)
	}
	return version, nil
}

func (c *rawConn) roundTrip() (*http.Response, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return resp, nil
}

// rawPool is a closed-loop load over rawConns: one request in flight on each.
type rawPool []*rawConn

// dialRawPool dials n connections to addr. The caller must call close.
func dialRawPool(ctx context.Context, addr string, n int) (rawPool, error) {
	var p rawPool
	for range n {
		c, err := dialRaw(ctx, addr)
		if err != nil {
			p.close()
			return nil, err
		}
		p = append(p, c)
	}
	return p, nil
}

func (p rawPool) close() {
	for _, c := range p {
		c.close()
	}
}

// run makes n requests, do(c, i) for i in [0, n), spread over the connections as httpload.Pool.Run does, and
// returns the time from the first request to the last answer. The first error stops every worker; ctx ending closes
// the connections.
func (p rawPool) run(ctx context.Context, n int, do func(c *rawConn, i int) error) (time.Duration, error) {
	stop := context.AfterFunc(ctx, p.close)
	defer stop()
	var (
		next     atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for _, c := range p {
		wg.Go(func() {
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := do(c, int(i)); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, errors.Join(firstErr, ctx.Err())
	}
	return elapsed, nil
}
