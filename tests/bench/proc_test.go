//go:build bench

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/proclog"
	"github.com/replikv/replikv/internal/procrun"
)

// Log messages (zap JSON, info level) the harness reads from a binary's stderr.
const (
	msgHTTPListening   = "http listening"                                 // field "addr"
	msgNATSListening   = "embedded nats listening"                        // field "url" (leader without --nats-url)
	msgSnapshotRestore = "snapshot restored"                              // field "took" (follower)
	msgSnapshotCreated = "snapshot created"                               // leader, once a snapshot is uploaded and its manifest written
	msgMirrorCatchUp   = "catching up from the log's mirror"              // follower, --catchup-mirror on the leader
	msgMirrorFallback  = "catching up from the log instead of its mirror" // follower, the mirror could not serve
	msgCatchingUp      = "catching up"                                    // follower, restored (or resumed), starts reading
	msgMirrorCaughtUp  = "caught up from the mirror; following the log"   // follower, switches from the mirror to the log
)

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// proc is one running replikv binary, nats-server or redis-server (a procrun.Process): its output goes to a log file
// and its JSON lines are indexed. Cleanup kills the process and waits for it.
type proc struct {
	*procrun.Process
	b       testing.TB
	name    string
	logPath string
	started time.Time
}

// startProc starts bin with args, its output in <dir>/<name>.log (with -bench.logdir, in a file of that directory).
func startProc(b testing.TB, dir, name, bin string, args ...string) *proc {
	b.Helper()
	logPath := filepath.Join(dir, name+".log")
	if *flagLogDir != "" {
		logPath = filepath.Join(*flagLogDir, name+"-"+time.Now().Format("20060102T150405.000")+".log")
	}
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatalf("%s: log file: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = benchEnv()
	started := time.Now()
	pr, err := procrun.Start(cmd, f)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	p := &proc{Process: pr, b: b, name: name, logPath: logPath, started: started}
	b.Cleanup(func() {
		p.Kill()
		if b.Failed() {
			b.Logf("--- tail of %s (%s) ---\n%s", name, p.logPath, tailFile(p.logPath, 30))
		}
	})
	return p
}

// benchEnv is the environment of the started processes: the benchmark's own, without any REPLIKV_ setting that
// could change the flags under test.
func benchEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REPLIKV_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitField waits until the process logged msg with a field, and returns the field as a string.
func (p *proc) waitField(msg, field string, timeout time.Duration) string {
	p.b.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, ok := p.Log().Field(msg, field); ok {
			return fmt.Sprint(v)
		}
		select {
		case <-p.Done():
			p.b.Fatalf("%s exited before logging %q:\n%s", p.name, msg, tailFile(p.logPath, 30))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.b.Fatalf("%s did not log %q within %v:\n%s", p.name, msg, timeout, tailFile(p.logPath, 30))
		}
	}
}

// field returns a watched message's field if it was logged.
func (p *proc) field(msg, name string) (any, bool) { return p.Log().Field(msg, name) }

// stop sends SIGTERM and waits for the exit (SIGKILL after stopTimeout).
func (p *proc) stop() { p.Stop(stopTimeout) }

// procStatus reads a "Vm..." line of /proc/<pid>/status in KiB (e.g. VmHWM, the peak resident set size).
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: proc status: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: proc status %s: %w", key, err)
		}
		return kb, nil
	}
	return 0, fmt.Errorf("bench: proc status: no %s line", key)
}

// procCPU returns the user+system CPU time a process has used so far (from /proc/<pid>/stat, in clock ticks of
// 10 ms on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: proc stat: %w", err)
	}
	// The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: proc stat: malformed")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: proc stat: malformed")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("bench: proc stat: %w", err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// ioStall returns the total time some task stalled on I/O so far (/proc/pressure/io, line "some", field total, in
// microseconds), and false where the kernel does not report pressure.
func ioStall() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/pressure/io")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "some ")
		if !ok {
			continue
		}
		for f := range strings.FieldsSeq(rest) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, false
				}
				return time.Duration(us) * time.Microsecond, true
			}
		}
	}
	return 0, false
}

// logged returns the times at which the process logged msg, oldest first.
func (p *proc) logged(msg string) []time.Time { return p.Log().Times(msg) }

// tailFile returns the last n lines of a file, for failure messages.
func tailFile(path string, n int) string { return proclog.Tail(path, n, nil) }
