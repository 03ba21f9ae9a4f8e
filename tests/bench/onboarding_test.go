//go:build bench

package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/journal"
)

// BenchmarkOnboarding loads -bench.keys keys (default 1,000,000, random 128-byte values) into a leader binary with its
// embedded NATS server and a local snapshot directory, then runs the sub-benchmarks on it. Every comparison is made in
// the same run; see each sub-benchmark for its ratio and goal.
func BenchmarkOnboarding(b *testing.B) {
	c := startCluster(b, *flagKeys, nil, "")
	b.Run("TimeToReady", func(b *testing.B) { benchTimeToReady(b, c) })
	b.Run("LeaderP99/ThreeFollowers", func(b *testing.B) { benchP99FollowersSeparate(b) })
	b.Run("LeaderP99/ThreeFollowersLogServer", func(b *testing.B) { benchP99FollowersLogServer(b) })
	b.Run("LeaderP99/ThreeFollowersMirror", func(b *testing.B) { benchP99FollowersSeparate(b, "--catchup-mirror") })
	b.Run("LeaderP99/ThreeFollowersLogServerMirror", func(b *testing.B) {
		benchP99FollowersLogServer(b, "--catchup-mirror")
	})
	b.Run("LeaderP99/ThreeFollowersCluster", func(b *testing.B) { benchP99FollowersCluster(b, false) })
	b.Run("LeaderP99/ThreeFollowersClusterMirror", func(b *testing.B) { benchP99FollowersCluster(b, true) })
	b.Run("LeaderP99/ThreeFollowersClusterMirrorIdle", func(b *testing.B) { benchP99FollowersClusterIdle(b) })
	b.Run("LeaderP99/ThreeFollowersLogApart", func(b *testing.B) { benchP99FollowersLogApart(b) })
	b.Run("LeaderP99/ThreeFollowersNiced", func(b *testing.B) { benchP99FollowersNiced(b, c) })
	b.Run("LeaderP99/ThreeFollowersSharedCPU", func(b *testing.B) { benchP99Followers(b, c, nil) })
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
	redisDir := b.TempDir()
	master := startRedis(b, redisDir, "redis-master")
	start := time.Now()
	if err := loadRedis(ctx, master.addr, c.keys, keyName, valueSize); err != nil {
		b.Fatal(err)
	}
	b.Logf("redis: loaded %d keys in %v (pipelined)", c.keys, time.Since(start).Round(time.Millisecond))

	var (
		sum                onboarding
		diskless, disk     time.Duration
		ceil               stageCeilings
		consume, inProcess time.Duration
		inProcessLoaded    time.Duration
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
		// The same in-process restore under the live load, as the follower's restore ran.
		load, err := c.startLoad(ctx, fmt.Sprintf("inproc-%d", rounds))
		if err != nil {
			b.Fatal(err)
		}
		d, err = inProcessRestore(ctx, c.snapDir, stream, c.dir, "")
		if err = errors.Join(err, stopLoad(load)); err != nil {
			b.Fatal(err)
		}
		inProcessLoaded += d
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
	b.ReportMetric(avg(inProcessLoaded), "inproc_restore_loaded_s")
	b.ReportMetric(float64(sum.snapSize)/n/(1<<20), "snapshot_MiB")
	b.ReportMetric(float64(sum.peakRSS)/n/1024, "follower_peak_rss_MiB")
	b.Logf("time to ready %.2fs (startup %.2fs, restore %.2fs, catch-up %.2fs for %.0f entries) vs redis full sync %.2fs (diskless %.2fs, disk %.2fs): %.2fx",
		avg(sum.total), avg(sum.startup), avg(sum.restore), avg(sum.catchUp), float64(sum.entries)/n, avg(redisBest),
		avg(diskless), avg(disk), sum.total.Seconds()/redisBest.Seconds())
	b.Logf("ceilings: read %.3fs, sha256 %.3fs, zstd %.3fs, zstd+decode %.3fs, digest %.3fs, load %.3fs, consume %.3fs; in-process restore %.3fs idle, %.3fs under the live load",
		avg(ceil.read), avg(ceil.sha256), avg(ceil.zstd), avg(ceil.decode), avg(ceil.digest), avg(ceil.load),
		avg(consume), avg(inProcess), avg(inProcessLoaded))
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
	if err := ctxtime.Sleep(ctx, time.Second); err != nil { // steady state first
		return onboarding{}, errors.Join(err, stopLoad(load))
	}
	f := c.launchFollower(b, name, nil)
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
	if o.peakRSS, err = procStatus(f.proc.Pid(), "VmHWM"); err != nil {
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
	load, err := startLiveLoad(ctx, func(ctx context.Context) (writer, error) {
		rc, err := dialRedis(ctx, master.addr)
		if err != nil {
			return nil, err
		}
		return redisWriter{c: rc}, nil
	}, "live-"+name, valueSize)
	if err != nil {
		return 0, err
	}
	if err := ctxtime.Sleep(ctx, time.Second); err != nil {
		return 0, errors.Join(err, stopLoad(load))
	}
	d, err := redisFullSync(ctx, replica, master, minKeys)
	return d, errors.Join(err, stopLoad(load))
}
