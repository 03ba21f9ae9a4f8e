//go:build bench

package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/testutil/latency"
)

// p99Result accumulates latencies of one p99 benchmark, pooled over its rounds and per round.
type p99Result struct {
	idle, busy []time.Duration
	// idleLate and busyLate are how late the load generator issued the writes (see sample.late): what of a p99 is
	// the generator's own scheduling delay on this shared machine rather than the leader's.
	idleLate, busyLate []time.Duration
	// idleSrv and busySrv are the leader's own timings of the writes (Server-Timing: from having read the request's
	// headers to answering), which leave out the client's and the network's share; srvRatios their p99 ratio per round.
	idleSrv, busySrv []time.Duration
	srvRatios        []float64
	ratios           []float64 // busy p99 / idle p99 of each round
	busyTime         time.Duration
	leaderCPU        time.Duration // CPU the leader used during the busy windows
	otherCPU         time.Duration // CPU the followers used during the busy windows
	// idleIO and busyIO are the time some task on the machine stalled on I/O during the idle and busy windows
	// (/proc/pressure/io); idleTime is the idle windows' length. ioOK is false where the kernel has no pressure data.
	idleIO, busyIO, idleTime time.Duration
	ioOK                     bool
	// phases splits the busy windows by what the disturbance was doing (benchP99Followers: the followers' restores,
	// their catch-up, their reading of the log itself), in order of first appearance; pending holds the current
	// round's, which p99Under adds once it has the samples.
	phases     []*phaseResult
	pendingPhs []phase
}

// phase is a part of a busy window.
type phase struct {
	name string
	w    window
}

// phaseResult accumulates a phase's latencies over the rounds.
type phaseResult struct {
	name     string
	lat, srv []time.Duration
	dur      time.Duration
}

// addPhases adds the current round's phases (pendingPhs) and clears them.
func (r *p99Result) addPhases(samples []sample) {
	for _, ph := range r.pendingPhs {
		i := slices.IndexFunc(r.phases, func(p *phaseResult) bool { return p.name == ph.name })
		if i < 0 {
			r.phases = append(r.phases, &phaseResult{name: ph.name})
			i = len(r.phases) - 1
		}
		pr := r.phases[i]
		pr.lat = append(pr.lat, latencies(samples, ph.w)...)
		pr.srv = append(pr.srv, serverTimes(samples, ph.w)...)
		pr.dur += ph.w.dur()
	}
	r.pendingPhs = nil
}

// addRound adds one round's samples inside the idle and the busy windows.
func (r *p99Result) addRound(samples []sample, idleWs, busyWs []window) {
	idle, busy := latencies(samples, idleWs...), latencies(samples, busyWs...)
	r.idle = append(r.idle, idle...)
	r.busy = append(r.busy, busy...)
	r.idleLate = append(r.idleLate, lateness(samples, idleWs...)...)
	r.busyLate = append(r.busyLate, lateness(samples, busyWs...)...)
	if i99 := latency.Quantile(idle, 0.99); i99 > 0 {
		r.ratios = append(r.ratios, float64(latency.Quantile(busy, 0.99))/float64(i99))
	}
	idleSrv, busySrv := serverTimes(samples, idleWs...), serverTimes(samples, busyWs...)
	r.idleSrv = append(r.idleSrv, idleSrv...)
	r.busySrv = append(r.busySrv, busySrv...)
	if i99 := latency.Quantile(idleSrv, 0.99); i99 > 0 && len(busySrv) > 0 {
		r.srvRatios = append(r.srvRatios, float64(latency.Quantile(busySrv, 0.99))/float64(i99))
	}
}

