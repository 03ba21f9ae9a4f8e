// Package versitygw runs a real versitygw S3 gateway (posix backend) for tests across the repository. It is a
// non-test package so every package's tests can share it; nothing outside tests should import it.
//
// The binary is found via $REPLIKV_VERSITYGW, then PATH, then $(go env GOPATH)/bin/versitygw. A missing binary fails
// the test with the install command: S3 tests never skip silently.
package versitygw

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/procrun"
	"github.com/replikv/replikv/internal/testutil/freeport"
)

// InstallCommand is what a developer runs when the binary is missing.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

const (
	accessKey = "replikvtest"
	secretKey = "replikvtestsecret"

	// readyTimeout bounds how long Start waits for the gateway to answer HTTP.
	readyTimeout = 15 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL.
	stopTimeout = 5 * time.Second
	// startAttempts covers the small race between picking a free port and the gateway binding it.
	startAttempts = 3
)

// Server is one running versitygw process. Endpoint, AccessKey, SecretKey and Dir never change, also across Restart.
// Stop and Restart must be called from one goroutine at a time (the test's).
type Server struct {
	// Endpoint is the gateway's address, 127.0.0.1:port (plain HTTP).
	Endpoint string
	// AccessKey and SecretKey are the root credentials the gateway accepts.
	AccessKey, SecretKey string
	// Dir is the posix backend's root: each bucket is a directory under it, each object a file.
	Dir string

	bin     string
	logPath string

	mu   sync.Mutex
	proc *procrun.Process // nil while stopped
}

// Start runs a real versitygw on a free loopback port with a fresh temporary directory, waits until it answers HTTP,
// and stops it (SIGTERM, then SIGKILL) in t.Cleanup. A missing binary or a gateway that does not come up fails the
// test with t.Fatalf.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("versitygw: %v; install it with: %s (or set REPLIKV_VERSITYGW to its path)", err, InstallCommand)
	}
	base := t.TempDir()
	s := &Server{
		AccessKey: accessKey,
		SecretKey: secretKey,
		Dir:       filepath.Join(base, "data"),
		bin:       bin,
		logPath:   filepath.Join(base, "versitygw.log"),
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	t.Cleanup(s.Stop)

	var lastErr error
	for range startAttempts {
		port, err := freeport.Get()
		if err != nil {
			t.Fatalf("versitygw: %v", err)
		}
		s.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("versitygw: %v\n%s", lastErr, s.logTail())
	return nil
}

// Stop terminates the gateway (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. Objects stay in
// Dir. Stop is idempotent; clients see connection errors until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop(stopTimeout)
	}
}

// Restart starts the gateway again on the same port and directory after Stop (it stops a running one first), and
// waits until it answers. Failure to come back fails the test.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		// The port may still be held briefly by the old process's sockets: retry until the deadline.
		if time.Now().After(deadline) {
			t.Fatalf("versitygw: restart: %v\n%s", err, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start launches the process and waits until it answers HTTP or exits.
func (s *Server) start() error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(s.bin, "--quiet", "--port", s.Endpoint, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	p, err := procrun.Start(cmd, logFile) // closes logFile
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	if err := waitReady(s.Endpoint, p.Done()); err != nil {
		s.Stop()
		if perr := p.Err(); perr != nil {
			return fmt.Errorf("%w (process: %v)", err, perr)
		}
		return err
	}
	return nil
}

// waitReady polls the endpoint until it answers any HTTP response, the process exits, or readyTimeout passes.
func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get("http://" + endpoint + "/")
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("gateway on %s exited before answering", endpoint)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway on %s did not answer within %s: %w", endpoint, readyTimeout, err)
		}
	}
}

// logTail returns the end of the gateway's output for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "versitygw output:\n" + string(bytes.TrimSpace(b))
}

// findBinary looks in $REPLIKV_VERSITYGW, PATH, then $(go env GOPATH)/bin.
func findBinary() (string, error) {
	if p := os.Getenv("REPLIKV_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("REPLIKV_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath, err := goPath()
	if err != nil {
		return "", err
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("binary not found in $REPLIKV_VERSITYGW, PATH or %s", p)
	}
	return p, nil
}

// goPath asks the go tool, falling back to the default $HOME/go.
func goPath() (string, error) {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		// GOPATH may hold several entries; binaries go to the first.
		if first, _, _ := strings.Cut(strings.TrimSpace(string(out)), string(os.PathListSeparator)); first != "" {
			return first, nil
		}
	}
	home, herr := os.UserHomeDir()
	if herr != nil {
		return "", errors.Join(err, herr)
	}
	return filepath.Join(home, "go"), nil
}
