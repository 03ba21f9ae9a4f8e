//go:build e2e

package tests

import (
	"fmt"
	"os"
	"testing"

	testbin "github.com/replikv/replikv/internal/testutil/binaries"
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
	paths, err := testbin.Build(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	binaries.leader, binaries.follower = paths.Leader, paths.Follower
	return m.Run()
}