// report reports x_vs_idle as the median of the rounds' ratios: an outside stall of a few hundred milliseconds on
// this shared machine spoils the p99 of the window it falls in, and the median of three rounds discards one such
// round. With an even number of rounds it takes the higher of the two middle ones, never the flattering one. The
// pooled p99s and their ratio are reported too.
func (r *p99Result) report(b *testing.B, goal float64, what string) {
	if len(r.idle) == 0 || len(r.busy) == 0 || len(r.ratios) == 0 {
		b.Fatalf("no samples (idle %d, busy %d)", len(r.idle), len(r.busy))
	}
	idle99, busy99 := latency.Quantile(r.idle, 0.99), latency.Quantile(r.busy, 0.99)
	pooled := float64(busy99) / float64(idle99)
	ratio := upperMedian(r.ratios)
	b.ReportMetric(latency.Ms(idle99), "idle_p99_ms")
	b.ReportMetric(latency.Ms(busy99), "busy_p99_ms")
	b.ReportMetric(ratio, "x_vs_idle")
	b.ReportMetric(pooled, "x_vs_idle_pooled")
	b.ReportMetric(latency.Ms(latency.Quantile(r.idle, 0.5)), "idle_p50_ms")
	b.ReportMetric(latency.Ms(latency.Quantile(r.idleLate, 0.99)), "idle_late_p99_ms")
	b.ReportMetric(latency.Ms(latency.Quantile(r.busyLate, 0.99)), "busy_late_p99_ms")
	b.ReportMetric(latency.Ms(latency.Quantile(r.busy, 0.5)), "busy_p50_ms")
	b.ReportMetric(latency.Ms(latency.Quantile(r.busy, 0.999)), "busy_p999_ms")
	b.ReportMetric(r.busyTime.Seconds(), "busy_s")
	b.ReportMetric(100*r.leaderCPU.Seconds()/r.busyTime.Seconds(), "leader_cpu_%")
	if r.otherCPU > 0 {
		b.ReportMetric(100*r.otherCPU.Seconds()/r.busyTime.Seconds(), "followers_cpu_%")
	}
	if r.ioOK && r.idleTime > 0 {
		b.ReportMetric(100*r.busyIO.Seconds()/r.busyTime.Seconds(), "busy_io_stall_%")
		b.ReportMetric(100*r.idleIO.Seconds()/r.idleTime.Seconds(), "idle_io_stall_%")
	}
	b.Logf("leader write p99 %v while %s vs %v idle (pooled %.2fx); per-round ratios %.2f, median %.2fx (goal <= %.2f, 0 = none); p50 %v vs %v; the load generator's own delay before sending, p99 %v vs %v; %d busy and %d idle samples",
		busy99, what, idle99, pooled, r.ratios, ratio, goal, latency.Quantile(r.busy, 0.5), latency.Quantile(r.idle, 0.5),
		latency.Quantile(r.busyLate, 0.99), latency.Quantile(r.idleLate, 0.99), len(r.busy), len(r.idle))
	for _, ph := range r.phases {
		// Pooled over the rounds, against the pooled idle p99s: which part of onboarding the busy tail comes from.
		p99, srv99 := latency.Quantile(ph.lat, 0.99), latency.Quantile(ph.srv, 0.99)
		b.ReportMetric(latency.Ms(p99), ph.name+"_p99_ms")
		b.ReportMetric(ph.dur.Seconds(), ph.name+"_s")
		b.Logf("busy phase %q: %v over the rounds, %d samples, p99 %v (%.2fx idle), the leader's own timing p99 %v (%.2fx idle)",
			ph.name, ph.dur.Round(time.Millisecond), len(ph.lat), p99, float64(p99)/float64(idle99),
			srv99, float64(srv99)/float64(max(latency.Quantile(r.idleSrv, 0.99), 1)))
	}
	if len(r.srvRatios) > 0 {
		// Reported beside the goal's ratio, not instead of it: the client-side latency is what the goal is about.
		srvIdle99, srvBusy99 := latency.Quantile(r.idleSrv, 0.99), latency.Quantile(r.busySrv, 0.99)
		srvRatio := upperMedian(r.srvRatios)
		b.ReportMetric(latency.Ms(srvIdle99), "idle_server_p99_ms")
		b.ReportMetric(latency.Ms(srvBusy99), "busy_server_p99_ms")
		b.ReportMetric(srvRatio, "server_x_vs_idle")
		b.Logf("the leader's own timing of the same writes (Server-Timing): p99 %v busy vs %v idle; per-round ratios %.2f, median %.2fx; p50 %v vs %v",
			srvBusy99, srvIdle99, r.srvRatios, srvRatio, latency.Quantile(r.busySrv, 0.5), latency.Quantile(r.idleSrv, 0.5))
	}
}

// upperMedian is the median of xs (not empty); of an even number the higher of the two middle values, never the
// flattering one.
func upperMedian(xs []float64) float64 {
	sorted := slices.Sorted(slices.Values(xs))
	return sorted[len(sorted)/2]
}

