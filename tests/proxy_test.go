//go:build e2e

package tests

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a TCP proxy in front of an upstream (the S3 server) that can throttle the bytes flowing back to the
// client, so a restore takes long enough to be interrupted on purpose. It owns its goroutines: Close stops the
// listener and every connection and waits for them.
type proxy struct {
	ln       net.Listener
	upstream string
	rate     atomic.Int64 // bytes per second from upstream to client; 0 = unlimited
	closed   chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startProxy listens on a free loopback port and forwards to upstream; the test's cleanup closes it.
func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &proxy{ln: ln, upstream: upstream, closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

// SetRate limits the upstream-to-client direction to bytesPerSec (0 = unlimited), for new and open connections.
func (p *proxy) SetRate(bytesPerSec int64) { p.rate.Store(bytesPerSec) }

// Close stops accepting, closes every connection and waits for all goroutines. Idempotent.
func (p *proxy) Close() {
	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		return
	default:
	}
	close(p.closed)
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers a connection; it returns false (and closes it) when the proxy is closing.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		_ = c.Close()
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(down) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(down)
			up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
			if err != nil {
				return
			}
			if !p.track(up) {
				return
			}
			defer p.untrack(up)
			var inner sync.WaitGroup
			inner.Add(1)
			go func() {
				defer inner.Done()
				_, _ = io.Copy(up, down)
				closeWrite(up)
			}()
			p.throttledCopy(down, up)
			closeWrite(down)
			inner.Wait()
		}()
	}
}

// throttledCopy copies src to dst in small chunks, pacing them to the current rate.
func (p *proxy) throttledCopy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 16<<10)
	next := time.Now()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if rate := p.rate.Load(); rate > 0 {
				now := time.Now()
				if next.Before(now) {
					next = now
				}
				next = next.Add(time.Duration(int64(n) * int64(time.Second) / rate))
				tm := time.NewTimer(time.Until(next))
				select {
				case <-p.closed:
					tm.Stop()
					return
				case <-tm.C:
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// closeWrite half-closes a TCP connection so the peer sees EOF while the other direction keeps flowing.
func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
