package node_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/node"
	"github.com/replikv/replikv/internal/testutil/httpload"
	"github.com/replikv/replikv/internal/testutil/latency"
)

// BenchmarkFollower_ReplicationLag measures how far a ready follower trails the leader under a steady write load at
// half the leader's capacity. An in-process leader (embedded NATS) and an in-process follower at its defaults; each
// round
//   - measures the leader's capacity: 30,000 PUTs of distinct keys with 128-byte values from 64 keep-alive
//     connections, one request in flight each (as BenchmarkLeader_Ingest), then waits for the follower to be ready
//     and caught up;
//   - runs an open-loop load at half that rate for 5 s: 32 connections, each on a fixed schedule (a write that falls
//     behind it is sent at once), PUTs of distinct keys with 128-byte values;
//   - takes, for each write, the time from the client's reading of the leader's 200 answer to the follower having
//     applied the write's sequence (the answer's ETag): a goroutine waits on the follower's applied sequence
//     (Follower.WaitApplied, no polling) and stamps each sequence it sees applied. A write the follower applied
//     before the client had its answer counts as 0 (early_%).
//
// lag_p50_ms and lag_p99_ms are over every paced write of every round; goal lag_p99_ms <= 10. For comparison,
// metric_* are the follower's own replikv_replication_lag_seconds over the paced windows (from the log's server
// storing an entry to the follower having applied it; p50 and p99 as the upper bound of their histogram bucket).
//
//	go test -run '^$' -bench Follower_ReplicationLag -benchtime 3x ./internal/node
func BenchmarkFollower_ReplicationLag(b *testing.B) {
	const (
		satClients   = 64
		satWrites    = 30_000
		pacedWorkers = 32
		pacedFor     = 5 * time.Second
		valueSize    = 128
	)
	l := startBenchLeader(b)
	ctx := b.Context()
	f := startBenchFollower(b, l.NATSURL(), "bench-lag", true)
	b.Cleanup(func() {
		if err := f.Close(); err != nil {
			b.Errorf("close follower: %v", err)
		}
	})
	waitState(b, f.Status, api.StateReady, 60*time.Second)
	value := benchValue(valueSize)
	// saturate runs n writes from satClients fresh connections (none is left idle between phases, which a slow
	// machine could stretch past the server's idle timeout); the time counts from the first request.
	saturate := func(prefix string, n int) (time.Duration, error) {
		sat, err := newPutLoad(ctx, l.HTTPAddr(), satClients, value)
		if err != nil {
			return 0, err
		}
		defer sat.close()
		return sat.run(ctx, prefix, n)
	}
	if _, err := saturate("warmup-", 5_000); err != nil {
		b.Fatal(err)
	}

	var (
		tSat, tPaced time.Duration
		pacedWrites  int
		lags         []time.Duration
		early        int
		metricPooled lagHistogram
		rounds       int
		pacedOverMax float64
	)
	for b.Loop() {
		prefix := fmt.Sprintf("lag-%d-", rounds)
		d, err := saturate(prefix+"max-", satWrites)
		if err != nil {
			b.Fatal(err)
		}
		tSat += d
		maxRate := satWrites / d.Seconds()
		settle(b, l, f)
		before, err := scrapeLagHistogram(ctx, f.HTTPAddr())
		if err != nil {
			b.Fatal(err)
		}
		run, err := pacedLag(ctx, f, l.HTTPAddr(), pacedWorkers, maxRate/2, pacedFor, prefix+"paced-", value)
		if err != nil {
			b.Fatal(err)
		}
		after, err := scrapeLagHistogram(ctx, f.HTTPAddr())
		if err != nil {
			b.Fatal(err)
		}
		metricPooled = metricPooled.add(after.sub(before))
		tPaced += run.elapsed
		pacedWrites += len(run.lags)
		lags = append(lags, run.lags...)
		early += run.early
		pacedOverMax += float64(len(run.lags)) / run.elapsed.Seconds() / maxRate
		b.Logf("round %d: max %.0f writes/s, paced %.0f writes/s; lag p50 %v, p99 %v, max %v", rounds, maxRate,
			float64(len(run.lags))/run.elapsed.Seconds(), latency.Quantile(run.lags, 0.5), latency.Quantile(run.lags, 0.99),
			slices.Max(run.lags))
		rounds++
	}
	b.ReportMetric(float64(rounds*satWrites)/tSat.Seconds(), "max_writes/s")
	b.ReportMetric(float64(pacedWrites)/tPaced.Seconds(), "paced_writes/s")
	b.ReportMetric(pacedOverMax/float64(rounds), "paced_vs_max")
	b.ReportMetric(latency.Ms(latency.Quantile(lags, 0.5)), "lag_p50_ms")
	b.ReportMetric(latency.Ms(latency.Quantile(lags, 0.99)), "lag_p99_ms")
	b.ReportMetric(latency.Ms(slices.Max(lags)), "lag_max_ms")
	b.ReportMetric(100*float64(early)/float64(len(lags)), "early_%")
	b.ReportMetric(1000*metricPooled.quantileLE(0.5), "metric_p50_le_ms")
	b.ReportMetric(1000*metricPooled.quantileLE(0.99), "metric_p99_le_ms")
	b.ReportMetric(1000*metricPooled.sum/metricPooled.count, "metric_mean_ms")
}

