//go:build bench

package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/journal"
)

// BenchmarkOnboarding loads -bench.keys keys (default 1,000,000, 128-byte values) into a leader binary with its
// embedded NATS server and a local snapshot directory, then runs the sub-benchmarks on it. Every comparison is made in
// the same run; see each sub-benchmark for its ratio and goal.
func BenchmarkOnboarding(b *testing.B) {
	c := startCluster(b, *flagKeys)
	b.Run("TimeToReady", func(b *testing.B) { benchTimeToReady(b, c) })
	b.Run("LeaderP99/ThreeFollowers", func(b *testing.B) { benchP99Followers(b, c) })
	b.Run("LeaderP99/ThreeBareConsumers", func(b *testing.B) { benchP99BareConsumers(b, c) })
	b.Run("LeaderP99/Snapshot", func(b *testing.B) { benchP99Snapshot(b, c) })
}

// onboarding is one follower's onboarding, split by stage.
type onboarding struct {
	total    time.Duration // exec to ready
	startup  time.Duration // exec to restoring (process start, store, NATS, manifest list)
	restore  time.Duration // the follower's own "snapshot restored" took: download, verify, decompress, load, install
	catchUp  time.Duration // end of restore to ready: reopen, subscribe, drain the log
	entries  uint64        // log entries applied during catch-up
	snapSeq  uint64
	peakRSS  int64 // KiB
	snapSize int64
}

// benchTimeToReady measures a new follower's time to ready (exec to state ready, /v1/status polled every 20 ms)
// under a live write load of 2,000 writes/s, from a fresh snapshot in a local directory, against a fresh Redis
// replica's full sync (REPLICAOF, under the same load on the master) of the same keys: x_vs_redis = follower / the
// faster of Redis's diskless and disk-based sync, goal <= 1.0. Each stage of the follower is reported next to its
// raw ceiling measured alone over the same snapshot file, and next to the follower's restore path run in-process.
func benchTimeToReady(b *testing.B, c *cluster) {
	ctx := b.Context()
	value := benchValue(valueSize)
	redisDir := b.TempDir()
	master := startRedis(b, redisDir, "redis-master")
	start := time.Now()
	if err := loadRedis(ctx, master.addr, c.keys, keyName, value); err != nil {
		b.Fatal(err)
	}
	b.Logf("redis: loaded %d keys in %v (pipelined)", c.keys, time.Since(start).Round(time.Millisecond))

	var (
		sum                onboarding
		diskless, disk     time.Duration
		ceil               stageCeilings
		consume, inProcess time.Duration
		rounds             int
		profile            = *flagProfile
	)
	for b.Loop() {
		m, err := c.ln.snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		o, err := c.onboard(b, fmt.Sprintf("ttr-%d", rounds))
		if err != nil {
			b.Fatal(err)
		}
		if o.snapSeq != m.Seq {
			b.Fatalf("follower restored snapshot %d, want the newest %d", o.snapSeq, m.Seq)
		}
		o.snapSize = m.Bytes
		sum = addOnboarding(sum, o)

		for _, mode := range []string{"yes", "no"} {
			d, err := redisSyncUnderLoad(b, master, mode, redisDir, fmt.Sprintf("redis-replica-%d-%s", rounds, mode), c.keys)
			if err != nil {
				b.Fatal(err)
			}
			if mode == "yes" {
				diskless += d
			} else {
				disk += d
			}
		}

		// The ceilings, alone on an idle machine (no load, no follower).
		cl, err := measureStages(ctx, snapshotDataPath(c.snapDir, stream, m.Seq), c.dir, m.Seq)
		if err != nil {
			b.Fatal(err)
		}
		if uint64(cl.keys) != m.Keys || cl.keys < c.keys {
			b.Fatalf("snapshot decodes to %d keys, manifest says %d, want at least %d", cl.keys, m.Keys, c.keys)
		}
		ceil = addCeilings(ceil, cl)
		if o.entries > 0 {
			d, err := journal.ConsumeCeiling(ctx, c.natsURL, stream, int(o.entries))
			if err != nil {
				b.Fatal(err)
			}
			consume += d
		}
		d, err := inProcessRestore(ctx, c.snapDir, stream, c.dir, profile)
		if err != nil {
			b.Fatal(err)
		}
		profile = "" // profile the first round only
		inProcess += d
		rounds++
	}
	n := float64(rounds)
	avg := func(d time.Duration) float64 { return d.Seconds() / n }
	redisBest := min(diskless, disk)
	b.ReportMetric(avg(sum.total), "follower_ready_s")
	b.ReportMetric(avg(redisBest), "redis_sync_s")
	b.ReportMetric(sum.total.Seconds()/redisBest.Seconds(), "x_vs_redis")
	b.ReportMetric(avg(diskless), "redis_diskless_s")
	b.ReportMetric(avg(disk), "redis_disk_s")
	b.ReportMetric(avg(sum.startup), "stage_startup_s")
	b.ReportMetric(avg(sum.restore), "stage_restore_s")
	b.ReportMetric(avg(sum.catchUp), "stage_catchup_s")
	b.ReportMetric(float64(sum.entries)/n, "catchup_entries")
	b.ReportMetric(avg(ceil.read), "ceil_read_s")
	b.ReportMetric(avg(ceil.sha256), "ceil_sha256_s")
	b.ReportMetric(avg(ceil.zstd), "ceil_zstd_s")
	b.ReportMetric(avg(ceil.decode), "ceil_decode_s")
	b.ReportMetric(avg(ceil.digest), "ceil_digest_s")
	b.ReportMetric(avg(ceil.load), "ceil_load_s")
	b.ReportMetric(avg(consume), "ceil_consume_s")
	b.ReportMetric(avg(inProcess), "inproc_restore_s")
	b.ReportMetric(float64(sum.snapSize)/n/(1<<20), "snapshot_MiB")
	b.ReportMetric(float64(sum.peakRSS)/n/1024, "follower_peak_rss_MiB")
	b.Logf("time to ready %.2fs (startup %.2fs, restore %.2fs, catch-up %.2fs for %.0f entries) vs redis full sync %.2fs (diskless %.2fs, disk %.2fs): %.2fx",
		avg(sum.total), avg(sum.startup), avg(sum.restore), avg(sum.catchUp), float64(sum.entries)/n, avg(redisBest),
		avg(diskless), avg(disk), sum.total.Seconds()/redisBest.Seconds())
	b.Logf("ceilings: read %.3fs, sha256 %.3fs, zstd %.3fs, zstd+decode %.3fs, digest %.3fs, load %.3fs, consume %.3fs; in-process restore %.3fs",
		avg(ceil.read), avg(ceil.sha256), avg(ceil.zstd), avg(ceil.decode), avg(ceil.digest), avg(ceil.load),
		avg(consume), avg(inProcess))
}

