//go:build e2e

package tests

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// failoverKills is how many leaders TestFailover_KillLeaderRepeatedly kills (make bench-failover asks for more).
var failoverKills = flag.Int("failover-kills", 5, "leader kills of TestFailover_KillLeaderRepeatedly")

// TestFailover_KillLeaderRepeatedly runs a leader and two followers with --failover auto on a NATS server of the
// test process, and 5 times in a row (-failover-kills) SIGKILLs whichever node leads under a write load of 8 clients that write
// through a follower (307 to the leader). Each time a surviving follower takes over, and writes through the follower
// succeed again within the lease TTL + 2 s; no acknowledged write is lost; the killed node, restarted on its data
// dir (the leader binary too), follows the new leader and converges: every node's digest is the same at the end of
// each round.
func TestFailover_KillLeaderRepeatedly(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.useTestNATS()
	const ttl = 2 * time.Second
	ttlFlag := "--lease-ttl=" + ttl.String()
	nodes := []*proc{c.startLeader("--nats-url="+c.natsURL, ttlFlag)}
	for _, id := range []string{"fa", "fb"} {
		nodes = append(nodes, c.startFollower(id, "--failover=auto", ttlFlag))
	}
	for _, n := range nodes[1:] {
		n.api().waitReady(t)
	}
	follow := &http.Client{Timeout: 30 * time.Second} // follows the 307 to the leader, re-sending the body
	var outages []time.Duration
	for round := range *failoverKills {
		lead := leaderOf(t, nodes)
		via := nodes[(lead+1)%len(nodes)]
		viaClient := &client{base: via.URL(), hc: follow}
		ld := startLoad(t, viaClient, loadOpts{workers: 8, keys: 16, prefix: fmt.Sprintf("load%d/", round)})
		ld.waitAcked(t, 200)

		victim := nodes[lead]
		victim.kill()
		killed := time.Now()
		probe := []byte(fmt.Sprintf("round %d", round))
		eventually(t, 30*time.Second, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			r, err := viaClient.do(ctx, http.MethodPut, kvPath(fmt.Sprintf("probe/%d", round)), probe, nil)
			if err != nil {
				return false, err.Error()
			}
			return r.Code == http.StatusOK, "probe write through " + via.name + ": " + r.String()
		})
		outage := time.Since(killed)
		outages = append(outages, outage)
		newLead := leaderOf(t, nodes)
		t.Logf("round %d: killed %s (the leader); %s leads; writes through %s again after %v", round, victim.name,
			nodes[newLead].name, via.name, outage.Round(time.Millisecond))
		if outage > ttl+2*time.Second {
			t.Errorf("round %d: writes paused %v after the leader was killed, want at most the lease TTL + 2 s", round,
				outage)
		}
		ld.waitAcked(t, ld.acked.Load()+200) // the load goes on through the new leader

		// The killed node comes back on its data dir and follows the new leader (the leader binary too).
		victim.restart(false)
		lg := ld.stop()
		verifyLoad(t, nodes[newLead].api(), lg)
		victim.api().waitReady(t)
		eventually(t, 60*time.Second, func() (bool, string) {
			var ds []string
			for _, n := range nodes {
				d := n.api().digest(t)
				ds = append(ds, fmt.Sprintf("%s %d %s", n.name, d.Seq, d.Digest))
			}
			same := true
			for _, n := range nodes[1:] {
				same = same && bytes.Equal([]byte(n.api().digest(t).Digest), []byte(nodes[0].api().digest(t).Digest))
			}
			return same, fmt.Sprint(ds)
		})
	}
	slices.Sort(outages)
	t.Logf("write outage at a leader kill (lease TTL %v), over %d kills: median %v, max %v", ttl, len(outages),
		outages[len(outages)/2].Round(time.Millisecond), outages[len(outages)-1].Round(time.Millisecond))
}

// leaderOf returns the index of the node that leads and is ready, waiting for one.
func leaderOf(t *testing.T, nodes []*proc) int {
	t.Helper()
	found := -1
	eventually(t, 30*time.Second, func() (bool, string) {
		var seen []string
		for i, n := range nodes {
			if !n.running() {
				continue
			}
			st := n.api().status(t)
			if st.Role == "leader" && st.State == "ready" {
				found = i
				return true, ""
			}
			seen = append(seen, n.name+": "+st.Role+" "+st.State)
		}
		return false, fmt.Sprint("no ready leader: ", seen)
	})
	return found
}
