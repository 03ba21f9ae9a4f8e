//go:build bench

package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/cli"
	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/proclog"
	"github.com/replikv/replikv/internal/testutil/latency"
)

var flagStoreFlushes = flag.Int("bench.storeflushes", 2,
	"memtable flushes of the leader's store each BenchmarkLeader_StoreStalls round waits for, per variant (about 30 s each)")

const (
	// msgStoreFlushed and msgStoreCompacted are the store's debug lines for a finished flush and compaction (with
	// "took", in seconds).
	msgStoreFlushed   = "store memtable flushed"
	msgStoreCompacted = "store compaction done"
	// storeStallValueSize makes the live load fill the store's 64 MiB memtable in about 30 s.
	storeStallValueSize = 1024
)

// BenchmarkLeader_StoreStalls measures what the leader's own store work costs its writes when the leader is limited
// to one CPU: the memtable flushes and the compactions after them, which pebble runs in the background. It compares,
// in the same run, the leader as it runs on one CPU (it raises GOMAXPROCS to cli.MinProcs) with the same leader at
// GOMAXPROCS=1, the runtime's own choice for one CPU and what the leader ran with before cli.MinProcs.
//
// Each round runs both variants, in turn (the order alternates from round to round): a fresh leader on CPU 0
// (embedded NATS server, --log-level debug so that the store logs each flush and compaction with its duration) takes
// the paced live load (2,000 writes/s over -bench.livewriters connections) with 1 KiB values until its store has
// flushed -bench.storeflushes times and 3 s more have passed; then it is stopped and its files removed and synced
// away before the other variant starts. A write scheduled while the store flushed or compacted is a store-work write,
// any other an idle one (it may still wait behind a stall that ended just before it). Reported per variant, pooled
// over the rounds: the p99 and the maximum of both kinds, and the leader's CPU time per 1,000 writes (what the second
// processor costs); and, as the result, the ratio of the two variants' store-work maxima
// (default_vs_gomaxprocs1_max). Needs two CPUs: the load generator runs on the others.
func BenchmarkLeader_StoreStalls(b *testing.B) {
	leaderCPUs, _, ok := cpuSplit()
	if !ok {
		b.Fatal("one CPU cannot keep the load generator off the leader's CPU")
	}
	variants := []struct {
		name string
		env  string // the leader's GOMAXPROCS setting; "" unsets it
	}{{"gomaxprocs1", "GOMAXPROCS=1"}, {"default", ""}}
	res := make([]storeStalls, len(variants))
	round := 0
	for b.Loop() {
		for k := range variants {
			i := (k + round) % len(variants)
			res[i].add(storeStallRound(b, leaderCPUs, variants[i].env))
		}
		round++
	}
	maxOf := make([]time.Duration, len(variants))
	for i, v := range variants {
		r := res[i]
		if len(r.store) == 0 || len(r.idle) == 0 {
			b.Fatalf("%s: no writes during store work (%d) or outside it (%d)", v.name, len(r.store), len(r.idle))
		}
		maxOf[i] = slices.Max(r.store)
		storeP99, idleP99 := latency.Quantile(r.store, 0.99), latency.Quantile(r.idle, 0.99)
		cpuPerK := latency.Ms(r.cpu) / float64(len(r.store)+len(r.idle)) * 1000
		b.ReportMetric(latency.Ms(storeP99), v.name+"_store_p99_ms")
		b.ReportMetric(latency.Ms(maxOf[i]), v.name+"_store_max_ms")
		b.ReportMetric(latency.Ms(idleP99), v.name+"_idle_p99_ms")
		b.ReportMetric(latency.Ms(slices.Max(r.idle)), v.name+"_idle_max_ms")
		b.ReportMetric(cpuPerK, v.name+"_cpu_ms_per_1k_writes")
		b.Logf("%s: %d writes during store work: p99 %v, max %v; %d idle: p99 %v, max %v; leader CPU %.0f ms per 1,000 writes",
			v.name, len(r.store), storeP99.Round(time.Microsecond), maxOf[i].Round(time.Microsecond), len(r.idle),
			idleP99.Round(time.Microsecond), slices.Max(r.idle).Round(time.Microsecond), cpuPerK)
	}
	b.ReportMetric(float64(maxOf[1])/float64(maxOf[0]), "default_vs_gomaxprocs1_max")
}

