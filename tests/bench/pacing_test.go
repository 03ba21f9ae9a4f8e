//go:build bench

package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/testutil/httpload"
	"github.com/replikv/replikv/internal/testutil/latency"
)

var (
	flagPacingBacklog = flag.Int("bench.pacingbacklog", 100_000,
		"log entries past the newest snapshot that BenchmarkCatchUpPacing's followers replay in each round")
	flagPacingLoad = flag.Float64("bench.pacingload", 0.5,
		"BenchmarkCatchUpPacing's open-loop load, as a share of the leader's measured maximum single-PUT ingest")
	flagPacingWriters = flag.Int("bench.pacingwriters", 16,
		"connections of BenchmarkCatchUpPacing's open-loop load, each on a fixed schedule")
	flagPacingMaxWrites = flag.Int("bench.pacingmaxwrites", 30_000,
		"writes of BenchmarkCatchUpPacing's measurement of the leader's maximum ingest (64 connections, closed loop)")
	flagPacingIdle = flag.Duration("bench.pacingidle", 10*time.Second,
		"BenchmarkCatchUpPacing's shortest idle window (the load's run before the followers start, otherwise as long as the load takes to write -bench.pacingbacklog entries)")
	flagPacingPin = flag.Bool("bench.pacingpin", true,
		"BenchmarkCatchUpPacing: the leader on CPU 0 and the followers on CPUs 1..n-1, standing for separate machines (false: nothing pinned)")
)

// pacingModes are the follower's --catchup-pacing policies BenchmarkCatchUpPacing compares; the first is the
// reference (today's pacing), the second the one under test.
var pacingModes = [2]string{"fixed", "adaptive"}

const (
	// pacingFollowers onboard at once in each round.
	pacingFollowers = 3
	// pacingSettle separates the start of the load from the idle window.
	pacingSettle = 2 * time.Second
	// pacingLoadPrefix names the load's keys; the same in every round, so that the state does not grow from round to
	// round (nor the snapshots the followers restore).
	pacingLoadPrefix = "pace"
)

