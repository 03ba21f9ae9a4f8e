//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Log messages (zap JSON, info level) the harness reads from a binary's stderr.
const (
	msgHTTPListening   = "http listening"                                 // field "addr"
	msgNATSListening   = "embedded nats listening"                        // field "url" (leader without --nats-url)
	msgSnapshotRestore = "snapshot restored"                              // field "took" (follower)
	msgSnapshotCreated = "snapshot created"                               // leader, once a snapshot is uploaded and its manifest written
	msgMirrorCatchUp   = "catching up from the log's mirror"              // follower, --catchup-mirror on the leader
	msgMirrorFallback  = "catching up from the log instead of its mirror" // follower, the mirror could not serve
)

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// proc is one running replikv binary or redis-server. Its output goes to a log file; the JSON lines whose "msg" is
// watched are kept. The waiter goroutine is owned by proc and ends when the process exits; cleanup kills the
// process and waits for it.
type proc struct {
	b       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	lw      *logWriter
	started time.Time
	done    chan struct{}
}

// startProc starts bin with args, its output in <dir>/<name>.log (with -bench.logdir, in a file of that directory).
func startProc(b testing.TB, dir, name, bin string, args ...string) *proc {
	b.Helper()
	logPath := filepath.Join(dir, name+".log")
	if *flagLogDir != "" {
		logPath = filepath.Join(*flagLogDir, name+"-"+time.Now().Format("20060102T150405.000")+".log")
	}
	p := &proc{b: b, name: name, logPath: logPath, done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		b.Fatalf("%s: log file: %v", name, err)
	}
	p.lw = &logWriter{f: f, fields: map[string]map[string]any{}, times: map[string][]time.Time{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = benchEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.lw, p.lw
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		b.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	b.Cleanup(func() {
		p.kill()
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
		if v, ok := p.lw.field(msg, field); ok {
			return fmt.Sprint(v)
		}
		select {
		case <-p.done:
			p.b.Fatalf("%s exited before logging %q:\n%s", p.name, msg, tailFile(p.logPath, 30))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.b.Fatalf("%s did not log %q within %v:\n%s", p.name, msg, timeout, tailFile(p.logPath, 30))
		}
	}
}

// field returns a watched message's field if it was logged.
func (p *proc) field(msg, name string) (any, bool) { return p.lw.field(msg, name) }

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the exit (SIGKILL after stopTimeout).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
	}
}

// kill sends SIGKILL and waits for the exit. It is idempotent.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.b.Logf("%s: kill: %v", p.name, err)
	}
	<-p.done
}

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

// logWriter appends a process's output to a file and keeps the fields of the first JSON line of each message.
type logWriter struct {
	mu     sync.Mutex
	f      *os.File
	buf    []byte
	fields map[string]map[string]any
	times  map[string][]time.Time // every occurrence of each message, by its "ts" field
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.f.Write(p); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := w.buf[:i]
		if bytes.HasPrefix(line, []byte("{")) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil {
				if msg, ok := m["msg"].(string); ok {
					if _, seen := w.fields[msg]; !seen {
						w.fields[msg] = m
					}
					if ts, ok := m["ts"].(string); ok {
						if t, err := time.Parse(logTimeLayout, ts); err == nil {
							w.times[msg] = append(w.times[msg], t)
						}
					}
				}
			}
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 1<<20 { // a line that long is not one we watch
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// logTimeLayout is zap's ISO 8601 time encoding, the binaries' "ts" field.
const logTimeLayout = "2006-01-02T15:04:05.000Z0700"

// logged returns the times at which the process logged msg, oldest first.
func (p *proc) logged(msg string) []time.Time {
	p.lw.mu.Lock()
	defer p.lw.mu.Unlock()
	return slices.Clone(p.lw.times[msg])
}

func (w *logWriter) field(msg, name string) (any, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.fields[msg]
	if !ok {
		return nil, false
	}
	v, ok := m[name]
	return v, ok
}

// tailFile returns the last n lines of a file, for failure messages.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