// storeStalls pools one variant's rounds: the latencies of the writes scheduled during the store's flushes and
// compactions and of the others, and the leader's CPU time under the load.
type storeStalls struct {
	store, idle []time.Duration
	cpu         time.Duration
}

func (s *storeStalls) add(r storeStalls) {
	s.store = append(s.store, r.store...)
	s.idle = append(s.idle, r.idle...)
	s.cpu += r.cpu
}

// storeStallRound runs one variant's round (see BenchmarkLeader_StoreStalls).
func storeStallRound(b *testing.B, cpus, env string) storeStalls {
	b.Helper()
	wrap := []string{"env", "-u", "GOMAXPROCS", "taskset", "-c", cpus}
	if env != "" {
		wrap = []string{"env", env, "taskset", "-c", cpus}
	}
	c := startCluster(b, 0, wrap, "", "--log-level", "debug")
	// The variants differ in what they claim: the default leader raised GOMAXPROCS, the other did not.
	to, raised := c.leader.field(cli.MsgProcsRaised, "to")
	if raised != (env == "") || (raised && to != float64(cli.MinProcs)) {
		b.Fatalf("leader with %q: logged %q: %v (to %v), want %v", env, cli.MsgProcsRaised, raised, to, env == "")
	}
	cpu0, err := procCPU(c.leader.Pid())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	load, err := c.startLoadSized(ctx, "stall", storeStallValueSize)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Duration(*flagStoreFlushes) * 2 * time.Minute)
	for len(c.leader.logged(msgStoreFlushed)) < *flagStoreFlushes && time.Now().Before(deadline) && err == nil {
		err = ctxtime.Sleep(ctx, 200*time.Millisecond)
	}
	if err == nil {
		err = ctxtime.Sleep(ctx, 3*time.Second) // the compactions a flush starts
	}
	samples, stopErr := load.stop()
	if err := errors.Join(err, stopErr); err != nil {
		b.Fatal(err)
	}
	cpu1, err := procCPU(c.leader.Pid())
	if err != nil {
		b.Fatal(err)
	}
	c.leader.stop()
	work, err := storeWork(c.leader.logPath)
	if err != nil {
		b.Fatal(err)
	}
	// The next variant must not pay for this one's dirty pages.
	if err := os.RemoveAll(c.dir); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	flushes := len(c.leader.logged(msgStoreFlushed))
	b.Logf("leader with %q: %d flushes and %d compactions in %d writes", env, flushes,
		len(c.leader.logged(msgStoreCompacted)), len(samples))
	if flushes < *flagStoreFlushes {
		b.Fatalf("leader with %q: %d memtable flushes, want %d", env, flushes, *flagStoreFlushes)
	}
	r := storeStalls{cpu: cpu1 - cpu0}
	for _, s := range samples {
		if inWindows(s.at, work) {
			r.store = append(r.store, s.lat)
		} else {
			r.idle = append(r.idle, s.lat)
		}
	}
	return r
}

// storeWork reads the windows of the store's flushes and compactions from a leader's log: each from its end ("ts")
// less its duration ("took") to its end.
func storeWork(logPath string) ([]window, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ws []window
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string  `json:"msg"`
			TS   string  `json:"ts"`
			Took float64 `json:"took"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || (line.Msg != msgStoreFlushed && line.Msg != msgStoreCompacted) {
			continue
		}
		end, err := time.Parse(proclog.TimeLayout, line.TS)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", logPath, line.TS, err)
		}
		ws = append(ws, window{from: end.Add(-time.Duration(line.Took * float64(time.Second))), to: end})
	}
	return ws, sc.Err()
}