// benchP99FollowersSeparate is benchP99Followers with the leader's machine and the followers' machines kept apart.
// Followers run on their own machines in a deployment; on this single machine the benchmark stands for that with
// CPU affinity: a leader of its own (the same -bench.keys loaded) runs on CPU 0 from its start, with its embedded NATS
// server, which serves the catch-up reads, and the followers run on CPUs 1..n-1. The idle windows are measured on
// the same leader. Goal <= 1.1. leaderArgs are extra leader flags (--catchup-mirror for ThreeFollowersMirror).
func benchP99FollowersSeparate(b *testing.B, leaderArgs ...string) {
	leaderCPUs, followerCPUs, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot stand for two machines")
	}
	b.StopTimer()
	c := startCluster(b, *flagKeys, []string{"taskset", "-c", leaderCPUs}, "", leaderArgs...)
	b.StartTimer()
	benchP99Followers(b, c, []string{"taskset", "-c", followerCPUs})
}

// benchP99FollowersLogServer stands for the deployment where the log runs on NATS servers of their own
// (docker-compose, a JetStream cluster): a leader of its own (the same -bench.keys loaded) without an embedded server
// and with nothing pinned, a nats-server process on CPUs 1..n-1, and the followers on those CPUs too at the lowest
// priority (nice 19), so that on that side the log server, which serves both the leader's publishes and the
// followers' catch-up reads, comes first. The idle windows are measured on the same leader and log server. Goal <= 1.1.
// leaderArgs are extra leader flags (--catchup-mirror for ThreeFollowersLogServerMirror).
func benchP99FollowersLogServer(b *testing.B, leaderArgs ...string) {
	_, followerCPUs, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot stand for two machines")
	}
	b.StopTimer()
	natsURL := startLogServer(b, []string{"taskset", "-c", followerCPUs})
	c := startCluster(b, *flagKeys, nil, natsURL, leaderArgs...)
	b.StartTimer()
	benchP99Followers(b, c, []string{"taskset", "-c", followerCPUs, "nice", "-n", "19"})
}

// benchP99FollowersCluster stands for the deployment where the log and its catch-up mirror run on different servers
// of a JetStream cluster: a cluster of two nats-server processes, "log" (CPU 0, beside a leader of its own, the same
// -bench.keys loaded, started with --stream-tags log) and "catchup" (CPUs 1..n-1); the followers connect to
// "catchup" and run on its CPUs at the lowest priority (nice 19), so that on that side the server comes first. With
// mirror set the leader also gets --catchup-mirror --catchup-mirror-tags catchup, so that the followers' catch-up
// reads cost the "catchup" server only; without it they read the log on "log" through the cluster (the control). The
// idle windows are measured on the same leader and cluster. Goal <= 1.1.
func benchP99FollowersCluster(b *testing.B, mirror bool) {
	leaderCPUs, followerCPUs, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot stand for two machines")
	}
	benchP99FollowersOnCluster(b, mirror, []string{"taskset", "-c", leaderCPUs}, []string{"taskset", "-c", followerCPUs},
		[]string{"taskset", "-c", followerCPUs, "nice", "-n", "19"})
}

// benchP99FollowersClusterIdle is ThreeFollowersClusterMirror with the catch-up side under the SCHED_IDLE policy
// (chrt --idle 0) instead of nice 19: the "catchup" server and the followers run on CPUs 1..n-1 only when no other
// task wants them, and any other task that wakes there preempts them at once. A nice-19 task still takes its share
// of a CPU and delays other tasks' wake-ups for its slice; an idle-policy task does not, and the kernel counts a CPU
// that runs only such tasks as idle when it places a waking task (so the load generator finds CPU 1 free, as on a
// client machine of its own). What the two sides still share here is the kernel's own work (the loopback network's
// softirqs are run on whichever CPU raised them), the memory bus and caches, and the disk. The leader and the log's
// server share CPU 0, as in ThreeFollowersClusterMirror. Goal <= 1.1.
func benchP99FollowersClusterIdle(b *testing.B) {
	leaderCPUs, followerCPUs, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot stand for two machines")
	}
	idle := []string{"taskset", "-c", followerCPUs, "chrt", "--idle", "0"}
	benchP99FollowersOnCluster(b, true, []string{"taskset", "-c", leaderCPUs}, idle, idle)
}

