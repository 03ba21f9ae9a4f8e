//go:build e2e

package tests

import (
	"context"
	"errors"
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

// Log messages (zap JSON, info level) the harness parses from a binary's stderr.
const (
	msgHTTPListening = "http listening"          // field "addr": the bound HTTP address
	msgNATSListening = "embedded nats listening" // field "url": the embedded NATS client URL (leader only)
)

const (
	startTimeout = 30 * time.Second // from exec to the "http listening" line
	stopTimeout  = 20 * time.Second // from a signal to the process exit
)

// proc is one run (and its restarts) of a replikv binary. The test goroutine drives it; the only other goroutine is
// the waiter of the current run, which its procrun.Process owns and which ends when the process exits.
type proc struct {
	t       *testing.T
	name    string // short name for logs, e.g. "leader" or "f1"
	bin     string
	args    []string
	env     []string
	workDir string
	logPath string
	token   string       // --auth-token, for the client
	hc      *http.Client // never follows redirects

	mu      sync.Mutex
	run     *procrun.Process // the current run
	url     string           // http://<bound addr>
	natsURL string           // embedded NATS client URL (leader without --nats-url)
	runs    int
}

// newProc prepares (does not start) a process. Its cleanup kills whatever is left running and, if the test failed,
// logs the tail of its output.
func newProc(t *testing.T, name, bin string, args, env []string, hc *http.Client) *proc {
	t.Helper()
	p := &proc{
		t: t, name: name, bin: bin, args: args, env: env, hc: hc,
		workDir: t.TempDir(),
		token:   flagValue(args, "auth-token"),
	}
	p.logPath = filepath.Join(p.workDir, name+".log")
	t.Cleanup(func() {
		p.killQuietly()
		if p.current() != nil {
			checkLogNoSecrets(t, p.logPath, secretsOf(p.args, p.env))
		}
		if t.Failed() {
			t.Logf("--- tail of %s output (%s) ---\n%s", p.name, p.logPath, tailFile(p.logPath, 60))
		}
	})
	return p
}

// start runs the binary and waits for its "http listening" line (and "embedded nats listening" when wantNATS).
func (p *proc) start(wantNATS bool) {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("%s: open log: %v", p.name, err)
	}
	p.mu.Lock()
	p.runs++
	run := p.runs
	p.mu.Unlock()
	fmt.Fprintf(f, "=== run %d: %s %s\n", run, filepath.Base(p.bin), redactArgs(p.args, secretsOf(p.args, p.env)))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.workDir
	cmd.Env = p.env
	r, err := procrun.Start(cmd, f)
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	p.mu.Lock()
	p.run, p.url, p.natsURL = r, "", ""
	p.mu.Unlock()
	lw := r.Log()

	deadline := time.Now().Add(startTimeout)
	for {
		addr, nurl := lw.String(msgHTTPListening, "addr"), lw.String(msgNATSListening, "url")
		if addr != "" && (!wantNATS || nurl != "") {
			p.mu.Lock()
			p.url, p.natsURL = "http://"+addr, nurl
			p.mu.Unlock()
			return
		}
		select {
		case <-r.Done():
			p.t.Fatalf("%s: exited during start (code %d); output:\n%s", p.name, r.ExitCode(), tailFile(p.logPath, 40))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no %q line (nats %v) within %v; output:\n%s",
				p.name, msgHTTPListening, wantNATS, startTimeout, tailFile(p.logPath, 40))
		}
	}
}

// restart starts the process again with the same arguments (so the same data dir), except that each override
// "--name=value" replaces the flag of the same name (or is appended). The previous run must have exited.
func (p *proc) restart(wantNATS bool, overrides ...string) {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("%s: restart while running", p.name)
	}
	for _, o := range overrides {
		name, value, _ := strings.Cut(strings.TrimLeft(o, "-"), "=")
		p.args = setFlag(p.args, name, value)
	}
	p.start(wantNATS)
}

func (p *proc) running() bool {
	r := p.current()
	return r != nil && !r.Exited()
}

// current is the current run, nil before the first start.
func (p *proc) current() *procrun.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run
}

// stop sends SIGTERM and waits for the exit; it fails the test unless the process exits with code 0 within
// stopTimeout. It returns how long the exit took.
func (p *proc) stop() time.Duration {
	p.t.Helper()
	took, code := p.signalAndWait(syscall.SIGTERM)
	if code != 0 {
		p.t.Fatalf("%s: SIGTERM: exit code %d, want 0; output:\n%s", p.name, code, tailFile(p.logPath, 40))
	}
	return took
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	p.t.Helper()
	p.signalAndWait(syscall.SIGKILL)
}

func (p *proc) signalAndWait(sig syscall.Signal) (time.Duration, int) {
	p.t.Helper()
	r := p.current()
	if r == nil {
		p.t.Fatalf("%s: not started", p.name)
	}
	start := time.Now()
	if err := r.Signal(sig); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	if !r.Wait(stopTimeout) {
		r.Kill()
		p.t.Fatalf("%s: no exit within %v of %v; output:\n%s", p.name, stopTimeout, sig, tailFile(p.logPath, 40))
	}
	return time.Since(start), r.ExitCode()
}

func (p *proc) killQuietly() {
	if r := p.current(); r != nil {
		r.Kill()
	}
}

// URL is the base URL of the current run's HTTP API.
func (p *proc) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// NATSURL is the embedded NATS client URL the current run logged.
func (p *proc) NATSURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.natsURL
}

// api is a client for the current run's HTTP API, with the process's auth token.
func (p *proc) api() *client {
	return &client{base: p.URL(), token: p.token, hc: p.hc}
}

// tailFile returns the last n lines of a process log (or the read error), leaving out the embedded NATS server's
// info lines (its start banner would fill the tail); the file keeps everything.
func tailFile(path string, n int) string { return proclog.Tail(path, n, proclog.NATSInfo) }

// runToExit runs a binary that is expected to exit by itself (bad flags) and returns its exit code and combined
// output. It fails the test if the process is still running after timeout.
func runToExit(t *testing.T, bin string, env []string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %v (want an exit at start); output:\n%s",
			filepath.Base(bin), redactArgs(args, secretsOf(args, env)), timeout, out)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %v: %v", filepath.Base(bin), args, err)
	}
	checkNoSecrets(t, filepath.Base(bin)+"'s output", string(out), secretsOf(args, env))
	return cmd.ProcessState.ExitCode(), string(out)
}

// flagValue returns the value of --name=value (or "--name value") in args, "" if absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n != name || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasValue {
			return v
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// hasFlag reports whether args set --name (in any form).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// dropFlag returns args without any --name=... entry (the "=" form only).
func dropFlag(args []string, name string) []string {
	var out []string
	for _, a := range args {
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name {
			continue
		}
		out = append(out, a)
	}
	return out
}

// setFlag returns args with every --name=... replaced by --name=value (appended when absent). Only the "=" form
// is replaced, which is the only form the harness writes.
func setFlag(args []string, name, value string) []string {
	return append(dropFlag(args, name), "--"+name+"="+value)
}
