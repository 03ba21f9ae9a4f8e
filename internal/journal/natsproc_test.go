package journal

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/binaries"
)

// natsServerEnv names a prebuilt nats-server binary to use instead of building one.
const natsServerEnv = "REPLIKV_NATS_SERVER"

var natsBin struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if natsBin.dir != "" {
		_ = os.RemoveAll(natsBin.dir)
	}
	os.Exit(code)
}

// natsServerBinary returns the path of a nats-server binary: $REPLIKV_NATS_SERVER if set, else one built from the
// module's nats-server version, once per test binary run (about 70 s on a cold module cache, seconds on a warm one).
func natsServerBinary(t testing.TB) string {
	t.Helper()
	natsBin.once.Do(func() {
		if p := os.Getenv(natsServerEnv); p != "" {
			natsBin.path = p
			return
		}
		if natsBin.dir, natsBin.err = os.MkdirTemp("", "replikv-nats-server-"); natsBin.err != nil {
			return
		}
		natsBin.path, natsBin.err = binaries.BuildNATS(natsBin.dir)
	})
	if natsBin.err != nil {
		t.Fatal(natsBin.err)
	}
	return natsBin.path
}

// natsProc is a nats-server run as a separate process, with JetStream and user/password auth, restartable on the
// same port and store with another password.
type natsProc struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
	// conf, when not empty, is a configuration file the server runs with instead of the command line's user and
	// password (see startNATSProcConf); env is added to its environment.
	conf string
	env  []string
}

// startNATSProc starts a server on a free port with user u and password pass; it is killed at cleanup.
func startNATSProc(t testing.TB, pass string) *natsProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := &natsProc{t: t, bin: natsServerBinary(t), port: port, dir: t.TempDir()}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("nats-server output (tail):\n%s", tail(p.log.Bytes(), 4000))
		}
	})
	p.start(pass)
	return p
}

// startNATSProcConf starts a server on a free port with JetStream and the configuration conf added to its
// configuration file (listen address and store directory are set), with env added to its environment; it is killed
// at cleanup.
func startNATSProcConf(t testing.TB, conf string, env ...string) *natsProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := &natsProc{t: t, bin: natsServerBinary(t), port: port, dir: t.TempDir(), env: env}
	p.conf = filepath.Join(t.TempDir(), "nats-server.conf")
	full := fmt.Sprintf("listen: %q\njetstream {\n  store_dir: %q\n}\n%s", p.addr(), p.dir, conf)
	if err := os.WriteFile(p.conf, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("nats-server output (tail):\n%s", tail(p.log.Bytes(), 4000))
		}
	})
	p.start("")
	return p
}

// start runs the server with password pass and waits until it accepts TCP connections.
func (p *natsProc) start(pass string) {
	p.t.Helper()
	if p.log == nil {
		p.log = &bytes.Buffer{} // one log across restarts; only one process writes it at a time
	}
	if p.conf != "" {
		p.cmd = exec.Command(p.bin, "-c", p.conf)
		p.cmd.Env = append(os.Environ(), p.env...)
	} else {
		p.cmd = exec.Command(p.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(p.port), "--user", "u", "--pass", pass,
			"-js", "-sd", p.dir)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start nats-server: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	waitFor(p.t, 30*time.Second, "nats-server listening", func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("nats-server exited at start:\n%s", tail(p.log.Bytes(), 4000))
		default:
		}
		conn, err := net.DialTimeout("tcp", p.addr(), 100*time.Millisecond)
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	})
}

// stop shuts the server down (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. Idempotent.
func (p *natsProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// restart stops the server and starts it again on the same port and store with password pass.
func (p *natsProc) restart(pass string) {
	p.t.Helper()
	p.stop()
	p.start(pass)
}

func (p *natsProc) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// url is the client URL with user u and password pass.
func (p *natsProc) url(pass string) string { return "nats://u:" + pass + "@" + p.addr() }

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