// benchP99FollowersOnCluster runs the rounds of benchP99Followers on a two-server cluster (see
// benchP99FollowersCluster): leaderWrap starts the leader and the "log" server, catchupWrap the "catchup" server and
// followerWrap the followers.
func benchP99FollowersOnCluster(b *testing.B, mirror bool, leaderWrap, catchupWrap, followerWrap []string) {
	b.StopTimer()
	logURL, catchupURL := startLogCluster(b, leaderWrap, catchupWrap)
	args := []string{"--stream-tags", "log"}
	if mirror {
		args = append(args, "--catchup-mirror", "--catchup-mirror-tags", "catchup")
	}
	c := startCluster(b, *flagKeys, leaderWrap, logURL, args...)
	c.followerURL = catchupURL
	b.StartTimer()
	benchP99Followers(b, c, followerWrap)
}

// benchP99FollowersLogApart stands for the deployment of docs/deployment.md with the leader, the log's server and the
// catch-up side each on machines of their own, as far as two CPUs allow: the leader alone on CPU 0 (the same
// -bench.keys loaded, --stream-tags log, --catchup-mirror --catchup-mirror-tags catchup); on CPUs 1..n-1 the cluster's
// "log" server at nice -10, so that it runs whenever it has work, as on a machine of its own, and its "catchup"
// server and the followers at nice 19, which get what it leaves. In ThreeFollowersClusterMirror the log server shares
// the leader's core instead, where the two take turns on it. The idle windows are
// measured on the same leader and cluster. Goal <= 1.1. A negative nice needs root; without it nice warns and the
// server runs at nice 0.
func benchP99FollowersLogApart(b *testing.B) {
	leaderCPUs, followerCPUs, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot stand for two machines")
	}
	b.StopTimer()
	logURL, catchupURL := startLogCluster(b, []string{"taskset", "-c", followerCPUs, "nice", "-n", "-10"},
		[]string{"taskset", "-c", followerCPUs, "nice", "-n", "19"})
	c := startCluster(b, *flagKeys, []string{"taskset", "-c", leaderCPUs}, logURL,
		"--stream-tags", "log", "--catchup-mirror", "--catchup-mirror-tags", "catchup")
	c.followerURL = catchupURL
	b.StartTimer()
	benchP99Followers(b, c, []string{"taskset", "-c", followerCPUs, "nice", "-n", "19"})
}

// benchP99FollowersNiced stands for separate machines the other way: the leader keeps every CPU, and the followers
// run on CPUs 1..n-1 at the lowest priority (nice 19), so that they only get CPU time the leader leaves idle.
func benchP99FollowersNiced(b *testing.B, c *cluster) {
	_, followerCPUs, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot stand for two machines")
	}
	benchP99Followers(b, c, []string{"taskset", "-c", followerCPUs, "nice", "-n", "19"})
}

// benchP99Followers measures the leader's write latency (live load of 2,000 writes/s, open loop) while three
// followers with empty storage onboard at once, from their start until all three are ready, against idle windows
// of 10 s before and after in the same round: x_vs_idle = p99 onboarding / p99 idle (median over rounds).
// followerCPUs, if not empty, confines the followers to those CPUs; without it (LeaderP99/ThreeFollowersSharedCPU,
// no goal) the followers' restores compete with the leader for the same cores, and followers_cpu_% shows how much.
func benchP99Followers(b *testing.B, c *cluster, wrap []string) {
	round := func(res *p99Result, name string) {
		c.p99Under(b, name, res, func() (time.Duration, func(), error) {
			start := time.Now()
			fs := make([]*follower, 3)
			for i := range fs { // launch all three before waiting for any
				fs[i] = c.launchFollower(b, fmt.Sprintf("%s-%d", name, i), wrap)
			}
			var wg sync.WaitGroup
			errs := make([]error, len(fs))
			for i, f := range fs {
				n := f.node() // on this goroutine: it may fail the benchmark
				wg.Go(func() { errs[i] = waitReady(b.Context(), n, readyTimeout) })
			}
			wg.Wait()
			// Stopping the followers and deleting their data is not onboarding: p99Under does it after the window.
			removeAll := func() {
				for _, f := range fs {
					f.remove()
				}
			}
			if err := errors.Join(errs...); err != nil {
				return 0, removeAll, err
			}
			res.pendingPhs = followerPhases(fs, start, time.Now())
			var cpu time.Duration
			for _, f := range fs {
				if err := c.checkMirrorUse(f); err != nil {
					return 0, removeAll, err
				}
				d, err := procCPU(f.proc.Pid())
				if err != nil {
					return 0, removeAll, err
				}
				cpu += d
			}
			return cpu, removeAll, nil
		})
	}
	warmUp(b, func(res *p99Result) { round(res, "p99f-warmup") })
	var res p99Result
	rounds := 0
	for b.Loop() {
		round(&res, fmt.Sprintf("p99f-%d", rounds))
		rounds++
	}
	res.report(b, 1.1, "3 followers onboard")
}

