package node

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
)

// A ready follower measures its replication lag per applied entry: from the log server's storing it to the follower
// having applied it. Writes at a steady pace show up in replikv_replication_lag_seconds, with a plausible mean.
func TestFollower_ReplicationLagMetric(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL())
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	before := scrape(t, furl, "replikv_replication_lag_seconds_count")
	for i := range 50 {
		put(t, lurl, fmt.Sprintf("lag/%d", i), "v")
	}
	eventually(t, 10*time.Second, func() string {
		if n := scrape(t, furl, "replikv_replication_lag_seconds_count") - before; n < 50 {
			return fmt.Sprintf("%v entries observed, want 50", n)
		}
		return ""
	})
	n := scrape(t, furl, "replikv_replication_lag_seconds_count")
	if mean := scrape(t, furl, "replikv_replication_lag_seconds_sum") / n; mean <= 0 || mean > 1 {
		t.Fatalf("mean replication lag %vs over %v entries, want within (0, 1 s] on one host", mean, n)
	}
	if n := scrape(t, lurl, "replikv_replication_lag_seconds_count"); n != 0 {
		t.Fatalf("the leader observed %v replication lags", n)
	}
}

// Only a ready follower observes, only entries it applied, and a clock behind the server's counts as no lag.
func TestFollower_ObserveReplicationLag(t *testing.T) {
	f := &Follower{metrics: metrics.New("follower"), log: zap.NewNop(), local: &local{}}
	now := time.Now()
	batch := []journal.Msg{
		{Seq: 1, Stored: now.Add(-20 * time.Millisecond)},
		{Seq: 2, Stored: now.Add(time.Second)},       // the server's clock ahead of this host's
		{Seq: 3},                                     // no time known
		{Seq: 4, Stored: now.Add(-time.Millisecond)}, // not applied
	}
	f.state.set(stateCatchingUp, nil)
	f.observeReplicationLag(batch, 3, now)
	if got, _ := replicationLag(t, f.metrics); got != 0 {
		t.Fatalf("a catching-up follower observed %d lags", got)
	}
	f.state.set(stateReady, nil)
	f.observeReplicationLag(batch, 3, now)
	got, sum := replicationLag(t, f.metrics)
	if got != 2 {
		t.Fatalf("observed %d lags, want 2 (seq 1 and 2)", got)
	}
	if sum < 0.019 || sum > 0.021 {
		t.Fatalf("sum of lags %v s, want 0.02 (20 ms, and 0 for the clock ahead)", sum)
	}
}

// replicationLag returns the sample count and sum of m's replikv_replication_lag_seconds.
func replicationLag(t *testing.T, m *metrics.Metrics) (uint64, float64) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "replikv_replication_lag_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatal("no replikv_replication_lag_seconds")
	return 0, 0
}