func addOnboarding(a, o onboarding) onboarding {
	a.total += o.total
	a.startup += o.startup
	a.restore += o.restore
	a.catchUp += o.catchUp
	a.entries += o.entries
	a.peakRSS += o.peakRSS
	a.snapSize += o.snapSize
	a.snapSeq = o.snapSeq
	return a
}

func addCeilings(a, c stageCeilings) stageCeilings {
	a.read += c.read
	a.sha256 += c.sha256
	a.zstd += c.zstd
	a.decode += c.decode
	a.digest += c.digest
	a.load += c.load
	a.keys = c.keys
	return a
}

// onboard starts the live load, then a follower with empty storage, and measures its onboarding by stage.
func (c *cluster) onboard(b *testing.B, name string) (onboarding, error) {
	ctx := b.Context()
	load, err := c.startLoad(ctx, "live-"+name)
	if err != nil {
		return onboarding{}, err
	}
	if err := sleepCtx(ctx, time.Second); err != nil { // steady state first
		return onboarding{}, errors.Join(err, stopLoad(load))
	}
	f := c.launchFollower(b, name)
	times, last, err := watchUntilReady(ctx, f.node(), readyTimeout)
	loadErr := stopLoad(load)
	if err != nil {
		return onboarding{}, errors.Join(err, loadErr)
	}
	if loadErr != nil {
		return onboarding{}, loadErr
	}
	var o onboarding
	o.total = times["ready"].Sub(f.proc.started)
	restoring, ok := times["restoring"]
	if !ok {
		return o, fmt.Errorf("bench: follower %s never seen restoring (states %v)", name, keys(times))
	}
	o.startup = restoring.Sub(f.proc.started)
	took, ok := f.proc.field(msgSnapshotRestore, "took")
	secs, isNum := took.(float64)
	if !ok || !isNum {
		return o, fmt.Errorf("bench: follower %s did not log %q with took", name, msgSnapshotRestore)
	}
	o.restore = time.Duration(secs * float64(time.Second))
	o.catchUp = times["ready"].Sub(restoring) - o.restore
	ready := last["ready"]
	o.snapSeq = ready.SnapshotSeq
	o.entries = ready.AppliedSeq - ready.SnapshotSeq
	if o.peakRSS, err = procStatus(f.proc.pid(), "VmHWM"); err != nil {
		return o, err
	}
	f.remove()
	return o, nil
}

