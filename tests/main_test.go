//go:build e2e

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binaries holds the paths of the binaries TestMain built. It is written once before any test runs and only read
// afterwards.
var binaries struct {
	leader   string
	follower string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "replikv-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	return m.Run()
}

// buildBinaries builds cmd/leader and cmd/follower into dir, without -race: the suite measures timing-sensitive
// behaviour (sync timeouts, prompt shutdown) and runs several processes on two cores.
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
