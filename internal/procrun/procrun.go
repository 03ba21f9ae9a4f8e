// Package procrun runs one child process for a harness (the end-to-end tests, the benchmarks, the demo, the S3 test
// server): its output goes to a log file through a proclog.Writer, a goroutine that the Process owns waits for its
// exit, and Stop and Kill end it and wait until it is gone.
//
// It is the one place where these harnesses start and stop processes, so that each of them stops what it started the
// same way: SIGTERM, a grace period, then SIGKILL, and never returns while the process still runs.
package procrun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/replikv/replikv/internal/proclog"
)

// outputGrace is how long after the process's exit its output is still copied, if something else holds the pipe.
// Tests shorten it.
var outputGrace = 5 * time.Second

// Process is one run of a started command. Its methods may be called from any goroutine.
type Process struct {
	cmd  *exec.Cmd
	log  *proclog.Writer
	done chan struct{} // closed once the process exited and its output was copied
	err  error         // cmd.Wait's result, read after done
}

// Start starts cmd with its stdout and stderr written to out (through a proclog.Writer, see Log). out is closed
// once the process has exited. cmd must not have Stdout or Stderr set. On error out is closed too.
func Start(cmd *exec.Cmd, out *os.File) (*Process, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		_ = out.Close()
		return nil, errors.New("procrun: the command's output is already set")
	}
	p := &Process{cmd: cmd, log: proclog.New(out), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if cmd.WaitDelay == 0 {
		// A child of the process that outlives it would hold the output pipe open, and the exit would never be
		// seen: stop copying its output this long after the process itself exited.
		cmd.WaitDelay = outputGrace
	}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("procrun: start %s: %w", cmd.Path, err)
	}
	go func() { // owned by p: Stop and Kill wait for it
		p.err = cmd.Wait() // also waits for the copying of the output
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// Log is the index of the process's JSON log lines (see proclog.Writer).
func (p *Process) Log() *proclog.Writer { return p.log }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit code of the exited process, -1 if a signal ended it or it still runs.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Err is the error of waiting for the exited process (an *exec.ExitError for a non-zero exit), nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig to the process; a process that has already exited is not an error.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("procrun: signal %v to %d: %w", sig, p.Pid(), err)
	}
	return nil
}

// Pause sends SIGSTOP and waits up to timeout until every thread of the process is stopped. kill returns before a
// stop signal takes effect: the process stops once one of its threads handles the signal, and until then the others
// run on (and may, say, answer a request sent meanwhile). Resume it with Signal(syscall.SIGCONT).
func (p *Process) Pause(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		stopped, err := threadsStopped(p.Pid())
		if err != nil || stopped {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("procrun: %d not stopped %v after SIGSTOP", p.Pid(), timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// threadsStopped reports whether every thread of pid is in state T (stopped) or t (traced), from /proc.
func threadsStopped(pid int) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("procrun: threads of %d: %w", pid, err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false, nil // a thread that ended meanwhile: look again
		}
		// "tid (comm) S ...": the state follows the last ')' (comm may hold any character).
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return false, fmt.Errorf("procrun: thread %s of %d: unexpected stat %q", task.Name(), pid, stat)
		}
		if state := stat[i+2]; state != 'T' && state != 't' {
			return false, nil
		}
	}
	return true, nil
}

// Wait waits up to timeout for the process to exit and reports whether it did.
func (p *Process) Wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Stop sends SIGTERM and waits up to grace for the exit, then sends SIGKILL and waits for that. It reports whether
// the process exited within grace (true also when it had already exited). It always returns after the exit.
func (p *Process) Stop(grace time.Duration) bool {
	if p.Exited() {
		return true
	}
	if err := p.Signal(syscall.SIGTERM); err == nil && p.Wait(grace) {
		return true
	}
	p.Kill()
	return false
}

// Kill sends SIGKILL and waits for the exit. It is idempotent.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill() // ErrProcessDone: it is exiting; either way done closes
	<-p.done
}
