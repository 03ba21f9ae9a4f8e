//go:build compose

package compose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		sweepStale(root)
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
		return fmt.Errorf("docker version: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// testProjectPrefix starts the compose project name of every test stack.
const testProjectPrefix = "replikv-test-"

// staleAfter is the age past which a test stack is taken for the leftover of
// a run killed before its cleanup (go test -timeout skips cleanups); a whole
// run takes minutes.
const staleAfter = 2 * time.Hour

// sweepStale takes down the test stacks that such killed runs left behind, so
// that they do not slow this run. Failures are only reported.
func sweepStale(root string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}|{{.CreatedAt}}`).Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose tests: list stale stacks: %v\n", err)
		return
	}
	stale := make(map[string]bool)
	for _, line := range strings.Split(string(out), "\n") {
		project, created, ok := strings.Cut(line, "|")
		if !ok || !strings.HasPrefix(project, testProjectPrefix) {
			continue
		}
		// e.g. "2026-11-25 20:32:05 +0000 UTC"
		at, err := time.Parse("2006-01-02 15:04:05 -0700 MST", created)
		if err == nil && time.Since(at) > staleAfter {
			stale[project] = true
		}
	}
	for project := range stale {
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "compose.sh"), "down")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "COMPOSE_PROJECT_NAME="+project)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "compose tests: down stale %s: %v\n%s", project, err, out)
			continue
		}
		fmt.Fprintf(os.Stderr, "compose tests: removed stale stack %s\n", project)
	}
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
	if err := buildMonitor(ctx, root); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "compose tests: images built in %v\n", time.Since(start).Round(time.Second))
	return nil
}

// monitorImage is the image of natsmon (tests/compose/natsmon), the suite's
// way to the NATS monitoring endpoints.
const monitorImage = "replikv-compose-natsmon:test"

// buildMonitor compiles natsmon for the engine's platform, as compose.sh
// does the stack's binaries, and builds monitorImage FROM scratch. The image
// the tag pointed to before is removed if nothing uses it any more.
func buildMonitor(ctx context.Context, root string) error {
	platform, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}").Output()
	if err != nil {
		return fmt.Errorf("docker version: %w", err)
	}
	goos, goarch, _ := strings.Cut(strings.TrimSpace(string(platform)), "/")
	dir, err := os.MkdirTemp("", "replikv-natsmon-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "natsmon"),
		"./tests/compose/natsmon")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build natsmon: %w\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY natsmon /natsmon\nENTRYPOINT [\"/natsmon\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	imageID := func() string {
		out, _ := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", monitorImage).Output()
		return strings.TrimSpace(string(out))
	}
	old := imageID()
	if out, err := exec.CommandContext(ctx, "docker", "build", "--quiet", "--tag", monitorImage, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %w\n%s", monitorImage, err, out)
	}
	if old != "" && old != imageID() {
		_ = exec.CommandContext(ctx, "docker", "image", "rm", old).Run() // still in use: kept
	}
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
