#!/usr/bin/env bash
# Runs every replikv benchmark (see docs/benchmarks.md) and prints a summary of the ratios against their goals.
#
#   scripts/bench.sh            # core (internal/node) and onboarding (tests/bench, real binaries + Redis)
#   BENCH_ONLY=core scripts/bench.sh
#   BENCH_ONLY=onboarding scripts/bench.sh
#   BENCH_ONLY=summary scripts/bench.sh   # only the summary of the outputs already in BENCH_OUT
#
# Knobs (environment): BENCHTIME_CORE (default 3x), BENCHTIME_ONBOARDING (default 3x), BENCH_KEYS (default
# 1000000), BENCH_RSS_KEYS (default 2200000), BENCH_OUT (default build/bench). Raw outputs, the machine description
# and the CPU profile of an in-process restore land in BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BENCHTIME_CORE=${BENCHTIME_CORE:-3x}
BENCHTIME_ONBOARDING=${BENCHTIME_ONBOARDING:-3x}
BENCH_KEYS=${BENCH_KEYS:-1000000}
BENCH_RSS_KEYS=${BENCH_RSS_KEYS:-2200000}
BENCH_ONLY=${BENCH_ONLY:-all}
OUT=${BENCH_OUT:-build/bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ "$BENCH_ONLY" != summary ]; then
	rm -f "$OUT/core.txt" "$OUT/onboarding.txt" "$OUT/summary.txt" "$OUT/restore.cpu.pprof" "$OUT/restore.pprof.txt"
fi

if [ "$BENCH_ONLY" != core ] && [ "$BENCH_ONLY" != summary ] &&
	! { command -v redis-server && command -v redis-benchmark; } >/dev/null 2>&1; then
	echo "bench: installing redis-server and redis-tools (Debian packages) for the Redis comparisons"
	SUDO=
	if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi

[ "$BENCH_ONLY" = summary ] || {
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpus:    $(nproc)"
	echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "go:      $($GO version)"
	echo "redis:   $(redis-server --version 2>/dev/null | awk '{print $3}' || echo none)"
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the run)"
} | tee "$OUT/machine.txt"

if [ "$BENCH_ONLY" = all ] || [ "$BENCH_ONLY" = core ]; then
	echo "bench: core benchmarks (internal/node, -benchtime $BENCHTIME_CORE)"
	$GO test -run '^$' -bench . -benchtime "$BENCHTIME_CORE" -timeout 30m ./internal/node | tee "$OUT/core.txt"
	echo "bench: what catch-up reads cost the log's writer (internal/journal, -benchtime $BENCHTIME_CORE)"
	$GO test -run '^$' -bench 'PublishP99_CatchUpReaders' -benchtime "$BENCHTIME_CORE" -timeout 30m ./internal/journal |
		tee -a "$OUT/core.txt"
fi
if [ "$BENCH_ONLY" = all ] || [ "$BENCH_ONLY" = onboarding ]; then
	echo "bench: onboarding benchmarks (tests/bench, real binaries, -benchtime $BENCHTIME_ONBOARDING)"
	$GO test -v -tags bench -run '^$' -bench . -benchtime "$BENCHTIME_ONBOARDING" -timeout 90m ./tests/bench \
		-args -bench.keys="$BENCH_KEYS" -bench.rsskeys="$BENCH_RSS_KEYS" \
		-bench.profile="$OUT/restore.cpu.pprof" | tee "$OUT/onboarding.txt"
	if [ -s "$OUT/restore.cpu.pprof" ]; then
		$GO tool pprof -top -nodecount=30 "$OUT/restore.cpu.pprof" >"$OUT/restore.pprof.txt" 2>/dev/null || true
	fi
fi
[ "$BENCH_ONLY" = summary ] || echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (after the run)" | tee -a "$OUT/machine.txt"

# Summary: each goal with the measured ratio. "ge" goals need value >= goal, "le" goals value <= goal.
results=()
for f in "$OUT/core.txt" "$OUT/onboarding.txt"; do
	if [ -s "$f" ]; then results+=("$f"); fi
