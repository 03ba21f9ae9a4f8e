package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Server timeouts: headers must arrive promptly (slow-loris), idle keep-alive connections are closed eventually.
// There is no write timeout, since reads may legitimately wait up to MaxReadTimeout.
const (
	serverReadHeaderTimeout = 10 * time.Second
	serverIdleTimeout       = 2 * time.Minute
)

// Server is an HTTP server bound to a listener. Listen (or ListenTLS) binds, Serve serves until Shutdown; Shutdown
// drains.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log *zap.Logger
	tls bool
}

// Listen binds addr ("host:port"; port 0 picks a free port) and prepares to serve h; nothing is served before
// Serve. log (nil = no logs) receives the server's own errors (bad TLS, handler panics) at warn level, as given: the
// caller names the component. The caller must call Shutdown (even if Serve was never called) to release the listener.
func Listen(addr string, h http.Handler, log *zap.Logger) (*Server, error) {
	return listen(addr, h, nil, log)
}

// ListenTLS is Listen for HTTPS: every connection is a TLS server connection with tc (HTTP/1.1 only; tc must offer
// "http/1.1" or no protocol by ALPN). The TLS handshake counts towards the header read timeout.
func ListenTLS(addr string, h http.Handler, tc *tls.Config, log *zap.Logger) (*Server, error) {
	if tc == nil {
		return nil, fmt.Errorf("api: listen %s: no TLS configuration", addr)
	}
	return listen(addr, h, tc, log)
}

func listen(addr string, h http.Handler, tc *tls.Config, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen %s: %w", addr, err)
	}
	errLog, err := zap.NewStdLogAt(log, zapcore.WarnLevel)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("api: listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: serverReadHeaderTimeout,
		IdleTimeout:       serverIdleTimeout,
		ErrorLog:          errLog,
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return &Server{srv: srv, ln: ln, log: log, tls: tc != nil}, nil
}

// Addr is the bound address ("127.0.0.1:34567"), with the real port when addr asked for port 0.
func (s *Server) Addr() string {
	return s.ln.Addr().String()
}

// URL is the base URL of the bound address: "https://" + Addr() when the server speaks TLS, else "http://" + Addr().
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Serve serves requests until Shutdown and blocks meanwhile. It returns nil after Shutdown (also when Shutdown came
// first), or the error that stopped the server. Call it once.
func (s *Server) Serve() error {
	s.log.Debug("serving", zap.String(fieldAddr, s.Addr()))
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests to finish. When ctx ends first it closes
// the remaining connections and returns ctx's error. It may be called more than once and concurrently with Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	_ = s.ln.Close() // Shutdown closes it only when Serve was running; a second close is harmless
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}
