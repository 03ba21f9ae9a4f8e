//go:build e2e

package tests

import (
	"testing"
	"time"
)

// promptly is how long a graceful shutdown may take.
const promptly = 5 * time.Second

// TestShutdown_SIGTERM: both binaries exit 0 promptly on SIGTERM, under load and whichever stops first.
func TestShutdown_SIGTERM(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		leaderFirst    bool
		followerSynced bool // wait for the follower to be ready before stopping
	}{
		{"FollowerFirst", false, true},
		{"LeaderFirst", true, true},
		{"FollowerCatchingUp", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, clusterOpts{})
			ld := c.startLeader()
			lg := startLoad(t, ld.api(), loadOpts{workers: 2})
			lg.waitAcked(t, 300)
			f := c.startFollower("f1")
			if tt.followerSynced {
				f.api().waitReady(t)
			}
			lg.waitAcked(t, lg.acked.Load()+200)
			order := []*proc{f, ld}
			if tt.leaderFirst {
				order = []*proc{ld, f}
			}
			for _, p := range order {
				if took := p.stop(); took > promptly {
					t.Errorf("%s: SIGTERM exit took %v, want at most %v", p.name, took, promptly)
				}
			}
			lg.stop()
		})
	}
}
