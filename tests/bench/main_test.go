//go:build bench

package bench

import (
	"flag"
	"fmt"
	"os"
	"testing"

	testbin "github.com/replikv/replikv/internal/testutil/binaries"
)

// Command-line knobs of the suite; read-only after flag parsing.
var (
	flagKeys = flag.Int("bench.keys", 1_000_000,
		"keys (random 128-byte values) the onboarding benchmarks load into the leader and into Redis")
	flagRSSKeys = flag.Int("bench.rsskeys", 2_200_000,
		"keys (480-byte random values) of the larger snapshot of BenchmarkFollower_RestoreRSS; the smaller has half")
	flagLeaderArgs = flag.String("bench.leaderargs", "",
		"extra flags for the leader binaries, space-separated (e.g. \"--snapshot-cpu 0.1\")")
	flagFollowerArgs = flag.String("bench.followerargs", "",
		"extra flags for the follower binaries, space-separated (e.g. \"--catchup-rate 4000\")")
	flagFollowerDir = flag.String("bench.followerdir", "",
		"if set, the onboarding benchmarks' followers keep their data under this directory (e.g. a tmpfs such as /dev/shm, standing for the followers' own disks) instead of beside the leader's")
	flagLogDir = flag.String("bench.logdir", "",
		"if set, the started processes write their logs into this directory (kept, named <process>-<start time>.log) instead of the benchmark's temporary directory")
	flagLiveWriters = flag.Int("bench.livewriters", 4,
		"connections of the live write load (2,000 writes/s in all); each waits for its write before it sends the next, so while writes take longer than <livewriters>/2,000 s a backlog builds up")
	flagWarmUp = flag.Bool("bench.warmup", true,
		"run one round of each follower p99 benchmark first and leave it out of the results (false: round 1 is counted, though it usually holds the leader's first memtable flush after the bulk load)")
	flagProfile = flag.String("bench.profile", "",
		"if set, write the CPU profile of an in-process restore of the onboarding snapshot to this file")
)

// binaries holds the paths of the binaries TestMain built. It is written once before any benchmark runs and only
// read afterwards.
var binaries struct {
	leader   string
	follower string
	nats     string // nats-server, for the benchmarks that run the log server apart from the leader
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if *flagLiveWriters < 1 {
		fmt.Fprintf(os.Stderr, "bench: -bench.livewriters %d: want at least 1\n", *flagLiveWriters)
		return 2
	}
	dir, err := os.MkdirTemp("", "replikv-bench-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: temp dir: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	paths, err := testbin.Build(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	binaries.leader, binaries.follower = paths.Leader, paths.Follower
	if binaries.nats, err = testbin.BuildNATS(dir); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return m.Run()
}
