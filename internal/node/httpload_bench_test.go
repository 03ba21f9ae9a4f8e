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
	"sync"
	"sync/atomic"
	"time"
)

// putConn is one keep-alive HTTP/1.1 connection sending PUTs one at a time. It is written by hand (no net/http
// client) so that the load generator costs as little CPU as possible next to the server on a 2-core machine: the
// benchmark should measure the server stack, not the client. A putConn is owned by one goroutine.
type putConn struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func dialPut(ctx context.Context, addr string) (*putConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s: %w", addr, err)
	}
	return &putConn{conn: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// put sends PUT /v1/kv/<key> with value and reads the whole answer; anything but 200 is an error.
func (c *putConn) put(key string, value []byte) error {
	c.req = append(c.req[:0], "PUT /v1/kv/"...)
	c.req = append(c.req, key...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(value)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, value...)
	if _, err := c.conn.Write(c.req); err != nil {
		return fmt.Errorf("bench: put: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fmt.Errorf("bench: put: read answer: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("bench: put: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: put: %w: status %d", errUnexpectedStatus, resp.StatusCode)
	}
	return nil
}

func (c *putConn) close() { _ = c.conn.Close() }

// errUnexpectedStatus marks an answer other than 200 to a benchmark write.
var errUnexpectedStatus = errors.New("unexpected status")

// putLoad is a closed-loop write load: conns keep-alive connections, each with one request in flight.
type putLoad struct {
	addr  string
	conns []*putConn
	value []byte
}

// newPutLoad dials conns connections to addr. The caller must call close.
func newPutLoad(ctx context.Context, addr string, conns int, value []byte) (*putLoad, error) {
	l := &putLoad{addr: addr, value: value}
	for range conns {
		c, err := dialPut(ctx, addr)
		if err != nil {
			l.close()
			return nil, err
		}
		l.conns = append(l.conns, c)
	}
	return l, nil
}

func (l *putLoad) close() {
	for _, c := range l.conns {
		c.close()
	}
}

// run writes n distinct keys (prefix + index) and returns the time from the first request to the last answer. It
// stops at the first error; ctx ending closes the connections (the load cannot be used afterwards).
func (l *putLoad) run(ctx context.Context, prefix string, n int) (time.Duration, error) {
	stop := context.AfterFunc(ctx, l.close)
	defer stop()
	var (
		next     atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for _, c := range l.conns {
		wg.Go(func() {
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := c.put(prefix+strconv.FormatInt(i, 10), l.value); err != nil {
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
		if ctx.Err() != nil {
			return 0, fmt.Errorf("bench: put load: %w", ctx.Err())
		}
		return 0, firstErr
	}
	return elapsed, nil
}
