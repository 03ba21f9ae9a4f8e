// Package tcpproxy is a TCP proxy for tests that puts faults between a process and what it connects to (NATS, S3):
// it forwards to one upstream and, on demand, cuts every connection, adds latency both ways, or caps the bandwidth
// from the upstream to the client.
package tcpproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// mode is what a Proxy does with the traffic.
type mode int

const (
	modePass  mode = iota // forward everything
	modeCut               // every connection closed, new ones accepted and closed at once
	modeDelay             // forward every chunk after a fixed latency (pipelined: no throughput cap)
)

// Proxy forwards connections to one upstream. It owns its goroutines: Close stops the listener and every
// connection and waits for all of them. Its methods are safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	closed   chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	mode  mode
	delay time.Duration
	rate  int64 // bytes per second from upstream to client; 0 = unlimited
	conns map[net.Conn]struct{}
}

// Start listens on a free loopback port and forwards to upstream; the test's cleanup closes it.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcpproxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pass forwards traffic again, without added latency (a rate set by SetRate stays).
func (p *Proxy) Pass() { p.set(modePass, 0) }

// Cut closes every open connection and refuses (accepts and closes) new ones until Pass.
func (p *Proxy) Cut() { p.set(modeCut, 0) }

// Delay adds d of latency to every chunk, both ways, for open and new connections, until Pass.
func (p *Proxy) Delay(d time.Duration) { p.set(modeDelay, d) }

// SetRate caps the upstream-to-client direction at bytesPerSec (0 = unlimited), for new and open connections.
func (p *Proxy) SetRate(bytesPerSec int64) {
	p.mu.Lock()
	p.rate = bytesPerSec
	p.mu.Unlock()
}

func (p *Proxy) set(m mode, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = m, d
	if m == modeCut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *Proxy) state() (delay time.Duration, rate int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay, p.rate
}

// Close stops accepting, closes every connection and waits for all goroutines. Idempotent.
func (p *Proxy) Close() {
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

// track registers a connection; it returns false (and closes it) when the proxy is closing or cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		_ = c.Close()
		return false
	default:
	}
	if p.mode == modeCut {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
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
				p.pipe(up, down, false)
			}()
			p.pipe(down, up, true)
			inner.Wait()
		}()
	}
}

// chunk is data read at a time, to be written after the delay in force when it was read.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, then half-closes dst so that its peer sees EOF while the other direction goes on. A reader
// goroutine stamps each chunk with its due time (now + delay) and this goroutine writes it when due, so latency is
// added without capping throughput; paced applies the rate set by SetRate.
func (p *Proxy) pipe(dst, src net.Conn, paced bool) {
	ch := make(chan chunk, 256)
	done := make(chan struct{})
	var rd sync.WaitGroup
	rd.Add(1)
	go func() {
		defer rd.Done()
		defer close(ch)
		for {
			buf := make([]byte, 16<<10)
			n, err := src.Read(buf)
			if n > 0 {
				d, _ := p.state()
				select {
				case ch <- chunk{data: buf[:n], due: time.Now().Add(d)}:
				case <-done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer rd.Wait()
	defer close(done)
	ended := false // the source ended: the other direction goes on
	defer func() {
		if !ended {
			_ = src.Close() // this direction failed or the proxy closed: unblock the reader, end the connection
		}
	}()
	next := time.Now() // when the rate allows the next write
	for c := range ch {
		due := c.due
		if _, rate := p.state(); paced && rate > 0 {
			if now := time.Now(); next.Before(now) {
				next = now
			}
			due = later(due, next)
			next = next.Add(time.Duration(int64(len(c.data)) * int64(time.Second) / rate))
		}
		if !p.sleepUntil(due) {
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
	ended = true
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// sleepUntil waits until t; it returns false when the proxy closed first.
func (p *Proxy) sleepUntil(t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-p.closed:
		return false
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