// warmUp runs one round of a p99 benchmark whose results are logged but left out (-bench.warmup). After the bulk
// load the leader's first memtable flush (200-540 ms of stalled writes) fell into every first round, in an idle
// window or a busy one, so that round's ratio said nothing about onboarding (about 0.05, or 45-94).
func warmUp(b *testing.B, round func(res *p99Result)) {
	if !*flagWarmUp {
		return
	}
	var res p99Result
	round(&res)
	first := func(xs []float64) string {
		if len(xs) == 0 {
			return "none"
		}
		return fmt.Sprintf("%.2fx", xs[0])
	}
	b.Logf("warm-up round, not counted: ratio %s, the leader's own timing %s", first(res.ratios), first(res.srvRatios))
}

// followerPhases splits a busy window [from, to] by the followers' logs: "restore" until the last of them started
// to read the log (or its mirror), "catchup" from then until the last of them switched from the mirror to the log
// (until to without a mirror), and "onlog" from then on: the steady cost of followers that follow the log, which the
// idle windows do not have. A follower that logged none of it leaves its phases out.
func followerPhases(fs []*follower, from, to time.Time) []phase {
	last := func(msg string) (time.Time, bool) {
		var t time.Time
		for _, f := range fs {
			ts := f.proc.logged(msg)
			if len(ts) == 0 {
				return time.Time{}, false
			}
			t = later(t, ts[0])
		}
		return t, true
	}
	restored, ok := last(msgCatchingUp)
	if !ok {
		return nil
	}
	phs := []phase{{"restore", window{from, restored}}}
	switched, ok := last(msgMirrorCaughtUp)
	if !ok {
		return append(phs, phase{"catchup", window{restored, to}})
	}
	onLog := later(restored, switched)
	return append(phs, phase{"catchup", window{restored, onLog}}, phase{"onlog", window{onLog, to}})
}

// checkMirrorUse returns an error if the cluster's leader keeps a catch-up mirror and f did not catch up from it, or
// fell back to the log: the benchmark would then not measure what it says.
func (c *cluster) checkMirrorUse(f *follower) error {
	if !c.mirror {
		return nil
	}
	if len(f.proc.logged(msgMirrorCatchUp)) == 0 {
		return fmt.Errorf("%s: did not log %q", f.proc.name, msgMirrorCatchUp)
	}
	if n := len(f.proc.logged(msgMirrorFallback)); n > 0 {
		return fmt.Errorf("%s: logged %q %d times:\n%s", f.proc.name, msgMirrorFallback, n, tailFile(f.proc.logPath, 30))
	}
	return nil
}

// benchP99BareConsumers is the control experiment of benchP99Followers: instead of three followers, three bare
// ordered consumers (journal.ConsumeCeiling, in the benchmark process) drain the log entries written since the
// newest snapshot, as the followers' catch-up does, from the NATS server embedded in the leader. Same load, same
// idle windows, same ratio. No goal: it shows how much of the followers' effect is the log reads alone.
func benchP99BareConsumers(b *testing.B, c *cluster) {
	round := func(res *p99Result, name string) {
		c.p99Under(b, name, res, func() (time.Duration, func(), error) {
			st, err := c.ln.status(b.Context())
			if err != nil {
				return 0, nil, err
			}
			n := int(st.AppliedSeq - st.SnapshotSeq)
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for i := range errs {
				wg.Go(func() {
					_, errs[i] = journal.ConsumeCeiling(b.Context(), c.natsURL, stream, n)
				})
			}
			wg.Wait()
			return 0, nil, errors.Join(errs...)
		})
	}
	warmUp(b, func(res *p99Result) { round(res, "p99c-warmup") })
	var res p99Result
	rounds := 0
	for b.Loop() {
		round(&res, fmt.Sprintf("p99c-%d", rounds))
		rounds++
	}
	res.report(b, 0, "3 bare consumers drain the log")
}

