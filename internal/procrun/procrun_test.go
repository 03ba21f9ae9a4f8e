package procrun

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start runs a shell script under Start with its output in a temporary file, and kills it at cleanup.
func start(t *testing.T, script string) (*Process, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(exec.Command("sh", "-c", script), f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p, path
}

func TestProcess_LogAndExitCode(t *testing.T) {
	p, path := start(t, `echo '{"msg":"http listening","addr":"127.0.0.1:1"}'; echo plain text >&2; exit 3`)
	if !p.Wait(10 * time.Second) {
		t.Fatal("no exit")
	}
	if got := p.Log().String("http listening", "addr"); got != "127.0.0.1:1" {
		t.Fatalf("indexed addr = %q", got)
	}
	if got := p.ExitCode(); got != 3 {
		t.Fatalf("exit code = %d, want 3", got)
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) {
		t.Fatalf("Err = %v, want an *exec.ExitError", p.Err())
	}
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "plain text") || !strings.Contains(string(out), `"addr"`) {
		t.Fatalf("log file lacks the output: %q", out)
	}
}

func TestProcess_StopGraceful(t *testing.T) {
	p, _ := start(t, `trap 'exit 0' TERM; while :; do sleep 0.05; done`)
	if p.Exited() || p.ExitCode() != -1 || p.Err() != nil {
		t.Fatalf("running process: exited %v, code %d, err %v", p.Exited(), p.ExitCode(), p.Err())
	}
	// Give the shell time to install its trap.
	time.Sleep(200 * time.Millisecond)
	if !p.Stop(10 * time.Second) {
		t.Fatal("Stop: SIGTERM did not end a process that exits on it")
	}
	if got := p.ExitCode(); got != 0 {
		t.Fatalf("exit code = %d, want 0", got)
	}
	if !p.Stop(time.Millisecond) {
		t.Fatal("Stop of an exited process reports a kill")
	}
}

func TestProcess_StopKillsAfterGrace(t *testing.T) {
	p, _ := start(t, `trap '' TERM; exec sleep 60`)
	time.Sleep(200 * time.Millisecond)
	began := time.Now()
	if p.Stop(300 * time.Millisecond) {
		t.Fatal("Stop reports an exit within the grace period for a process that ignores SIGTERM")
	}
	if !p.Exited() || p.ExitCode() != -1 {
		t.Fatalf("after Stop: exited %v, code %d (want -1: killed)", p.Exited(), p.ExitCode())
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("Stop took %v", took)
	}
	p.Kill() // idempotent
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatalf("Signal to an exited process: %v", err)
	}
}

func TestProcess_OrphanHoldingOutput(t *testing.T) {
	// The shell exits at once, leaving a child that keeps the output pipe open: the exit must still be seen.
	old := outputGrace
	outputGrace = 200 * time.Millisecond
	t.Cleanup(func() { outputGrace = old })
	p, _ := start(t, `sleep 5 & exit 0`)
	if !p.Wait(4 * time.Second) {
		t.Fatal("the exit of a process whose child holds its output was not seen")
	}
}

func TestStart_Errors(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "out.log"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(exec.Command(filepath.Join(dir, "no-such-binary")), f); err == nil {
		t.Fatal("Start of a missing binary: no error")
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the output file was not closed after a failed start: %v", err)
	}
	g, err := os.Create(filepath.Join(dir, "out2.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	cmd.Stdout = os.Stdout
	if _, err := Start(cmd, g); err == nil {
		t.Fatal("Start of a command with its output set: no error")
	}
}

// Pause returns only once the process is stopped: it no longer runs until SIGCONT.
func TestProcess_Pause(t *testing.T) {
	p, out := start(t, `while :; do echo tick; sleep 0.01; done`)
	if err := p.Pause(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	stopped, err := threadsStopped(p.Pid())
	if err != nil || !stopped {
		t.Fatalf("after Pause: stopped %v, %v", stopped, err)
	}
	time.Sleep(50 * time.Millisecond) // output already in the pipe reaches the file
	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // ten ticks, were it running
	if after, _ := os.ReadFile(out); len(after) != len(before) {
		t.Fatalf("the paused process wrote %d bytes", len(after)-len(before))
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for stopped, _ := threadsStopped(p.Pid()); stopped; stopped, _ = threadsStopped(p.Pid()) {
		if time.Now().After(deadline) {
			t.Fatal("still stopped after SIGCONT")
		}
		time.Sleep(time.Millisecond)
	}
	p.Kill()
	if err := p.Pause(time.Second); err == nil || !strings.Contains(err.Error(), "threads of") {
		t.Fatalf("Pause of an exited process = %v, want an error about its threads", err)
	}
}
