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
	var p Paths
	for _, b := range []struct {
		pkg string
		dst *string
	}{{"./cmd/leader", &p.Leader}, {"./cmd/follower", &p.Follower}} {
		path, err := build(dir, b.pkg, filepath.Base(b.pkg))
		if err != nil {
			return Paths{}, err
		}
		*b.dst = path
	}
	return p, nil
}

// BuildCtl builds replikvctl, the operator's CLI, into dir and returns its path, for the suites that run it.
func BuildCtl(dir string) (string, error) {
	return build(dir, "./cmd/replikvctl", "replikvctl")
}

// BuildNATS builds the nats-server binary of the version go.mod pins into dir and returns its path, for suites that
// run the log server as a process of its own.
func BuildNATS(dir string) (string, error) {
	return build(dir, "github.com/nats-io/nats-server/v2", "nats-server")
}

// build runs `go build` for pkg, from the root of the module that contains the working directory, into dir/name.
func build(dir, pkg, name string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build: go tool not found: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("build: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("build: not inside the replikv module")
	}
	path := filepath.Join(dir, name)
	cmd := exec.Command(goBin, "build", "-o", path, pkg)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, out)
	}
	return path, nil
}
