package testlog

import (
	"fmt"
	"strings"
	"testing"
)

// fakeTB records what is logged and the cleanups, which the test runs by hand.
type fakeTB struct {
	testing.TB
	lines    []string
	cleanups []func()
}

func (f *fakeTB) Logf(format string, args ...any) {
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func TestNew_DropsLinesAfterCleanup(t *testing.T) {
	f := &fakeTB{TB: t}
	log := New(f)
	log.Info("before cleanup")
	if len(f.lines) != 1 || !strings.Contains(f.lines[0], "before cleanup") || strings.HasSuffix(f.lines[0], "\n") {
		t.Fatalf("logged %q, want one line with the message and no trailing newline", f.lines)
	}
	if len(f.cleanups) != 1 {
		t.Fatalf("registered %d cleanups, want 1", len(f.cleanups))
	}
	f.cleanups[0]()
	log.Info("after cleanup")
	if len(f.lines) != 1 {
		t.Fatalf("logged %q after cleanup began", f.lines[1:])
	}
}