// BenchmarkCatchUpPacing compares the follower's two catch-up pacing policies (--catchup-pacing fixed, today's
// pacing at --catchup-rate, raised to twice the log's growth; and adaptive, which paces against the leader's
// published write latency) when three followers onboard at once next to a leader at half its maximum ingest.
//
// A leader binary (embedded NATS server, local snapshot directory; --snapshot-cpu 1, since its snapshots are taken
// between the measurements and only slow the run down) first takes -bench.pacingmaxwrites single PUTs of 128 B from
// 64 keep-alive connections, one request in flight each, after 5,000 to warm up: its maximum ingest. Then each round
// (one benchmark iteration; -benchtime 3x for three) runs both policies, in alternating order (fixed first in even
// rounds). A policy's turn:
//   - takes a fresh snapshot, which the followers restore;
//   - starts the open-loop load, -bench.pacingload (0.5) of the maximum ingest over -bench.pacingwriters
//     connections, latency counted from each write's scheduled time, and lets it run until about
//     -bench.pacingbacklog log entries are past the snapshot (at least 2 s + -bench.pacingidle; single PUTs from 64
//     connections, closed loop, before the load write what it would not): that backlog is what the followers'
//     catch-up replays, the same in every turn. The load's run after its first 2 s is the idle window;
//   - starts three followers at once with empty storage and --catchup-pacing <policy> (the rest at their defaults)
//     and waits until all three are ready: the busy window;
//   - stops the followers, deletes their data and syncs, waits until the load is back on schedule (the leader has
//     worked off the writes it fell behind by; behind_s counts from all ready, at most 20 s), and stops the load.
//
// The idle window is as long as the load takes to write the backlog, whatever the busy window's length: a longer one
// before the followers would make a longer backlog, a longer busy window, and so on; one after them would follow
// what they left behind (the writes the leader fell behind by, its store's flushes and compactions of them), longer
// for the slower policy, and so raise that policy's idle p99 (about twice the other's, in trial runs) and flatter its
// x_idle. The same window in every turn leaves the policies' x_idle comparable; the busy p99s (busy_p99_ms,
// adaptive_vs_fixed_busy_p99) are comparable as they are, under the same load.
//
// Per turn: the leader's write p99 in the busy window against the idle one (x_idle), each follower's time to ready
// (exec to ready, /v1/status polled every 20 ms): the slowest of the three, the time until all are ready, and the
// median; and the followers' replikv_catchup_rate, read every 250 ms while they catch up. Per policy: the median over
// the rounds of each; the result is adaptive over fixed, of the x_idle medians (adaptive_vs_fixed_x_idle) and of the
// slowest-ready medians (adaptive_vs_fixed_ready), goal <= 1.0 on both.
//
// With -bench.pacingpin (the default) the leader runs on CPU 0 from its start (taskset) and the followers on CPUs
// 1..n-1, standing for separate machines; the followers' catch-up reads are served by the leader's embedded server on
// the leader's CPU. The load generator is not pinned. There is no warm-up turn (-bench.warmup does not apply): the
// leader starts without keys, and the median of the rounds leaves out one disturbed round.
func BenchmarkCatchUpPacing(b *testing.B) {
	if *flagPacingBacklog < 0 || !(*flagPacingLoad > 0 && *flagPacingLoad <= 1) || *flagPacingWriters < 1 ||
		*flagPacingMaxWrites < 1 {
		b.Fatalf("bad flags: -bench.pacingbacklog %d (>= 0), -bench.pacingload %v (in (0, 1]), -bench.pacingwriters %d (>= 1), -bench.pacingmaxwrites %d (>= 1)",
			*flagPacingBacklog, *flagPacingLoad, *flagPacingWriters, *flagPacingMaxWrites)
	}
	if err := followerHasFlag("catchup-pacing"); err != nil {
		b.Fatal(err)
	}
	var leaderWrap, followerWrap []string
	if *flagPacingPin {
		leaderCPUs, followerCPUs, ok := cpuSplit()
		if !ok {
			b.Fatal("one CPU cannot stand for two machines (run with -bench.pacingpin=false)")
		}
		leaderWrap = []string{"taskset", "-c", leaderCPUs}
		followerWrap = []string{"taskset", "-c", followerCPUs}
	}
	c := startCluster(b, 0, leaderWrap, "", "--snapshot-cpu", "1")
	ctx := b.Context()
	if _, err := bulkPut(ctx, c.addr, bulkConns, 5_000, keyName, valueSize); err != nil {
		b.Fatal(err)
	}
	took, err := bulkPut(ctx, c.addr, bulkConns, *flagPacingMaxWrites, keyName, valueSize)
	if err != nil {
		b.Fatal(err)
	}
	maxRate := float64(*flagPacingMaxWrites) / took.Seconds()
	pb := &pacingBench{c: c, followerWrap: followerWrap, maxRate: maxRate, rate: *flagPacingLoad * maxRate}
	b.Logf("leader: maximum ingest %.0f writes/s (%d single PUTs, 64 connections); load %.0f writes/s over %d connections; backlog %d entries; pinned %v",
		maxRate, *flagPacingMaxWrites, pb.rate, *flagPacingWriters, *flagPacingBacklog, *flagPacingPin)

	var res [len(pacingModes)][]pacingTurn
	rounds := 0
	for b.Loop() {
		for k := range pacingModes {
			i := (k + rounds) % len(pacingModes)
			r := pb.turn(b, pacingModes[i], fmt.Sprintf("pace-%d-%s", rounds, pacingModes[i]))
			r.round = rounds
			res[i] = append(res[i], r)
		}
		rounds++
	}
	reportPacing(b, pb, res)
}

// followerHasFlag returns an error unless the follower binary lists --name in its usage.
func followerHasFlag(name string) error {
	out, _ := exec.Command(binaries.follower, "--help").CombinedOutput() // usage exits non-zero
	if !strings.Contains(string(out), "--"+name) {
		return fmt.Errorf("the follower binary has no --%s flag", name)
	}
	return nil
}

// pacingBench is BenchmarkCatchUpPacing's leader and load.
type pacingBench struct {
	c            *cluster
	followerWrap []string
	maxRate      float64 // the leader's measured maximum ingest, writes/s
	rate         float64 // the open-loop load, writes/s
}

