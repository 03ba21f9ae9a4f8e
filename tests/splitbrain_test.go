//go:build e2e

package tests

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLeader_FrozenLeaderSplitBrain freezes the leader (SIGSTOP) past its lease while a standby follows: the standby
// takes over and takes writes. Woken up (SIGCONT), the old leader must not get a single write into the log, and the
// requests it took while frozen, a write and a read, get no stale answer: the write is refused, and the read is not
// answered with the value the new leader has overwritten. The old leader then follows the new one (307 for writes),
// and the log holds exactly what the new leader acknowledged, as a follower that joins afterwards confirms. When the
// new leader stops, the old one leads again, with the new leader's writes.
func TestLeader_FrozenLeaderSplitBrain(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	// The log on a server of the test process: a frozen leader would freeze its embedded server too.
	c.useTestNATS()
	const ttl = "--lease-ttl=2s"
	a := c.startLeader("--nats-url="+c.natsURL, ttl)
	ac := a.api()
	b := c.newLeader("--nats-url="+c.natsURL, ttl)
	c.runLeader(b) // a standby: it follows while a holds the lease
	bc := b.api()
	waitRole(t, bc, "follower", 20*time.Second)
	ac.must(t, http.MethodPut, kvPath("k"), []byte("before"), nil, http.StatusOK)

	proc := a.current()
	t.Cleanup(func() { _ = proc.Signal(syscall.SIGCONT) }) // a failed test must not leave it stopped
	// Only once it is stopped: until then it may still take the requests below.
	if err := proc.Pause(10 * time.Second); err != nil {
		t.Fatal(err)
	}
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

	waitRole(t, bc, "leader", 30*time.Second)
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
	if r.r.Code == http.StatusOK && string(r.r.Body) != "after" {
		t.Fatalf("the old leader answered a read with %q after another leader overwrote it", r.r.Body)
	}
	t.Logf("read sent to the frozen leader: %s", r.r)

	// From now on the old leader takes no write: it lost the lease, follows the new leader and sends writers to it.
	eventually(t, 20*time.Second, func() (bool, string) {
		r := ac.call(t, http.MethodPut, kvPath("late"), []byte("x"), nil)
		if r.Code == http.StatusOK {
			t.Fatalf("the old leader acknowledged a write: %s", r)
		}
		return r.Code == http.StatusTemporaryRedirect && strings.HasPrefix(r.Header.Get("Location"), b.URL()),
			r.String()
	})
	if st := ac.status(t); st.Role != "follower" {
		t.Fatalf("the old leader's role %q, want follower", st.Role)
	}
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

	// The old leader followed: when the new one stops, it takes the lease back, with every write of the new one.
	b.stop()
	waitRole(t, ac, "leader", 30*time.Second)
	if r := ac.must(t, http.MethodGet, kvPath("k2"), nil, nil, http.StatusOK); string(r.Body) != "v" {
		t.Fatalf("k2 = %q on the old leader leading again, want \"v\"", r.Body)
	}
	ac.must(t, http.MethodPut, kvPath("k3"), []byte("v"), nil, http.StatusOK)
	waitDigestEqual(t, ac, fc)
}

// waitRole waits until the node of c is ready in role ("leader": it leads and takes writes; "follower": it follows
// within its ready lag).
func waitRole(t *testing.T, c *client, role string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() (bool, string) {
		st := c.status(t)
		return st.Role == role && st.State == "ready", c.base + ": " + st.Role + " " + st.State + " " + st.Error
	})
}
