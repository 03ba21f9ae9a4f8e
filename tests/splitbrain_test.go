//go:build e2e

package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startNATS starts a JetStream server in the test process, on a free loopback port, for leaders that must not host
// the log themselves (a frozen leader would freeze its embedded server too). It stops at cleanup.
func startNATS(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv.ClientURL()
}

// TestLeader_FrozenLeaderSplitBrain freezes the leader (SIGSTOP) past its lease while a standby waits: the standby
// takes over and takes writes. Woken up (SIGCONT), the old leader must not get a single write into the log, and the
// requests it took while frozen, a write and a read, get an error: the write is refused, and the read is not answered
// with the value the new leader has overwritten. The old leader then refuses writes (503 not_leader), and the log
// holds exactly what the new leader acknowledged, as a follower that joins afterwards confirms. The old leader stands
// by meanwhile, and leads again, with the new leader's writes, once the new one stops.
func TestLeader_FrozenLeaderSplitBrain(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.natsURL = startNATS(t)
	const ttl = "--lease-ttl=2s"
	a := c.startLeader("--nats-url="+c.natsURL, ttl)
	ac := a.api()
	b := c.newLeader("--nats-url="+c.natsURL, ttl)
	c.runLeader(b) // a standby: degraded while a holds the lease
	bc := b.api()
	eventually(t, 20*time.Second, func() (bool, string) {
		st := bc.status(t)
		return st.State == "degraded", "standby state " + st.State
	})
	ac.must(t, http.MethodPut, kvPath("k"), []byte("before"), nil, http.StatusOK)

	proc := a.current()
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Signal(syscall.SIGCONT) }) // a failed test must not leave it stopped
	waitStopped(t, proc.Pid())
	// Requests to the frozen leader wait in its listen backlog until it runs again.
	type answer struct {
		r   *response
		err error
	}
	frozenWrite, frozenRead := make(chan answer, 1), make(chan answer, 1)
	ask := func(ch chan<- answer, method, path string, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r, err := ac.do(ctx, method, path, body, nil)
		ch <- answer{r, err}
	}
	go ask(frozenWrite, http.MethodPut, kvPath("frozen"), []byte("x"))
	go ask(frozenRead, http.MethodGet, kvPath("k")+"?timeout=3s", nil)

	bc.waitReady(t)
	bc.must(t, http.MethodPut, kvPath("k"), []byte("after"), nil, http.StatusOK)
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	w := <-frozenWrite
	if w.err != nil {
		t.Fatalf("write sent to the frozen leader: %v", w.err)
	}
	if w.r.Code == http.StatusOK {
		t.Fatalf("the old leader acknowledged a write after another leader took over: %s", w.r)
	}
	t.Logf("write sent to the frozen leader: %s", w.r)
	r := <-frozenRead
	if r.err != nil {
		t.Fatalf("read sent to the frozen leader: %v", r.err)
	}
	if r.r.Code == http.StatusOK {
		t.Fatalf("the old leader answered a read with %q after another leader overwrote it", r.r.Body)
	}
	t.Logf("read sent to the frozen leader: %s", r.r)

	// From now on the old leader refuses writes: it lost the lease.
	eventually(t, 20*time.Second, func() (bool, string) {
		r := ac.call(t, http.MethodPut, kvPath("late"), []byte("x"), nil)
		if r.Code == http.StatusOK {
			t.Fatalf("the old leader acknowledged a write: %s", r)
		}
		return r.Code == http.StatusServiceUnavailable && decode[errorDoc](t, r).Code == "not_leader", r.String()
	})
	bc.must(t, http.MethodPut, kvPath("k2"), []byte("v"), nil, http.StatusOK)

	f := c.startFollower("witness")
	fc := f.api()
	fc.waitReady(t)
	waitDigestEqual(t, bc, fc)
	for _, key := range []string{"frozen", "late"} {
		if r := fc.call(t, http.MethodGet, kvPath(key), nil, nil); r.Code != http.StatusNotFound {
			t.Fatalf("the log holds %q, written to the old leader: %s", key, r)
		}
	}
	if r := fc.must(t, http.MethodGet, kvPath("k"), nil, nil, http.StatusOK); string(r.Body) != "after" {
		t.Fatalf("k = %q on the follower, want the new leader's \"after\"", r.Body)
	}

	// The old leader stood by: when the new one stops, it takes the lease back, with every write of the new one.
	b.stop()
	ac.waitReady(t)
	if r := ac.must(t, http.MethodGet, kvPath("k2"), nil, nil, http.StatusOK); string(r.Body) != "v" {
		t.Fatalf("k2 = %q on the old leader leading again, want \"v\"", r.Body)
	}
	ac.must(t, http.MethodPut, kvPath("k3"), []byte("v"), nil, http.StatusOK)
	waitDigestEqual(t, ac, fc)
}

// waitStopped waits until every thread of process pid is stopped (state T in /proc). kill returns before a stop
// signal takes effect: the process stops only once one of its threads handles the signal, and until then its other
// threads go on, serving requests sent meanwhile.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stopped, err := allThreadsStopped(pid)
		if err != nil {
			t.Fatal(err)
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped 10 s after SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// allThreadsStopped reports whether every thread of pid is in state T (stopped) or t (traced).
func allThreadsStopped(pid int) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("threads of %d: %w", pid, err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false, nil // a thread that ended meanwhile: look again
		}
		// "tid (comm) S ...": the state follows the last ')' (comm may hold any character).
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return false, fmt.Errorf("thread %s of %d: unexpected stat %q", task.Name(), pid, stat)
		}
		if state := stat[i+2]; state != 'T' && state != 't' {
			return false, nil
		}
	}
	return true, nil
}