// stopLoad stops a live load and reports its first write error.
func stopLoad(l *pacedLoad) error {
	_, err := l.stop()
	return err
}

func keys(m stateTimes) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// redisSyncUnderLoad sets the master's repl-diskless-sync to mode, starts a fresh replica, runs the same live write
// load on the master as on the leader, and measures the replica's full sync.
func redisSyncUnderLoad(b *testing.B, master *redisServer, mode, dir, name string, minKeys int) (time.Duration, error) {
	ctx := b.Context()
	mc, err := dialRedis(ctx, master.addr)
	if err != nil {
		return 0, err
	}
	_, err = mc.do("CONFIG", "SET", "repl-diskless-sync", mode)
	mc.close()
	if err != nil {
		return 0, err
	}
	replica := startRedis(b, dir, name)
	defer replica.proc.stop()
	ws := make([]writer, 0, liveWriters)
	for range liveWriters {
		rc, err := dialRedis(ctx, master.addr)
		if err != nil {
			for _, w := range ws {
				w.close()
			}
			return 0, err
		}
		ws = append(ws, redisWriter{c: rc})
	}
	load := startPacedLoad(ctx, ws, livePerWriter, "live-"+name, benchValue(valueSize))
	if err := sleepCtx(ctx, time.Second); err != nil {
		return 0, errors.Join(err, stopLoad(load))
	}
	d, err := redisFullSync(ctx, replica, master, minKeys)
	return d, errors.Join(err, stopLoad(load))
}

// p99Result accumulates latencies of one p99 benchmark.
type p99Result struct {
	idle, busy []time.Duration
	busyTime   time.Duration
	leaderCPU  time.Duration // CPU the leader used during the busy windows
	otherCPU   time.Duration // CPU the followers used during the busy windows
}

func (r *p99Result) report(b *testing.B, goal float64, what string) {
	if len(r.idle) == 0 || len(r.busy) == 0 {
		b.Fatalf("no samples (idle %d, busy %d)", len(r.idle), len(r.busy))
	}
	idle99, busy99 := quantile(r.idle, 0.99), quantile(r.busy, 0.99)
	ratio := float64(busy99) / float64(idle99)
	b.ReportMetric(ms(idle99), "idle_p99_ms")
	b.ReportMetric(ms(busy99), "busy_p99_ms")
	b.ReportMetric(ratio, "x_vs_idle")
	b.ReportMetric(ms(quantile(r.idle, 0.5)), "idle_p50_ms")
	b.ReportMetric(ms(quantile(r.busy, 0.5)), "busy_p50_ms")
	b.ReportMetric(ms(quantile(r.busy, 0.999)), "busy_p999_ms")
	b.ReportMetric(r.busyTime.Seconds(), "busy_s")
	b.ReportMetric(100*r.leaderCPU.Seconds()/r.busyTime.Seconds(), "leader_cpu_%")
	if r.otherCPU > 0 {
		b.ReportMetric(100*r.otherCPU.Seconds()/r.busyTime.Seconds(), "followers_cpu_%")
	}
	b.Logf("leader write p99 %v while %s vs %v idle: %.2fx (goal <= %.2f, 0 = none); p50 %v vs %v; %d busy and %d idle samples",
		busy99, what, idle99, ratio, goal, quantile(r.busy, 0.5), quantile(r.idle, 0.5), len(r.busy), len(r.idle))
}

