//go:build compose

package compose

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/docscheck"
	"github.com/replikv/replikv/internal/snapshots"
)

// Where the commands TestDocs_Tour runs are written.
const (
	tourDoc     = "README.md"
	tourHeading = "A five-minute tour"
	s3Doc       = "docs/operations.md"
	s3Heading   = "Snapshots and retention"
	// tourEnd starts the tour's last command, which removes the stack: the S3 commands run before it.
	tourEnd = "make compose-down"
	// defaultS3Port is the S3 port the documentation's commands name (S3_PORT's default).
	defaultS3Port = "7070"
)

// TestDocs_Tour runs the README's five-minute tour as written, with bash, in a copy of the checkout under a project
// and host ports of its own: build, a stack with three followers, replikvctl status, put, get, list, a snapshot, a
// fourth follower watched while it onboards, verify, and down. Before the tour's last command it reads the snapshot
// bucket through the published S3 port, and runs the AWS CLI commands of docs/operations.md when aws is installed
// (with the stack's S3 port for the default 7070). The documentation check (internal/docscheck) checks the same
// commands' syntax; this checks that they work.
func TestDocs_Tour(t *testing.T) {
	requireStack(t)
	tour := docBlock(t, tourDoc, tourHeading, "replikvctl")
	before, after, ok := strings.Cut(tour, "\n"+tourEnd)
	if !ok {
		t.Fatalf("%s, %q: no line starting with %q", tourDoc, tourHeading, tourEnd)
	}
	after = tourEnd + after
	s3Commands := docBlock(t, s3Doc, s3Heading, "aws ")

	dir := copyCheckout(t, suite.root)
	// Pin what the tour relies on, whatever the environment says; the copy has no .env.
	s := newStack(t, dir, "AUTH_TOKEN=", "READ_TOKEN=", "COMPOSE_EXTRA_FILES=", "SYNC_FOLLOWERS=0",
		"S3_ENDPOINT=s3:7070", "S3_INSECURE=true", "S3_BUCKET=replikv", "S3_ACCESS_KEY=replikv",
		"S3_SECRET_KEY=replikv-secret", "LEADER_ADVERTISE_URL=http://leader:8080", "REPLIKV_URL=", "REPLIKV_TOKEN=",
		"REPLIKV_TOKEN_FILE=", "FOLLOWERS=", "UP_TIMEOUT=")
	t.Logf("project %s, leader on %s, S3 on 127.0.0.1:%d, checkout copy %s", s.project, s.leaderURL(), s.s3Port, dir)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			s.dumpLogs(t)
		}
		if err := s.down(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left, err := s.leftovers(ctx, nil); err != nil || left != "" {
			t.Errorf("cleanup: left behind: %q (%v)", left, err)
		}
	})

	runScript(t, s, "the tour", before, 25*time.Minute)
	checkBucket(t, s)
	if _, err := exec.LookPath("aws"); err == nil {
		runScript(t, s, "the AWS CLI commands",
			strings.ReplaceAll(s3Commands, "127.0.0.1:"+defaultS3Port, "127.0.0.1:"+strconv.Itoa(s.s3Port)), 5*time.Minute)
		matches, _ := filepath.Glob(filepath.Join(dir, "snapshot-*", "manifest.json"))
		if len(matches) == 0 {
			t.Errorf("the AWS CLI commands fetched no manifest.json into snapshot-<seq>/")
		}
	} else {
		t.Logf("aws is not installed: the AWS CLI commands of %s did not run (the bucket was read without them)", s3Doc)
	}
	runScript(t, s, "the tour's end", after, 5*time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if left, err := s.leftovers(ctx, nil); err != nil || left != "" {
		t.Errorf("%q left behind: %q (%v)", tourEnd, left, err)
	}
}

// docBlock returns the first sh block under the heading of a document of the repository that contains want.
func docBlock(t *testing.T, doc, heading, want string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(suite.root, doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, bl := range docscheck.Blocks(b) {
		if bl.IsShell() && bl.Heading == heading && strings.Contains(bl.Text, want) {
			return bl.Text
		}
	}
	t.Fatalf("%s: no sh block with %q under the heading %q", doc, want, heading)
	return ""
}

// runScript runs a documentation block with bash in the stack's checkout and environment, stopping at the first
// command that fails, and logs what it printed.
func runScript(t *testing.T, s *stack, what, script string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euxo pipefail\n"+script)
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), s.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s (%v):\n%s", what, time.Since(start).Round(time.Second), out.String())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// checkBucket reads the snapshot manifests through the S3 port the stack publishes on the host, as the AWS CLI does.
func checkBucket(t *testing.T, s *stack) {
	t.Helper()
	store, err := snapshots.Open("s3://replikv/snapshots", snapshots.S3Config{
		Endpoint: "127.0.0.1:" + strconv.Itoa(s.s3Port), Insecure: true,
		AccessKeyID: "replikv", SecretAccessKey: "replikv-secret",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ms, err := snapshots.NewRepo(store, "REPLIKV", nil).List(ctx)
	if err != nil {
		t.Fatalf("the bucket through 127.0.0.1:%d: %v", s.s3Port, err)
	}
	if len(ms) == 0 {
		t.Fatalf("the bucket through 127.0.0.1:%d holds no snapshot after the tour's snapshots create", s.s3Port)
	}
}

// copyCheckout copies the files of the checkout that git tracks or would track (the working tree's versions, without
// ignored files such as bin/, build/ and .env) into a temporary directory, so that the tour's build outputs and .env
// stay out of the user's checkout.
func copyCheckout(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		if err := copyFile(filepath.Join(root, rel), filepath.Join(dst, rel)); err != nil {
			if os.IsNotExist(err) {
				continue // tracked, but deleted in the working tree
			}
			t.Fatal(err)
		}
	}
	return dst
}

func copyFile(src, dst string) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return nil // a submodule or a nested checkout: not part of the tour
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return o.Close()
}
