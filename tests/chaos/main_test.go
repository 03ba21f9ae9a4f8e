//go:build chaos

package chaos

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	testbin "github.com/replikv/replikv/internal/testutil/binaries"
)

var (
	flagSeed     = flag.Int64("chaos.seed", 0, "seed of the fault schedule and the clients' choices; 0 = time-based")
	flagDuration = flag.Duration("chaos.duration", 3*time.Minute, "how long faults are injected under load (CI size: 3m; soak: 1h)")
	flagClients  = flag.Int("chaos.clients", 8, "client goroutines")
	flagKeep     = flag.Bool("chaos.keep", false, "keep the run directory (logs, history) also when the run passes")
	flagBinDir   = flag.String("chaos.bindir", "", "use the leader, follower and nats-server binaries in this directory "+
		"instead of building them from this checkout (e.g. to test another commit)")
)

// bins holds the binaries, built once, on first use, into binDir (created by TestMain): the model tests need none.
var bins struct {
	once                   sync.Once
	err                    error
	dir                    string
	leader, follower, nats string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "replikv-chaos-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: temp dir: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bins.dir = dir
	return m.Run()
}

// binaries builds the leader, follower and nats-server binaries once per test binary run, or fails the test.
func binaries(t *testing.T) {
	t.Helper()
	bins.once.Do(func() {
		if d := *flagBinDir; d != "" {
			bins.leader, bins.follower, bins.nats = filepath.Join(d, "leader"), filepath.Join(d, "follower"),
				filepath.Join(d, "nats-server")
			for _, p := range []string{bins.leader, bins.follower, bins.nats} {
				if _, err := os.Stat(p); err != nil {
					bins.err = fmt.Errorf("-chaos.bindir: %w", err)
				}
			}
			t.Logf("using the binaries in %s", d)
			return
		}
		start := time.Now()
		paths, err := testbin.Build(bins.dir)
		if err != nil {
			bins.err = err
			return
		}
		bins.leader, bins.follower = paths.Leader, paths.Follower
		bins.nats, bins.err = testbin.BuildNATS(bins.dir)
		t.Logf("built leader, follower and nats-server in %v", time.Since(start).Round(time.Second))
	})
	if bins.err != nil {
		t.Fatalf("build binaries: %v", bins.err)
	}
}