// benchP99Followers measures the leader's write latency (live load of 2,000 writes/s, open loop) while three
// followers with empty storage onboard at once, from their start until all three are ready, against idle windows
// of 10 s before and after in the same run: x_vs_idle = p99 onboarding / p99 idle, goal <= 1.1. On this single
// machine the followers compete with the leader for the same two cores; followers_cpu_% shows how much.
func benchP99Followers(b *testing.B, c *cluster) {
	var res p99Result
	rounds := 0
	for b.Loop() {
		c.p99Under(b, fmt.Sprintf("p99f-%d", rounds), &res, func() (time.Duration, error) {
			fs := make([]*follower, 3)
			for i := range fs { // launch all three before waiting for any
				fs[i] = c.launchFollower(b, fmt.Sprintf("p99f-%d-%d", rounds, i))
			}
			var wg sync.WaitGroup
			errs := make([]error, len(fs))
			for i, f := range fs {
				n := f.node() // on this goroutine: it may fail the benchmark
				wg.Go(func() { errs[i] = waitReady(b.Context(), n, readyTimeout) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return 0, err
			}
			var cpu time.Duration
			for _, f := range fs {
				d, err := procCPU(f.proc.pid())
				if err != nil {
					return 0, err
				}
				cpu += d
				f.remove()
			}
			return cpu, nil
		})
		rounds++
	}
	res.report(b, 1.1, "3 followers onboard")
}

// benchP99BareConsumers is the control experiment of benchP99Followers: instead of three followers, three bare
// ordered consumers (journal.ConsumeCeiling, in the benchmark process) drain the log entries written since the
// newest snapshot, as the followers' catch-up does, from the NATS server embedded in the leader. Same load, same
// idle windows, same ratio. No goal: it shows how much of the followers' effect is the log reads alone.
func benchP99BareConsumers(b *testing.B, c *cluster) {
	var res p99Result
	rounds := 0
	for b.Loop() {
		c.p99Under(b, fmt.Sprintf("p99c-%d", rounds), &res, func() (time.Duration, error) {
			st, err := c.ln.status(b.Context())
			if err != nil {
				return 0, err
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
			return 0, errors.Join(errs...)
		})
		rounds++
	}
	res.report(b, 0, "3 bare consumers drain the log")
}

// p99Under takes a fresh snapshot, starts the live load, and records an idle window of 10 s, the busy window while
// disturb runs, and another idle window of 10 s. disturb returns the CPU time used by the processes it started.
func (c *cluster) p99Under(b *testing.B, name string, res *p99Result, disturb func() (time.Duration, error)) {
	ctx := b.Context()
	const idleWindow = 10 * time.Second
	if _, err := c.ln.snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	load, err := c.startLoad(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	idleA, err := idleFor(ctx, 2*time.Second, idleWindow)
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	leaderCPU0, err := procCPU(c.leader.pid())
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	t1 := time.Now()
	otherCPU, err := disturb()
	t2 := time.Now()
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	leaderCPU1, err := procCPU(c.leader.pid())
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	idleB, err := idleFor(ctx, 2*time.Second, idleWindow)
	if err != nil {
		b.Fatal(errors.Join(err, stopLoad(load)))
	}
	samples, err := load.stop()
	if err != nil {
		b.Fatal(err)
	}
	busy := window{t1, t2}
	res.idle = append(res.idle, latencies(samples, idleA, idleB)...)
	res.busy = append(res.busy, latencies(samples, busy)...)
	res.busyTime += busy.dur()
	res.leaderCPU += leaderCPU1 - leaderCPU0
	res.otherCPU += otherCPU
}

// benchP99Snapshot measures the leader's write latency (live load of 2,000 writes/s, open loop) while it takes and
// uploads a snapshot (POST /v1/snapshots, three times), against idle windows of 5 s between them in the same run:
// x_vs_idle = p99 during snapshots / p99 idle, goal <= 1.25.
func benchP99Snapshot(b *testing.B, c *cluster) {
	ctx := b.Context()
	const (
		snapshots  = 3
		idleWindow = 5 * time.Second
	)
	var res p99Result
	rounds := 0
	for b.Loop() {
		load, err := c.startLoad(ctx, fmt.Sprintf("p99s-%d", rounds))
		if err != nil {
			b.Fatal(err)
		}
		var idle, busy []window
		for range snapshots {
			w, err := idleFor(ctx, time.Second, idleWindow)
			if err != nil {
				b.Fatal(errors.Join(err, stopLoad(load)))
			}
			idle = append(idle, w)
			cpu0, err := procCPU(c.leader.pid())
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := c.ln.snapshot(ctx); err != nil {
				b.Fatal(errors.Join(err, stopLoad(load)))
			}
			w = window{t1, time.Now()}
			cpu1, err := procCPU(c.leader.pid())
			if err != nil {
				b.Fatal(err)
			}
			busy = append(busy, w)
			res.busyTime += w.dur()
			res.leaderCPU += cpu1 - cpu0
		}
		w, err := idleFor(ctx, time.Second, idleWindow)
		if err != nil {
			b.Fatal(errors.Join(err, stopLoad(load)))
		}
		idle = append(idle, w)
		samples, err := load.stop()
		if err != nil {
			b.Fatal(err)
		}
		res.idle = append(res.idle, latencies(samples, idle...)...)
		res.busy = append(res.busy, latencies(samples, busy...)...)
		rounds++
	}
	res.report(b, 1.25, "a snapshot is taken")
}

// idleFor waits settle, then returns the window of the next d (after waiting it out).
func idleFor(ctx context.Context, settle, d time.Duration) (window, error) {
	if err := sleepCtx(ctx, settle); err != nil {
		return window{}, err
	}
	from := time.Now()
	if err := sleepCtx(ctx, d); err != nil {
		return window{}, err
	}
	return window{from, time.Now()}, nil
}
