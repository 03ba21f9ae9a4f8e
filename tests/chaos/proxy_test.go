//go:build chaos

package chaos

import (
	"net"
	"sync"
	"testing"
	"time"
)

// proxyMode is what a faultProxy does with the traffic.
type proxyMode int

const (
	modePass  proxyMode = iota // forward everything
	modeCut                    // every connection closed, new ones accepted and closed at once
	modeDelay                  // forward every chunk after a fixed latency (pipelined: no throughput cap)
)

func (m proxyMode) String() string {
	switch m {
	case modePass:
		return "pass"
	case modeCut:
		return "cut"
	case modeDelay:
		return "delay"
	}
	return "mode?"
}

// faultProxy is a TCP proxy in front of one upstream (nats-server or the S3 server) for one client process. It owns
// its goroutines: Close stops the listener and every connection and waits for all of them.
type faultProxy struct {
	name     string
	ln       net.Listener
	upstream string
	closed   chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	mode  proxyMode
	delay time.Duration
	conns map[net.Conn]struct{}
}

// startProxy listens on a free loopback port and forwards to upstream; the test's cleanup closes it.
func startProxy(t *testing.T, name, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy %s: listen: %v", name, err)
	}
	p := &faultProxy{name: name, ln: ln, upstream: upstream, closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// Pass forwards traffic again.
func (p *faultProxy) Pass() { p.set(modePass, 0) }

// Cut closes every open connection and refuses (accepts and closes) new ones until Pass.
func (p *faultProxy) Cut() { p.set(modeCut, 0) }

// Delay adds d of latency to every chunk, both ways, for open and new connections, until Pass.
func (p *faultProxy) Delay(d time.Duration) { p.set(modeDelay, d) }

func (p *faultProxy) set(m proxyMode, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = m, d
	if m == modeCut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *faultProxy) state() (proxyMode, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay
}

// Close stops accepting, closes every connection and waits for all goroutines. Idempotent.
func (p *faultProxy) Close() {
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
func (p *faultProxy) track(c net.Conn) bool {
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

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *faultProxy) accept() {
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
				p.pipe(up, down)
			}()
			p.pipe(down, up)
			// Either direction ending ends the connection: close both so the other pipe returns too.
			_ = up.Close()
			_ = down.Close()
			inner.Wait()
		}()
	}
}

// chunk is data read at a time, to be written after the delay in force when it was read.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst. A reader goroutine stamps each chunk with its due time (now + delay) and a writer (this
// goroutine) writes it when due, so latency is added without capping throughput.
func (p *faultProxy) pipe(dst, src net.Conn) {
	ch := make(chan chunk, 256)
	done := make(chan struct{})
	var rd sync.WaitGroup
	rd.Add(1)
	go func() {
		defer rd.Done()
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				_, d := p.state()
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
	defer func() { _ = src.Close() }() // unblocks the reader when the writer side fails
	for c := range ch {
		if wait := time.Until(c.due); wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-p.closed:
				tm.Stop()
				return
			}
		}
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
	// Source ended: half-close so the peer sees EOF.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
