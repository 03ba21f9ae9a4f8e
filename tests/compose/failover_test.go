//go:build compose

package compose

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// composeLeaseTTL is the lease TTL of TestStack_Failover's nodes.
const composeLeaseTTL = 4 * time.Second

// TestStack_Failover runs a stack whose two followers take over by themselves (FOLLOWER_FAILOVER=auto), kills the
// leader container under a write load (compose kill leader), and requires a follower container to lead and take
// writes within the lease TTL + 2 s. Every acknowledged write must be on the new leader and the other follower, which
// converges with it; the old leader, started again, finds the lease taken and follows the new leader, redirecting
// writers to it; the load then goes on through the new leader.
func TestStack_Failover(t *testing.T) {
	requireStack(t)
	sc := startScenario(t, "SNAPSHOT_INTERVAL=0", "FOLLOWER_FAILOVER=auto", "LEASE_TTL="+composeLeaseTTL.String())
	t.Logf("project %s, leader on %s", sc.s.project, sc.s.leaderURL())

	sc.composeCmd(t, "up", "-d", "--scale", "follower=2")
	sc.waitLeaderReady(t, 3*time.Minute)
	ids := sc.containers(t, "follower", 2)
	urls := map[string]string{}
	for _, id := range ids {
		sc.waitFollowerReady(t, id, 3*time.Minute)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		u, err := sc.followerURL(ctx, id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		urls[id] = u
	}
	sc.startLoad()
	sc.waitAcks(t, 300, time.Minute)

	sc.composeCmd(t, "kill", "leader")
	killed := time.Now()
	newID, outage := sc.awaitTakeover(t, urls, killed, "marker/failover")
	t.Logf("follower %s leads and took a write %v after the leader was killed (lease TTL %v)", newID,
		outage.Round(time.Millisecond), composeLeaseTTL)
	if outage > composeLeaseTTL+2*time.Second {
		t.Errorf("writes paused %v after the leader was killed, want at most the lease TTL + 2 s", outage)
	}
	sc.stopLoad(t)
	sc.leader = urls[newID]
	seq := sc.verifyLeader(t)
	for _, id := range ids {
		if id != newID {
			sc.verifyFollower(t, id, seq)
		}
	}
	sc.converge(t, 2*time.Minute)

	// The old leader comes back: the lease is the follower's, so it follows it and sends writers to it.
	sc.composeCmd(t, "start", "leader")
	poll(t, 2*time.Minute, "the old leader follows", func(ctx context.Context) error {
		st, err := sc.c.status(ctx, sc.s.leaderURL())
		if err != nil {
			return err
		}
		if st.Role == "leader" {
			return permanent(fmt.Errorf("the old leader leads again while %s holds the lease: %+v", newID, st))
		}
		if st.State != "ready" {
			return fmt.Errorf("old leader: role %s, state %s, error %q", st.Role, st.State, st.Error)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	code, hdr, body, err := sc.c.do(ctx, http.MethodPut, keyURL(sc.s.leaderURL(), "marker/old-leader", nil), []byte("x"))
	cancel()
	if err != nil || code != http.StatusTemporaryRedirect || hdr.Get("Location") == "" {
		t.Fatalf("write on the old leader: %d %q (%v), want 307 to the new leader", code, body, err)
	}

	sc.startLoad()
	sc.waitAcks(t, 200, time.Minute)
	sc.stopLoad(t)
	sc.verifyLeader(t)
	sc.converge(t, 2*time.Minute)
}

// awaitTakeover polls the followers at urls (by container id) until one leads and answers a write of key with 200,
// and returns it and the time since killed.
func (sc *scenario) awaitTakeover(t *testing.T, urls map[string]string, killed time.Time, key string) (string,
	time.Duration) {
	t.Helper()
	deadline := killed.Add(time.Minute)
	var last []string
	for time.Now().Before(deadline) {
		last = last[:0]
		for id, u := range urls {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			st, err := sc.c.status(ctx, u)
			if err == nil && st.Role == "leader" && st.State == "ready" {
				_, err = sc.c.put(ctx, u, key, []byte(id))
				if err == nil {
					cancel()
					return id, time.Since(killed)
				}
			}
			cancel()
			last = append(last, fmt.Sprintf("%s: %s %s %v", id, st.Role, st.State, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no follower took over within a minute of the leader's kill: %v", last)
	return "", 0
}