// pacingTurn is one policy's turn of a round.
type pacingTurn struct {
	mode         string
	round        int
	backlog      uint64          // log entries past the snapshot when the followers started
	replayed     []uint64        // per follower: entries applied after its snapshot when it was ready
	ready        []time.Duration // per follower, exec to ready, in ascending order
	idle         window          // the load's run before the followers
	busy         window
	idle99       time.Duration
	busy99       time.Duration
	ratio        float64 // busy99 / idle99
	srvRatio     float64 // the same of the leader's own timing (Server-Timing); 0 without it
	busyLate99   time.Duration
	leaderIdle   float64       // the leader's CPU use under the load alone (before the followers), in cores
	leaderCPU    time.Duration // during the busy window
	followersCPU time.Duration // the three followers' CPU time until all were ready
	// rates are the followers' replikv_catchup_rate samples while paced and not yet ready, unpaced how many samples
	// found them unpaced (-1); both empty where the followers do not export it.
	rates   []float64
	unpaced int
	// behind is how long after all were ready the load was back on schedule: the leader had worked off the writes it
	// fell behind by (at most pacingBehindTimeout).
	behind time.Duration
}

// slowest is the time until all the followers were ready; median the median follower's.
func (t pacingTurn) slowest() time.Duration { return t.ready[len(t.ready)-1] }
func (t pacingTurn) median() time.Duration  { return t.ready[len(t.ready)/2] }

// row is the turn as a line of the report's table.
func (t pacingTurn) row() string {
	return fmt.Sprintf("%-8s %8d %6.1f %6.1f %9.2f %9.2f %7.2f %6.2f %9.2f %9.2f %8.1f %9.2f %9.0f %9.0f %10.1f %8.0f %9.0f",
		t.mode, t.backlog, t.idle.dur().Seconds(), t.busy.dur().Seconds(), latency.Ms(t.idle99), latency.Ms(t.busy99),
		t.ratio, t.srvRatio, t.slowest().Seconds(), t.median().Seconds(), t.behind.Seconds(), latency.Ms(t.busyLate99),
		100*t.leaderIdle, 100*t.leaderCPU.Seconds()/t.busy.dur().Seconds(), t.followersCPU.Seconds(), t.rate(),
		100*t.unpacedShare())
}

// rate is the median of the followers' paced catch-up rates (0 without samples); unpacedShare the share of the
// samples that found them unpaced.
func (t pacingTurn) rate() float64 {
	if len(t.rates) == 0 {
		return 0
	}
	return upperMedian(t.rates)
}

func (t pacingTurn) unpacedShare() float64 {
	if n := len(t.rates) + t.unpaced; n > 0 {
		return float64(t.unpaced) / float64(n)
	}
	return 0
}

// pacingHeader heads the columns of pacingTurn.row.
var pacingHeader = fmt.Sprintf("%-8s %8s %6s %6s %9s %9s %7s %6s %9s %9s %8s %9s %9s %9s %10s %8s %9s",
	"mode", "backlog", "idle_s", "busy_s", "idle_p99", "busy_p99", "x_idle", "x_srv", "ready_max", "ready_med",
	"behind_s", "late_p99", "cpu%idle", "cpu%busy", "fol_cpu_s", "rate", "unpaced%")

// pacingBehindTimeout bounds the wait for the load to be on schedule again after the followers.
const pacingBehindTimeout = 20 * time.Second

// pacingRateEvery is how often sampleCatchUpRates reads the followers' catch-up rate.
const pacingRateEvery = 250 * time.Millisecond

// sampleCatchUpRates reads each follower's replikv_catchup_rate every pacingRateEvery, as long as the follower is not
// ready, until stop is closed. It returns the paced rates it read and how many samples were unpaced (-1); a follower
// whose metrics lack the gauge (or cannot be read) adds nothing.
func sampleCatchUpRates(ctx context.Context, nodes []*node, ready []atomic.Bool, stop <-chan struct{}) ([]float64, int) {
	var rates []float64
	unpaced := 0
	tick := time.NewTicker(pacingRateEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return rates, unpaced
		case <-ctx.Done():
			return rates, unpaced
		case <-tick.C:
		}
		for i, n := range nodes {
			if ready[i].Load() {
				continue
			}
			v, ok := n.gauge(ctx, "replikv_catchup_rate")
			switch {
			case !ok:
			case v < 0:
				unpaced++
			default:
				rates = append(rates, v)
			}
		}
	}
}

