//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/proclog"
	"github.com/replikv/replikv/internal/procrun"
)

const (
	readyTimeout = 90 * time.Second // from a (re)start to /readyz (or nats /healthz) answering 200
	pollEvery    = 50 * time.Millisecond
)

// proc is one process (leader, follower or nats-server) and its restarts. Its output of every run is appended to one
// log file. Methods are safe for concurrent use; the fault injector is the only one that starts and stops it.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	health  string // URL that answers 200 once the process is ready

	mu      sync.Mutex
	run     *procrun.Process
	runs    int
	stopped bool // SIGSTOPped
}

func newProc(t *testing.T, dir, name, bin string, args, env []string, health string) *proc {
	p := &proc{name: name, bin: bin, args: args, env: env, logPath: filepath.Join(dir, name+".log"), health: health}
	t.Cleanup(p.kill)
	return p
}

// start runs the binary once more (it must not be running).
func (p *proc) start() error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil && !p.run.Exited() {
		_ = f.Close()
		return fmt.Errorf("%s: start while running", p.name)
	}
	p.runs++
	fmt.Fprintf(f, "=== run %d at %s: %s %s\n", p.runs, time.Now().Format(time.RFC3339Nano), filepath.Base(p.bin), strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	r, err := procrun.Start(cmd, f)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.run, p.stopped = r, false
	return nil
}

// runNumber is the number of the current run (1 for the first), for per-run checks.
func (p *proc) runNumber() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs
}

func (p *proc) current() *procrun.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run
}

// exited reports whether the process is not running (never started or exited).
func (p *proc) exited() bool {
	r := p.current()
	return r == nil || r.Exited()
}

// kill continues a stopped process and kills it (SIGKILL), waiting for the exit. Idempotent.
func (p *proc) kill() {
	p.cont()
	if r := p.current(); r != nil {
		r.Kill()
	}
}

// pause sends SIGSTOP and returns once the process is stopped (procrun.Process.Pause).
func (p *proc) pause() error {
	r := p.current()
	if r == nil || r.Exited() {
		return fmt.Errorf("%s: pause: not running", p.name)
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	return r.Pause(10 * time.Second)
}

// cont sends SIGCONT to a paused process.
func (p *proc) cont() {
	p.mu.Lock()
	r, stopped := p.run, p.stopped
	p.stopped = false
	p.mu.Unlock()
	if r != nil && stopped {
		_ = r.Signal(syscall.SIGCONT)
	}
}

// waitReady polls the health URL until it answers 200, the process exits, or timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	r := p.current()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.health, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.Done():
			return fmt.Errorf("%s exited (code %d) before it was ready", p.name, r.ExitCode())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v", p.name, timeout)
		case <-time.After(pollEvery):
		}
	}
}

// tail is the end of the process's log for failure messages.
func (p *proc) tail(n int) string { return proclog.Tail(p.logPath, n, nil) }