// settle waits until the follower is ready and has applied everything the leader has.
func settle(b *testing.B, l *node.Leader, f *node.Follower) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 60*time.Second)
	defer cancel()
	if err := f.WaitApplied(ctx, l.Applied()); err != nil {
		b.Fatalf("follower did not catch up with the leader's seq %d: %v (status %+v)", l.Applied(), err, f.Status())
	}
	waitState(b, f.Status, api.StateReady, 60*time.Second)
}

// lagRun is the outcome of one paced phase.
type lagRun struct {
	lags    []time.Duration // per write: from its answer to the follower having applied it (0 if before)
	early   int             // writes the follower applied before the client had the answer
	elapsed time.Duration   // first scheduled write to the last answer
}

// pacedLag runs an open-loop load of rate writes/s in all over conns connections to the leader at addr for dur, and
// measures for each write the time from its answer to the follower having applied it.
func pacedLag(ctx context.Context, f *node.Follower, addr string, conns int, rate float64, dur time.Duration,
	prefix string, value []byte) (lagRun, error) {
	p, err := httpload.DialPool(ctx, addr, conns)
	if err != nil {
		return lagRun{}, err
	}
	defer p.Close()
	type stamp struct {
		seq uint64
		at  time.Time
	}
	// The watcher stamps each applied sequence it sees; it owns applied until it is joined.
	var applied []stamp
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		cur := f.Applied()
		for {
			if err := f.WaitApplied(wctx, cur+1); err != nil {
				return
			}
			now := time.Now()
			cur = f.Applied()
			applied = append(applied, stamp{cur, now})
		}
	}()

	answered := make([][]stamp, p.Len()) // per connection, owned by its worker until Each returns
	interval := time.Duration(float64(time.Second) * float64(p.Len()) / rate)
	begin := time.Now().Add(10 * time.Millisecond)
	end := begin.Add(dur)
	err = p.Each(ctx, func(c *httpload.PutConn, w int) error {
		next := begin.Add(time.Duration(w) * interval / time.Duration(p.Len()))
		for i := 0; next.Before(end); i++ {
			if d := time.Until(next); d > 0 {
				if err := ctxtime.Sleep(ctx, d); err != nil {
					return err
				}
			}
			seq, err := c.PutVersion(prefix+strconv.Itoa(w)+"-"+strconv.Itoa(i), value)
			at := time.Now()
			if err != nil {
				return err
			}
			answered[w] = append(answered[w], stamp{seq, at})
			next = next.Add(interval)
		}
		return nil
	})
	elapsed := time.Since(begin)
	if err != nil {
		stopWatch()
		<-watched
		return lagRun{}, err
	}
	var last uint64
	for _, as := range answered {
		for _, a := range as {
			last = max(last, a.seq)
		}
	}
	wctx2, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = f.WaitApplied(wctx2, last)
	done := time.Now()
	cancel()
	stopWatch()
	<-watched
	if err != nil {
		return lagRun{}, fmt.Errorf("bench: follower did not apply seq %d: %w", last, err)
	}
	if len(applied) == 0 || applied[len(applied)-1].seq < last {
		// The watcher was stopped before it stamped the last sequence; this goroutine woke from the same wait.
		applied = append(applied, stamp{last, done})
	}

	run := lagRun{elapsed: elapsed}
	for _, as := range answered {
		for _, a := range as {
			i := sort.Search(len(applied), func(i int) bool { return applied[i].seq >= a.seq })
			lag := applied[i].at.Sub(a.at)
			if lag < 0 {
				run.early++
				lag = 0
			}
			run.lags = append(run.lags, lag)
		}
	}
	if len(run.lags) == 0 {
		return lagRun{}, fmt.Errorf("bench: no paced write")
	}
	return run, nil
}

