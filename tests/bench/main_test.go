//go:build bench

package bench

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Command-line knobs of the suite; read-only after flag parsing.
var (
	flagKeys = flag.Int("bench.keys", 1_000_000,
		"keys (random 128-byte values) the onboarding benchmarks load into the leader and into Redis")
	flagRSSKeys = flag.Int("bench.rsskeys", 2_200_000,
		"keys (480-byte random values) of the larger snapshot of BenchmarkFollower_RestoreRSS; the smaller has half")
	flagProfile = flag.String("bench.profile", "",
		"if set, write the CPU profile of an in-process restore of the onboarding snapshot to this file")
)

// binaries holds the paths of the binaries TestMain built. It is written once before any benchmark runs and only
// read afterwards.
var binaries struct {
	leader   string
	follower string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "replikv-bench-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: temp dir: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return m.Run()
}

// buildBinaries builds cmd/leader and cmd/follower into dir (no race detector: these are performance runs).
func buildBinaries(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build: go tool not found: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("build: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("build: not inside the replikv module")
	}
	root := filepath.Dir(gomod)
	for _, b := range []struct {
		pkg string
		dst *string
	}{{"./cmd/leader", &binaries.leader}, {"./cmd/follower", &binaries.follower}} {
		path := filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command(goBin, "build", "-o", path, b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b.pkg, err, out)
		}
		*b.dst = path
	}
	return nil
}
