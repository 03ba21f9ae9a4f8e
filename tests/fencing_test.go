//go:build e2e

package tests

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLeader_SecondLeaderFenced: a second leader on the same stream (its own data dir, the first leader's NATS) never
// accepts a write: it follows the first one (status role follower) and redirects writers to it (307). The first
// leader keeps taking writes and its data stays intact, as an independent follower confirms.
func TestLeader_SecondLeaderFenced(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	a := c.startLeader()
	ac := a.api()
	lg := startLoad(t, ac, loadOpts{})
	lg.waitAcked(t, 500)

	b := c.newLeader("--nats-url=" + c.natsURL)
	c.runLeader(b) // not startLeader: it never leads
	bc := b.api()
	following, redirected := false, false
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline) && !(following && redirected); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := bc.do(ctx, http.MethodPut, kvPath(fmt.Sprintf("intruder/%d", i)), []byte("overwrite"), nil)
		cancel()
		if err != nil {
			t.Fatalf("second leader: %v", err)
		}
		switch {
		case r.Code >= 200 && r.Code < 300:
			t.Fatalf("second leader accepted a write: %s", r)
		case r.Code == http.StatusTemporaryRedirect && strings.HasPrefix(r.Header.Get("Location"), a.URL()):
			redirected = true
		default:
			t.Logf("second leader answered a write with %s", r)
		}
		if st := bc.status(t); st.Role == "follower" && st.State == "ready" {
			following = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !following || !redirected {
		t.Fatalf("second leader: following %v, redirecting writes to the first %v: %+v", following, redirected,
			bc.status(t))
	}
	before := lg.acked.Load()
	lg.waitAcked(t, before+500) // the first leader keeps taking writes
	b.stop()

	f := c.startFollower("witness")
	fc := f.api()
	ledger := lg.stop()
	ledger.requireDefinite(t)
	if st := ac.status(t); st.State != "ready" {
		t.Fatalf("first leader status %+v, want ready", st)
	}
	fc.waitReady(t)
	waitDigestEqual(t, ac, fc)
	verifyLoad(t, ac, ledger)
	for _, n := range []*client{ac, fc} {
		items, _ := n.list(t, "intruder/")
		if len(items) != 0 {
			t.Fatalf("%s holds %d keys the fenced leader was asked to write", n.base, len(items))
		}
	}
}