done
cat "${results[@]}" /dev/null | awk '
function metric(unit,    i) {
	for (i = 3; i < NF; i += 2) if ($(i + 1) == unit) return $i
	return ""
}
function row(what, unit, cmp, goal,    v, ok) {
	v = metric(unit)
	if (v == "") return
	ok = (cmp == "ge") ? (v + 0 >= goal) : (v + 0 <= goal)
	printf "%-58s %-22s %10.3f   goal %s %-6s %s\n", what, unit, v, (cmp == "ge" ? ">=" : "<="), goal, (ok ? "met" : "NOT MET")
}
# p99row is the row of a "leader write p99 while 3 followers onboard" variant, with its two p99s.
function p99row(what) {
	row(what, "x_vs_idle", "le", 1.1)
	info("  idle p99 (ms)", "idle_p99_ms"); info("  onboarding p99 (ms)", "busy_p99_ms")
}
function info(what, unit,    v) {
	v = metric(unit)
	if (v != "") printf "%-58s %-22s %10.3f\n", what, unit, v
}
/^BenchmarkLeader_Ingest/ {
	row("1 leader ingest vs no-op PUT (64 clients, 128 B)", "x_vs_noop", "ge", 0.8)
	info("  leader writes/s", "leader_writes/s"); info("  no-op writes/s", "noop_writes/s")
	info("2 leader ingest vs raw JetStream async publish", "x_vs_jetstream")
	info("  JetStream msgs/s", "jetstream_msgs/s")
}
/^BenchmarkFollower_Apply/ {
	row("3 follower apply vs bare ordered consumer (500k)", "x_vs_consumer", "ge", 0.8)
	info("  follower entries/s", "follower_entries/s"); info("  consumer entries/s", "consumer_entries/s")
}
/^BenchmarkPublishP99_CatchUpReaders\/Log/ {
	info("5 raw: publish p99, 3 readers of the log vs idle", "x_vs_idle")
}
/^BenchmarkPublishP99_CatchUpReaders\/Mirror/ {
	info("5 raw: publish p99, 3 readers of its mirror vs idle", "x_vs_idle")
}
/^BenchmarkOnboarding\/TimeToReady/ {
	row("4 follower time to ready vs Redis full sync", "x_vs_redis", "le", 1.0)
	info("  follower ready (s)", "follower_ready_s"); info("  redis full sync (s)", "redis_sync_s")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowers-/ {
	p99row("5 leader write p99, 3 followers onboarding vs idle")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersLogServer-/ {
	p99row("5 the same, log on a nats-server of its own (CPU 1)")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersMirror/ {
	p99row("5 pinned as the first, followers read a mirror of the log")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersLogServerMirror/ {
	p99row("5 log on a nats-server, followers read its mirror")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersCluster-/ {
	p99row("5 log on a 2-server cluster (CPU 0 / CPU 1), no mirror")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersClusterMirror/ {
	p99row("5 the same, followers read a mirror on the other server")
	info("  I/O stall busy (%)", "busy_io_stall_%"); info("  I/O stall idle (%)", "idle_io_stall_%")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersNiced/ {
	info("  the same, followers at nice 19 next to the leader", "x_vs_idle")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeFollowersSharedCPU/ {
	info("  the same, followers on the leader CPUs too", "x_vs_idle")
}
/^BenchmarkOnboarding\/LeaderP99\/ThreeBareConsumers/ {
	info("  control: 3 bare consumers draining the log vs idle", "x_vs_idle")
}
/^BenchmarkOnboarding\/LeaderP99\/Snapshot/ {
	row("6 leader write p99 during a snapshot vs idle", "x_vs_idle", "le", 1.25)
	info("  idle p99 (ms)", "idle_p99_ms"); info("  snapshot p99 (ms)", "busy_p99_ms")
	info("  retention + log compaction after it: p99 (ms)", "compact_p99_ms")
	info("  vs the first 5 s of each idle window (earlier design)", "x_vs_idle5s")
	info("  control: whole idle windows vs their first 5 s", "idle_long_vs_5s")
}
/^BenchmarkLeader_StoreStalls/ {
	info("8 leader on one CPU: longest write during store work, GOMAXPROCS 2 vs 1", "default_vs_gomaxprocs1_max")
	info("  GOMAXPROCS 2 (the default): longest (ms)", "default_store_max_ms")
	info("  GOMAXPROCS 1: longest (ms)", "gomaxprocs1_store_max_ms")
	info("  CPU per 1,000 writes, GOMAXPROCS 2 (ms)", "default_cpu_ms_per_1k_writes")
	info("  CPU per 1,000 writes, GOMAXPROCS 1 (ms)", "gomaxprocs1_cpu_ms_per_1k_writes")
}
/^BenchmarkLeader_TxnIngestVsRedis/ {
	row("9 txn ingest (100 x 128 B) vs redis-benchmark SET -P 100", "x_vs_redis_set", "ge", 0.5)
	info("  replikv keys/s", "txn_keys/s"); info("  redis SETs/s", "redis_set_keys/s")
	info("  vs the same with random keys (-r 100000000)", "x_vs_redis_set_r")
}
/^BenchmarkFollower_Get/ {
	row("10 follower GET vs no-op GET (64 clients, 128 B)", "x_vs_noop", "ge", 0.8)
	info("  follower reads/s", "follower_reads/s"); info("  no-op reads/s", "noop_reads/s")
	info("  strong GET vs no-op GET", "x_strong_vs_noop"); info("  strong reads/s", "strong_reads/s")
}
/^BenchmarkFollower_ReplicationLag/ {
	row("11 replication lag p99 at 50% of max ingest (ms)", "lag_p99_ms", "le", 10)
	info("  lag p50 (ms)", "lag_p50_ms"); info("  max writes/s", "max_writes/s"); info("  paced writes/s", "paced_writes/s")
	info("  follower metric p99, bucket bound (ms)", "metric_p99_le_ms")
}
/^BenchmarkFollower_RestoreRSS/ {
	row("7 follower peak RSS restoring the >= 1 GB snapshot (MiB)", "full_peak_rss_MiB", "le", 256)
	info("  at half the size (MiB)", "half_peak_rss_MiB")
	row("  growth full / half", "growth_x", "le", 1.1)
}
' | tee "$OUT/summary.txt"
