// Package bench holds replikv's onboarding benchmarks. They start the real binaries (built by TestMain from
// ./cmd/leader and ./cmd/follower), a Redis pair for the full-sync comparison, and measure on the same machine in
// the same run:
//
//   - BenchmarkOnboarding/TimeToReady: a new follower's time to ready under a live write load, split by stage next
//     to each stage's raw ceiling, against a Redis replica's full sync (REPLICAOF) of the same keys;
//   - BenchmarkOnboarding/LeaderP99/ThreeFollowers: the leader's write p99 while three followers onboard at once,
//     against its idle p99, with the leader (its own, started under taskset on CPU 0) and the followers (the other
//     CPUs) standing for separate machines;
//   - BenchmarkOnboarding/LeaderP99/ThreeFollowersClusterMirror and ThreeFollowersLogApart: the same with the log on
//     a two-server JetStream cluster and the followers reading its catch-up mirror on the second server; in the first
//     the log's server shares the leader's CPU, in the second it has priority on the followers' CPUs (nice -10,
//     needs root), so that the leader, the log's server and the catch-up side each stand for machines of their own;
//   - BenchmarkOnboarding/LeaderP99/ThreeFollowersClusterMirrorIdle: ThreeFollowersClusterMirror with the catch-up
//     side (the second server and the followers) under the SCHED_IDLE policy (chrt --idle 0) instead of nice 19, so
//     that it runs on its CPUs only when nothing else wants them;
//   - BenchmarkOnboarding/LeaderP99/ThreeFollowersNiced: the same on the main leader, which keeps every CPU, with the
//     followers on CPUs 1..n-1 at nice 19;
//   - BenchmarkOnboarding/LeaderP99/ThreeFollowersSharedCPU: the same on one host, nothing pinned;
//   - BenchmarkOnboarding/LeaderP99/ThreeBareConsumers: the control experiment, with three bare ordered consumers
//     draining the same log entries, unpaced, instead of followers;
//   - BenchmarkOnboarding/LeaderP99/Snapshot: the leader's write p99 while it takes and uploads a snapshot, against
//     its idle p99, and apart from it the p99 during retention and log compaction;
//   - BenchmarkCatchUpPacing: the follower's --catchup-pacing policies, adaptive against fixed, with three followers
//     onboarding at once next to a leader at half its maximum ingest: the leader's write p99 against idle and the
//     followers' time to ready, each the median of the rounds (A/B in alternating order, in one run);
//   - BenchmarkLeader_StoreStalls: the leader's write stalls on one CPU while its store flushes and compacts, at
//     GOMAXPROCS=1 against the binaries' default of two processors;
//   - BenchmarkFollower_RestoreRSS: the follower process's peak RSS while restoring a snapshot of at least 1 GB and
//     one of half that size;
//   - BenchmarkLeader_TxnIngestVsRedis: transaction ingest (100 puts of 128 B per request, 16 connections) in keys/s,
//     against redis-benchmark -t set -P 100 -c 16 -d 128 on a redis-server of its own.
//
// They need redis-server, redis-benchmark, taskset and chrt on PATH (scripts/bench.sh installs Redis's two
// packages; taskset and chrt are in util-linux) and take minutes. Run them with
//
//	go test -tags bench -run '^$' -bench . -benchtime 1x -timeout 60m ./tests/bench
//
// Flags (after -args): -bench.keys (keys of the onboarding benchmarks, default 1,000,000), -bench.rsskeys
// (keys of the larger RSS snapshot, default 2,200,000), -bench.profile (a file for the CPU profile of an in-process
// restore of the onboarding snapshot).
package bench
