package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

// startServer serves h on a free port; the server is shut down at cleanup.
func startServer(t *testing.T, h http.Handler) (*Server, <-chan error) {
	t.Helper()
	s, err := Listen("127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- s.Serve()
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		select {
		case <-finished:
		case <-ctx.Done():
			t.Error("Serve did not return")
		}
	})
	return s, done
}

// rawRequest sends a raw HTTP/1.1 request line and returns the status line.
func rawRequest(t *testing.T, addr, requestLine string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, requestLine+"\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}

func TestServer_Serve(t *testing.T) {
	node := newFakeNode(3)
	node.put("a/b", "slash", 2)
	s, _ := startServer(t, newLeader(t, node, &fakeWriter{}, nil))
	if strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr = %q, want the bound port", s.Addr())
	}
	tests := []struct {
		name        string
		requestLine string
		status      string
	}{
		{"EncodedSlash", "GET /v1/kv/a%2Fb HTTP/1.1", "HTTP/1.1 200 OK"},
		{"DotSegments", "GET /v1/kv/../kv/a/b HTTP/1.1", "HTTP/1.1 404 Not Found"},
		{"BadEscape", "GET /v1/kv/%zz HTTP/1.1", "HTTP/1.1 400 Bad Request"},
		{"Healthz", "GET /healthz HTTP/1.1", "HTTP/1.1 200 OK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawRequest(t, s.Addr(), tc.requestLine); got != tc.status {
				t.Errorf("status line = %q, want %q", got, tc.status)
			}
		})
	}
}

// gateWriter blocks each write until release is closed, announcing it on started.
type gateWriter struct {
	started chan struct{}
	release chan struct{}
}

func (g *gateWriter) Write(context.Context, WriteRequest) (WriteResult, error) {
	g.started <- struct{}{}
	<-g.release
	return WriteResult{Version: 1}, nil
}

func TestServer_Shutdown(t *testing.T) {
	t.Run("DrainsInFlight", func(t *testing.T) {
		g := &gateWriter{started: make(chan struct{}, 1), release: make(chan struct{})}
		s, done := startServer(t, newLeader(t, newFakeNode(0), g, nil))
		status := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPut, "http://"+s.Addr()+"/v1/kv/a", strings.NewReader("v"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				status <- 0
				return
			}
			_ = resp.Body.Close()
			status <- resp.StatusCode
		}()
		select {
		case <-g.started:
		case <-time.After(5 * time.Second):
			t.Fatal("write never reached the writer")
		}
		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(context.Background()) }()
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a request in flight", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(g.release)
		if got := <-status; got != http.StatusOK {
			t.Errorf("in-flight request status = %d, want 200", got)
		}
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		g := &gateWriter{started: make(chan struct{}, 1), release: make(chan struct{})}
		t.Cleanup(func() { close(g.release) })
		s, _ := startServer(t, newLeader(t, newFakeNode(0), g, nil))
		go func() {
			req, _ := http.NewRequest(http.MethodPut, "http://"+s.Addr()+"/v1/kv/a", strings.NewReader("v"))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}()
		<-g.started
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("BeforeServe", func(t *testing.T) {
		s, err := Listen("127.0.0.1:0", newLeader(t, newFakeNode(0), &NoopWriter{}, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := s.Serve(); err != nil {
			t.Errorf("Serve after Shutdown = %v, want nil", err)
		}
		if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			t.Error("listener still open after Shutdown")
		}
	})
	t.Run("Twice", func(t *testing.T) {
		s, done := startServer(t, newLeader(t, newFakeNode(0), &NoopWriter{}, nil))
		for range 2 {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func TestListen_AddrInUse(t *testing.T) {
	s, _ := startServer(t, newLeader(t, newFakeNode(0), &NoopWriter{}, nil))
	if _, err := Listen(s.Addr(), http.NotFoundHandler(), nil); err == nil {
		t.Fatal("Listen on a bound address succeeded")
	}
}

// slowBody opens a connection and sends a PUT's headers declaring n body bytes, and no body.
func slowBody(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := fmt.Fprintf(c, "PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", n); err != nil {
		t.Fatal(err)
	}
	return c
}

// A write whose body never arrives is answered 408 after the body timeout instead of pinning its buffer forever,
// and the bodies held at once are capped: past the cap a write answers 503 with Retry-After at once.
func TestServer_SlowBodies(t *testing.T) {
	t.Run("BodyTimeout", func(t *testing.T) {
		s, _ := startServer(t, newLeader(t, newFakeNode(3), &fakeWriter{}, func(c *Config) { c.BodyTimeout = 200 * time.Millisecond }))
		c := slowBody(t, s.Addr(), apply.MaxValueLen)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("no answer to a body that never came: %v", err)
		}
		if !strings.HasPrefix(line, "HTTP/1.1 408") || time.Since(start) > 5*time.Second {
			t.Fatalf("answer %q after %s, want 408 after the 200 ms body timeout", line, time.Since(start))
		}
	})
	t.Run("BufferCap", func(t *testing.T) {
		w := &fakeWriter{}
		h := newLeader(t, newFakeNode(3), w, func(c *Config) {
			c.BodyBuffer = apply.MaxValueLen + apply.MaxValueLen/2
		})
		s, _ := startServer(t, h)
		slowBody(t, s.Addr(), apply.MaxValueLen)
		// Wait until the server has read the slow request's headers and reserved its body.
		budget := h.(*handler).bodies
		for deadline := time.Now().Add(10 * time.Second); budget.inUse() != apply.MaxValueLen; {
			if time.Now().After(deadline) {
				t.Fatalf("the slow body holds %d bytes of the budget, want %d", budget.inUse(), apply.MaxValueLen)
			}
			time.Sleep(5 * time.Millisecond)
		}
		resp, err := putRaw(s.Addr(), strings.Repeat("x", apply.MaxValueLen))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("a write past the body buffer: %d (Retry-After %q), want 503 with Retry-After",
				resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		// Small bodies still fit beside the held one.
		resp, err = putRaw(s.Addr(), "small")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("small write beside a held body: %d", resp.StatusCode)
		}
	})
}

// putRaw sends PUT /v1/kv/k with body to the server at addr.
func putRaw(addr, body string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/kv/k", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}
