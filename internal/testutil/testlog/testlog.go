// Package testlog gives tests a zap logger that writes to the test's log, like zaptest's, but drops what is logged
// once the test's cleanup has begun: nats.go runs its connection callbacks, which log, on a goroutine of its own that
// can outlive the test by a moment, and testing forbids t.Log after the test has finished (the race detector reports
// it).
package testlog

import (
	"bytes"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns the logger. Call it before registering the cleanups that close what logs to it: cleanups run
// last-in, first-out, so it stops forwarding only after they ran.
func New(t testing.TB) *zap.Logger {
	w := &guardedWriter{t: t}
	t.Cleanup(w.close)
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, w, zapcore.DebugLevel))
}

// guardedWriter forwards writes to t.Logf until close.
type guardedWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (w *guardedWriter) Sync() error { return nil }

func (w *guardedWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
