//go:build compose

package compose

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// suite is what TestMain found out before any test ran; tests only read it.
var suite struct {
	root      string // repository root
	engineErr error  // non-nil when no Docker engine is reachable
	buildErr  error  // non-nil when the images could not be built
}

// TestMain builds the images once for every test (scripts/compose.sh build):
// the binaries are compiled on the host and the images are FROM scratch.
func TestMain(m *testing.M) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "docker-compose.yml"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose tests: repository root: %v\n", err)
		os.Exit(1)
	}
	suite.root = root
	suite.engineErr = pingEngine()
	if suite.engineErr == nil {
		suite.buildErr = buildImages(root)
	}
	os.Exit(m.Run())
}

// pingEngine reports whether the docker CLI reaches an engine.
func pingEngine() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker cli: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker version: %w: %s", err, out)
	}
	return nil
}

func buildImages(root string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "compose.sh"), "build")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("compose.sh build: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "compose tests: images built in %v\n", time.Since(start).Round(time.Second))
	return nil
}

// requireStack skips the test when there is no Docker engine (fails under
// CI=true) and fails it when the images could not be built.
func requireStack(t *testing.T) {
	t.Helper()
	if suite.engineErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no Docker engine: %v", suite.engineErr)
		}
		t.Skipf("no Docker engine: %v", suite.engineErr)
	}
	if suite.buildErr != nil {
		t.Fatal(suite.buildErr)
	}
}
