// Package binaries builds the replikv binaries for the test suites that run them as processes (tests/ and
// tests/bench), from the module that contains the working directory.
package binaries

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Paths are the built binaries.
type Paths struct {
	Leader, Follower string
}

// Build runs `go build` for cmd/leader and cmd/follower into dir, without the race detector: the suites measure
// timing-sensitive behaviour and run several processes on two cores.
func Build(dir string) (Paths, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Paths{}, fmt.Errorf("build: go tool not found: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return Paths{}, fmt.Errorf("build: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return Paths{}, errors.New("build: not inside the replikv module")
	}
	root := filepath.Dir(gomod)
	var p Paths
	for _, b := range []struct {
		pkg string
		dst *string
	}{{"./cmd/leader", &p.Leader}, {"./cmd/follower", &p.Follower}} {
		path := filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command(goBin, "build", "-o", path, b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return Paths{}, fmt.Errorf("build %s: %w\n%s", b.pkg, err, out)
		}
		*b.dst = path
	}
	return p, nil
}