// p99Under takes a fresh snapshot, starts the live load, and records an idle window of 10 s, the busy window while
// disturb runs, and another idle window of 10 s. disturb returns the CPU time used by the processes it started, and
// a cleanup (or nil) that stops them and deletes their data, which runs between the busy and the second idle window.
func (c *cluster) p99Under(b *testing.B, name string, res *p99Result,
	disturb func() (cpu time.Duration, cleanup func(), err error)) {
	ctx := b.Context()
	const idleWindow = 10 * time.Second
	if _, err := c.ln.snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	load, err := c.startLoad(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	idleA, ioA, ioOK, err := idleWithIO(ctx, 2*time.Second, idleWindow)
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	leaderCPU0, err := procCPU(c.leader.Pid())
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	io1, _ := ioStall()
	t1 := time.Now()
	otherCPU, cleanup, err := disturb()
	t2 := time.Now()
	io2, _ := ioStall()
	leaderCPU1, cpuErr := procCPU(c.leader.Pid())
	if cleanup != nil {
		// Outside the windows: stop what disturb started and delete its data, and have the file system write the
		// deletion out (ext4 discards freed blocks at its journal commit), before the second idle window.
		cleanup()
		syscall.Sync()
	}
	if err = errors.Join(err, cpuErr); err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	idleB, ioB, _, err := idleWithIO(ctx, 2*time.Second, idleWindow)
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	samples, err := load.stop()
	if err != nil {
		b.Fatal(err)
	}
	busy := window{t1, t2}
	b.Logf("%s: slowest writes while disturbed: %s; while idle: %s", name, slowest(samples, 5, busy),
		slowest(samples, 5, idleA, idleB))
	res.addRound(samples, []window{idleA, idleB}, []window{busy})
	res.addPhases(samples)
	res.busyTime += busy.dur()
	res.leaderCPU += leaderCPU1 - leaderCPU0
	res.otherCPU += otherCPU
	if ioOK {
		res.ioOK = true
		res.idleIO += ioA + ioB
		res.busyIO += io2 - io1
		res.idleTime += idleA.dur() + idleB.dur()
	}
}

// benchP99Snapshot measures the leader's write latency (live load of 2,000 writes/s, open loop) while it takes and
// uploads a snapshot (POST /v1/snapshots, three times per round), against idle windows between them in the same
// round: x_vs_idle = p99 during snapshots / p99 idle (median over rounds), goal <= 1.25. A snapshot's window runs
// from the request to the leader's "snapshot created" log line (taken and uploaded, manifest written); what follows
// until the answer, retention and log compaction (purges inside the NATS server, in steps of a block), is measured as its own window and
// reported as compact_p99_ms and compact_max_ms, without a goal.
//
// Each idle window lasts as long as the longest snapshot so far (at least 5 s), so idle and busy time see the
// leader's own rare stalls (memtable flushes, compactions, GC) equally often: with idle windows of 5 s against
// snapshots of a minute, the busy p99 caught those stalls about ten times as often and the ratio was above 1 even
// for a snapshot that cost nothing. x_vs_idle5s reports the ratio against the first 5 s of each idle window only
// (the earlier design), and idle_long_vs_5s the p99 of the whole idle windows against that of their first 5 s: a
// comparison of idle with idle, which shows how much the window length alone moves a p99.
func benchP99Snapshot(b *testing.B, c *cluster) {
	ctx := b.Context()
	const (
		snapshots = 3
		minIdle   = 5 * time.Second
	)
	var res p99Result
	var compact, idleAll, idleShort []time.Duration
	var shortRatios []float64
	idleLen := minIdle
	rounds := 0
	for b.Loop() {
		load, err := c.startLoad(ctx, fmt.Sprintf("p99s-%d", rounds))
		if err != nil {
			b.Fatal(err)
		}
		var idle, short, busy, after []window
		waitIdle := func() error {
			w, err := idleFor(ctx, time.Second, idleLen)
			if err != nil {
				return err
			}
			idle = append(idle, w)
			short = append(short, window{w.from, w.from.Add(minIdle)})
			return nil
		}
		for range snapshots {
			if err := waitIdle(); err != nil {
				b.Fatal(errors.Join(err, stopLoad(load)))
			}
			cpu0, err := procCPU(c.leader.Pid())
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := c.ln.snapshot(ctx); err != nil {
				b.Fatal(errors.Join(err, stopLoad(load)))
			}
			t2 := time.Now()
			// The leader logs the line before it answers, but the harness reads its output on another goroutine:
			// give that a moment to catch up.
			var created time.Time
			for deadline := time.Now().Add(5 * time.Second); created.IsZero() && time.Now().Before(deadline); {
				if created = lastBetween(c.leader.logged(msgSnapshotCreated), t1.Add(-time.Millisecond), t2); created.IsZero() {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if created.IsZero() {
				b.Fatal(errors.Join(fmt.Errorf("leader did not log %q between %v and %v", msgSnapshotCreated, t1, t2),
					stopLoad(load)))
			}
			cpu1, err := procCPU(c.leader.Pid())
			if err != nil {
				b.Fatal(err)
			}
			busy = append(busy, window{t1, created})
			after = append(after, window{created, t2})
			res.busyTime += created.Sub(t1)
			res.leaderCPU += cpu1 - cpu0
			idleLen = max(idleLen, created.Sub(t1))
		}
		if err := waitIdle(); err != nil {
			b.Fatal(errors.Join(err, stopLoad(load)))
		}
		samples, err := load.stop()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("round %d: slowest writes during the snapshots: %s", rounds+1, slowest(samples, 5, busy...))
		busyLat, idleLat, shortLat := latencies(samples, busy...), latencies(samples, idle...), latencies(samples, short...)
		res.addRound(samples, idle, busy)
		if s99 := latency.Quantile(shortLat, 0.99); s99 > 0 {
			shortRatios = append(shortRatios, float64(latency.Quantile(busyLat, 0.99))/float64(s99))
		}
		idleAll = append(idleAll, idleLat...)
		idleShort = append(idleShort, shortLat...)
		compact = append(compact, latencies(samples, after...)...)
		rounds++
	}
	if len(compact) > 0 {
		b.ReportMetric(latency.Ms(latency.Quantile(compact, 0.99)), "compact_p99_ms")
		b.ReportMetric(latency.Ms(latency.Quantile(compact, 1)), "compact_max_ms")
		b.Logf("retention and log compaction after the snapshots: write p99 %v, max %v (%d samples)",
			latency.Quantile(compact, 0.99), latency.Quantile(compact, 1), len(compact))
	}
	if len(shortRatios) > 0 && len(idleShort) > 0 {
		long99, short99 := latency.Quantile(idleAll, 0.99), latency.Quantile(idleShort, 0.99)
		b.ReportMetric(upperMedian(shortRatios), "x_vs_idle5s")
		b.ReportMetric(float64(long99)/float64(short99), "idle_long_vs_5s")
		b.Logf("against the first 5 s of each idle window only: per-round ratios %.2f; idle p99 over whole windows %v, over their first 5 s %v",
			shortRatios, long99, short99)
	}
	res.report(b, 1.25, "a snapshot is taken")
}

// slowest describes the n slowest of the samples sent inside ws: when each was sent (UTC, to match the processes'
// logs) and how long it took.
func slowest(samples []sample, n int, ws ...window) string {
	var in []sample
	for _, s := range samples {
		if inWindows(s.at, ws) {
			in = append(in, s)
		}
	}
	slices.SortFunc(in, func(a, b sample) int { return cmp.Compare(b.lat, a.lat) })
	parts := make([]string, 0, n)
	for _, s := range in[:min(n, len(in))] {
		parts = append(parts, fmt.Sprintf("%s %v", s.at.UTC().Format("15:04:05.000"), s.lat.Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// lastBetween returns the latest of ts inside [from, to], or the zero time.
func lastBetween(ts []time.Time, from, to time.Time) time.Time {
	var last time.Time
	for _, t := range ts {
		if !t.Before(from) && !t.After(to) && t.After(last) {
			last = t
		}
	}
	return last
}

// idleWithIO is idleFor that also returns the machine's I/O stall time during the window (see ioStall), and false
// where the kernel does not report it.
func idleWithIO(ctx context.Context, settle, d time.Duration) (window, time.Duration, bool, error) {
	if err := ctxtime.Sleep(ctx, settle); err != nil {
		return window{}, 0, false, err
	}
	io0, ok := ioStall()
	w, err := idleFor(ctx, 0, d)
	io1, _ := ioStall()
	return w, io1 - io0, ok, err
}

// idleFor waits settle, then returns the window of the next d (after waiting it out).
func idleFor(ctx context.Context, settle, d time.Duration) (window, error) {
	if err := ctxtime.Sleep(ctx, settle); err != nil {
		return window{}, err
	}
	from := time.Now()
	if err := ctxtime.Sleep(ctx, d); err != nil {
		return window{}, err
	}
	return window{from, time.Now()}, nil
}