// gauge reads the node's /metrics and returns the value of the first sample of the metric name, if there is one.
func (n *node) gauge(ctx context.Context, name string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil
	}
	return 0, false
}

// waitOnSchedule waits until the load's writers have sent their latest writes on schedule (pacedLoad.onSchedule)
// throughout half a second, or timeout.
func waitOnSchedule(ctx context.Context, load *pacedLoad, timeout time.Duration) error {
	const poll, need = 20 * time.Millisecond, 25
	deadline := time.Now().Add(timeout)
	for n := 0; n < need; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the load was not back on schedule within %v", timeout)
		}
		if err := ctxtime.Sleep(ctx, poll); err != nil {
			return err
		}
		if load.onSchedule() {
			n++
		} else {
			n = 0
		}
	}
	return nil
}

// turn runs one policy's turn (see BenchmarkCatchUpPacing).
func (pb *pacingBench) turn(b *testing.B, mode, name string) pacingTurn {
	b.Helper()
	ctx := b.Context()
	c := pb.c
	// The load runs for pacingSettle + run before the followers start; the bulk writes what it would not of the
	// backlog.
	run := max(time.Duration(float64(*flagPacingBacklog)/pb.rate*float64(time.Second))-pacingSettle, *flagPacingIdle)
	m, err := c.ln.snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if n := *flagPacingBacklog - int(pb.rate*(pacingSettle+run).Seconds()); n > 0 {
		if _, err := bulkPut(ctx, c.addr, bulkConns, n, keyName, valueSize); err != nil {
			b.Fatal(err)
		}
	}
	load, err := pb.startLoad(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fail := func(err error) {
		b.Helper()
		_, loadErr := load.stop()
		b.Fatal(errors.Join(err, loadErr))
	}
	before, err := idleFor(ctx, pacingSettle, 0)
	if err != nil {
		fail(err)
	}
	cpuA, err := procCPU(c.leader.Pid())
	if err != nil {
		fail(err)
	}
	if err := ctxtime.Sleep(ctx, run); err != nil {
		fail(err)
	}
	st, err := c.ln.status(ctx)
	if err != nil {
		fail(err)
	}
	cpu0, err := procCPU(c.leader.Pid())
	if err != nil {
		fail(err)
	}
	t1 := time.Now()
	before.to = t1
	t := pacingTurn{mode: mode, backlog: st.AppliedSeq - m.Seq, idle: before,
		leaderIdle: (cpu0 - cpuA).Seconds() / before.dur().Seconds()}
	fs := make([]*follower, pacingFollowers)
	for i := range fs { // launch all before waiting for any
		fs[i] = c.launchFollower(b, fmt.Sprintf("%s-%d", name, i), pb.followerWrap, "--catchup-pacing", mode)
	}
	removed := false
	remove := func() {
		if removed {
			return
		}
		removed = true
		for _, f := range fs {
			f.remove()
		}
		syscall.Sync()
	}
	defer remove()
	var wg sync.WaitGroup
	times := make([]stateTimes, len(fs))
	lasts := make([]map[string]status, len(fs))
	errs := make([]error, len(fs))
	nodes := make([]*node, len(fs))
	ready := make([]atomic.Bool, len(fs))
	for i, f := range fs {
		nodes[i] = f.node() // on this goroutine: it may fail the benchmark
		wg.Go(func() {
			times[i], lasts[i], errs[i] = watchUntilReady(ctx, nodes[i], readyTimeout)
			ready[i].Store(true)
		})
	}
	stopRates := make(chan struct{})
	ratesDone := make(chan struct{})
	go func() { // owns t.rates and t.unpaced until ratesDone is closed
		defer close(ratesDone)
		t.rates, t.unpaced = sampleCatchUpRates(ctx, nodes, ready, stopRates)
	}()
	wg.Wait()
	close(stopRates)
	<-ratesDone
	t2 := time.Now()
	cpu1, cpuErr := procCPU(c.leader.Pid())
	if err := errors.Join(append(errs, cpuErr)...); err != nil {
		fail(err)
	}
	t.busy = window{t1, t2}
	t.leaderCPU = cpu1 - cpu0
	for i, f := range fs {
		ready := lasts[i]["ready"]
		if ready.SnapshotSeq != m.Seq {
			fail(fmt.Errorf("%s restored snapshot %d, want the newest, %d", f.proc.name, ready.SnapshotSeq, m.Seq))
		}
		t.replayed = append(t.replayed, ready.AppliedSeq-ready.SnapshotSeq)
		t.ready = append(t.ready, times[i]["ready"].Sub(f.proc.started))
		d, err := procCPU(f.proc.Pid())
		if err != nil {
			fail(err)
		}
		t.followersCPU += d
	}
	slices.Sort(t.ready)
	remove()
	if err := waitOnSchedule(ctx, load, pacingBehindTimeout); err != nil {
		b.Logf("%s: %v", name, err)
	}
	t.behind = time.Since(t2)
	samples, err := load.stop()
	if err != nil {
		b.Fatal(err)
	}
	idleLat, busyLat := latencies(samples, t.idle), latencies(samples, t.busy)
	t.idle99, t.busy99 = latency.Quantile(idleLat, 0.99), latency.Quantile(busyLat, 0.99)
	if t.idle99 <= 0 || t.busy99 <= 0 {
		b.Fatalf("%s: no writes in a window (idle %d, busy %d)", name, len(idleLat), len(busyLat))
	}
	t.ratio = float64(t.busy99) / float64(t.idle99)
	i99 := latency.Quantile(serverTimes(samples, t.idle), 0.99)
	if b99 := latency.Quantile(serverTimes(samples, t.busy), 0.99); i99 > 0 && b99 > 0 {
		t.srvRatio = float64(b99) / float64(i99)
	}
	t.busyLate99 = latency.Quantile(lateness(samples, t.busy), 0.99)
	b.Logf("%s: backlog %d, replayed %v, ready %v; slowest writes while onboarding: %s; while idle: %s", name,
		t.backlog, t.replayed, roundAll(t.ready), slowest(samples, 5, t.busy), slowest(samples, 5, t.idle))
	return t
}

// startLoad starts the open-loop load: rate writes/s over -bench.pacingwriters connections.
func (pb *pacingBench) startLoad(ctx context.Context) (*pacedLoad, error) {
	ws := make([]writer, 0, *flagPacingWriters)
	for range *flagPacingWriters {
		pc, err := httpload.DialPut(ctx, pb.c.addr)
		if err != nil {
			for _, w := range ws {
				w.close()
			}
			return nil, err
		}
		ws = append(ws, httpWriter{c: pc})
	}
	return startPacedLoad(ctx, ws, pb.rate/float64(len(ws)), pacingLoadPrefix, valueSize), nil
}

// roundAll rounds durations to milliseconds, for logs.
func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// spread is the median (the higher middle one of an even number) and the range of xs, not empty.
type spread struct{ med, lo, hi float64 }

func spreadOf(xs []float64) spread {
	return spread{med: upperMedian(xs), lo: slices.Min(xs), hi: slices.Max(xs)}
}

func (s spread) String() string { return fmt.Sprintf("%s (%s-%s)", num(s.med), num(s.lo), num(s.hi)) }

// num formats x with three significant digits, or as an integer from 1,000 on.
func num(x float64) string {
	if x >= 1000 || x <= -1000 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

// reportPacing reports BenchmarkCatchUpPacing's turns: a table of them, each policy's medians over the rounds with
// their range, and adaptive over fixed.
func reportPacing(b *testing.B, pb *pacingBench, res [len(pacingModes)][]pacingTurn) {
	var all []pacingTurn
	for _, ts := range res {
		all = append(all, ts...)
	}
	slices.SortStableFunc(all, func(x, y pacingTurn) int { return x.round - y.round })
	var tab strings.Builder
	fmt.Fprintf(&tab, "%5s %s\n", "round", pacingHeader)
	for _, t := range all {
		fmt.Fprintf(&tab, "%5d %s\n", t.round, t.row())
	}
	b.Logf("turns (p99s in ms, ready in s; the leader's CPU in %% of one core under the load alone and while the followers onboard; the followers' replikv_catchup_rate while catching up, median of the samples in entries/s, and the share of samples unpaced):\n%s",
		tab.String())

	type summary struct{ ratio, srv, busy99, idle99, slowest, median, behind, rate, backlog spread }
	var sums [len(pacingModes)]summary
	for i, mode := range pacingModes {
		ts := res[i]
		if len(ts) == 0 {
			b.Fatalf("%s: no rounds", mode)
		}
		of := func(f func(pacingTurn) float64) spread {
			xs := make([]float64, len(ts))
			for j, t := range ts {
				xs[j] = f(t)
			}
			return spreadOf(xs)
		}
		s := summary{
			ratio:   of(func(t pacingTurn) float64 { return t.ratio }),
			srv:     of(func(t pacingTurn) float64 { return t.srvRatio }),
			busy99:  of(func(t pacingTurn) float64 { return latency.Ms(t.busy99) }),
			idle99:  of(func(t pacingTurn) float64 { return latency.Ms(t.idle99) }),
			slowest: of(func(t pacingTurn) float64 { return t.slowest().Seconds() }),
			median:  of(func(t pacingTurn) float64 { return t.median().Seconds() }),
			behind:  of(func(t pacingTurn) float64 { return t.behind.Seconds() }),
			rate:    of(pacingTurn.rate),
			backlog: of(func(t pacingTurn) float64 { return float64(t.backlog) }),
		}
		sums[i] = s
		b.ReportMetric(s.ratio.med, mode+"_x_idle")
		b.ReportMetric(s.ratio.hi-s.ratio.lo, mode+"_x_idle_range")
		b.ReportMetric(s.srv.med, mode+"_server_x_idle")
		b.ReportMetric(s.busy99.med, mode+"_busy_p99_ms")
		b.ReportMetric(s.idle99.med, mode+"_idle_p99_ms")
		b.ReportMetric(s.slowest.med, mode+"_ready_s")
		b.ReportMetric(s.slowest.hi-s.slowest.lo, mode+"_ready_range_s")
		b.ReportMetric(s.median.med, mode+"_ready_median_s")
		b.ReportMetric(s.behind.med, mode+"_behind_s")
		b.ReportMetric(s.rate.med, mode+"_catchup_rate")
		b.ReportMetric(s.backlog.med, mode+"_backlog")
		b.Logf("%s, %d rounds, median (range): leader write p99 x%v idle (p99 %v ms busy, %v ms idle; the leader's own timing x%v); time to ready %v s for all three, %v s the median follower; the load back on schedule %v s after; catch-up paced at %v entries/s (replikv_catchup_rate, the median follower sample); backlog %v entries",
			mode, len(ts), s.ratio, s.busy99, s.idle99, s.srv, s.slowest, s.median, s.behind, s.rate, s.backlog)
	}
	fixed, adaptive := sums[0], sums[1]
	xP99 := adaptive.ratio.med / fixed.ratio.med
	xReady := adaptive.slowest.med / fixed.slowest.med
	b.ReportMetric(pb.maxRate, "max_writes/s")
	b.ReportMetric(pb.rate, "load_writes/s")
	b.ReportMetric(xP99, "adaptive_vs_fixed_x_idle")
	b.ReportMetric(adaptive.busy99.med/fixed.busy99.med, "adaptive_vs_fixed_busy_p99")
	b.ReportMetric(xReady, "adaptive_vs_fixed_ready")
	b.ReportMetric(adaptive.median.med/fixed.median.med, "adaptive_vs_fixed_ready_median")
	verdict := func(x float64) string {
		if x <= 1 {
			return "met"
		}
		return "NOT MET"
	}
	xBusy := adaptive.busy99.med / fixed.busy99.med
	b.Logf("adaptive / fixed: leader write p99 (x idle) %.2fx, goal <= 1.0, %s; time to ready (all three) %.2fx, goal <= 1.0, %s; the busy p99s themselves %.2fx (%s at <= 1.0); the median follower's time to ready %.2fx",
		xP99, verdict(xP99), xReady, verdict(xReady), xBusy, verdict(xBusy), adaptive.median.med/fixed.median.med)
}
