package store

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// logEvery is how often the store logs a line that repeats (the same pebble error format, or background errors of one
// kind); the lines in between are counted and the count is logged with the next one. Pebble retries a failed flush at
// once, so on a full disk its error line would otherwise repeat thousands of times a second.
const logEvery = 5 * time.Second

// limiter rate-limits log lines by key.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	seen  map[string]*limit
}

type limit struct {
	last    time.Time
	dropped int
}

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, seen: make(map[string]*limit)}
}

// allow reports whether a line with key may be logged now, and how many were dropped since the last one.
func (l *limiter) allow(key string) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	s := l.seen[key]
	if s == nil {
		s = &limit{}
		l.seen[key] = s
	} else if now.Sub(s.last) < l.every {
		s.dropped++
		return false, 0
	}
	s.last, dropped, s.dropped = now, s.dropped, 0
	return true, dropped
}

// pebbleLogger routes pebble's log lines into zap. Pebble's info lines are routine (WAL recovery, ingestion) and go
// to debug; its error lines are rate-limited per format.
type pebbleLogger struct {
	log   *zap.Logger
	guard *diskGuard
	lim   *limiter
}

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Core().Enabled(zap.DebugLevel) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if ok, dropped := l.lim.allow(format); ok {
		l.log.Error(fmt.Sprintf(format, args...), zap.Int("repeats_dropped", dropped))
	}
}

// fatalPanic is the panic Fatalf raises on a store call's goroutine; the call recovers it (diskGuard.catch).
type fatalPanic struct{ err error }

// Fatalf is called by pebble when it cannot go on: a failed commit (db.go applyInternal), a failed MANIFEST write
// (version_set.go logAndApply), an invariant violation. Pebble expects it not to return. It records the failure, which
// fences the store's files and makes every later write return it, and then:
//   - on the goroutine of a store call (Apply, Open, a Loader's Ingest), it panics with fatalPanic, which that call
//     recovers and returns as an error;
//   - on one of pebble's background goroutines, where a panic would kill the process, it parks the goroutine for
//     good. The owner must Close the store (which then abandons the pebble instance) and Open it again.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	var cause error
	for _, a := range args {
		if e, ok := a.(error); ok {
			cause = e
			break
		}
	}
	msg := fmt.Sprintf(format, args...)
	err := errors.New("pebble: " + msg)
	if cause != nil {
		err = fmt.Errorf("pebble: %s: %w", msg, cause)
	}
	l.guard.fail(err)
	if onStoreCall() {
		panic(fatalPanic{err: err})
	}
	l.log.Error("pebble background goroutine parked after a fatal error", zap.Error(err))
	select {}
}

// storePkg is this package's import path, as runtime frames name it.
var storePkg = reflect.TypeFor[pebbleLogger]().PkgPath()

// onStoreCall reports whether the caller's goroutine runs inside a call of this package (which recovers fatalPanic),
// rather than on one of pebble's own goroutines. It is only used on the fatal path.
func onStoreCall() bool {
	pcs := make([]uintptr, 128)
	n := runtime.Callers(3, pcs) // skip runtime.Callers, onStoreCall and Fatalf
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if rest, ok := strings.CutPrefix(f.Function, storePkg+"."); ok && !strings.HasPrefix(rest, "pebbleLogger.") {
			return true
		}
		if !more {
			return false
		}
	}
}