// lagHistogram is the follower's replikv_replication_lag_seconds as scraped: cumulative bucket counts by upper
// bound (seconds, ascending, +Inf last), the count and the sum.
type lagHistogram struct {
	le, cum    []float64
	count, sum float64
}

func (h lagHistogram) sub(o lagHistogram) lagHistogram {
	out := lagHistogram{le: h.le, cum: slices.Clone(h.cum), count: h.count - o.count, sum: h.sum - o.sum}
	for i := range out.cum {
		if i < len(o.cum) {
			out.cum[i] -= o.cum[i]
		}
	}
	return out
}

func (h lagHistogram) add(o lagHistogram) lagHistogram {
	if h.le == nil {
		return o
	}
	out := lagHistogram{le: h.le, cum: slices.Clone(h.cum), count: h.count + o.count, sum: h.sum + o.sum}
	for i := range out.cum {
		if i < len(o.cum) {
			out.cum[i] += o.cum[i]
		}
	}
	return out
}

// quantileLE returns the upper bound (seconds) of the first bucket holding the q-quantile.
func (h lagHistogram) quantileLE(q float64) float64 {
	for i, c := range h.cum {
		if h.count > 0 && c >= q*h.count {
			return h.le[i]
		}
	}
	return 0
}

// scrapeLagHistogram reads replikv_replication_lag_seconds from the node's /metrics.
func scrapeLagHistogram(ctx context.Context, addr string) (lagHistogram, error) {
	const name = "replikv_replication_lag_seconds"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return lagHistogram{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return lagHistogram{}, fmt.Errorf("bench: scrape: %w", err)
	}
	defer resp.Body.Close()
	var h lagHistogram
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return lagHistogram{}, fmt.Errorf("bench: scrape %q: %w", line, err)
		}
		switch {
		case strings.HasPrefix(line, name+"_bucket{"):
			i := strings.Index(line, `,le="`) + 1 // "role" ends in "le" too
			if i == 0 {
				i = strings.Index(line, `{le="`) + 1
			}
			bound, _, _ := strings.Cut(line[i+len(`le="`):], `"`)
			le, err := strconv.ParseFloat(bound, 64) // ParseFloat takes "+Inf"
			if err != nil {
				return lagHistogram{}, fmt.Errorf("bench: scrape %q: %w", line, err)
			}
			h.le, h.cum = append(h.le, le), append(h.cum, v)
		case strings.HasPrefix(line, name+"_count"):
			h.count = v
		case strings.HasPrefix(line, name+"_sum"):
			h.sum = v
		}
	}
	if err := sc.Err(); err != nil {
		return lagHistogram{}, fmt.Errorf("bench: scrape: %w", err)
	}
	if len(h.le) == 0 {
		return lagHistogram{}, fmt.Errorf("bench: no %s in /metrics", name)
	}
	return h, nil
}
