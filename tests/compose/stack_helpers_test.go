//go:build compose

package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/freeport"
)

// stack is one compose project of the whole deployment, under its own
// project name and host ports (leader, S3) so that it can run beside a
// user's stack.
// Its methods run the docker CLI and compose (through scripts/compose.sh,
// which picks `docker compose` or docker-compose); they are safe for
// concurrent use.
type stack struct {
	root       string
	project    string
	leaderPort int
	s3Port     int      // the S3 server's host port (S3_PORT)
	env        []string // added to the environment of every command
}

// newStack prepares (does not start) a stack with a random project name and
// free host ports for the leader and the S3 server.
func newStack(t *testing.T, root string, extraEnv ...string) *stack {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	port, s3Port := freeport.Must(t), freeport.Must(t)
	for s3Port == port {
		s3Port = freeport.Must(t)
	}
	s := &stack{
		root:       root,
		project:    testProjectPrefix + hex.EncodeToString(b[:]),
		leaderPort: port,
		s3Port:     s3Port,
	}
	s.env = append([]string{
		"COMPOSE_PROJECT_NAME=" + s.project,
		"LEADER_PORT=" + strconv.Itoa(port),
		"S3_PORT=" + strconv.Itoa(s.s3Port),
	}, extraEnv...)
	return s
}

// run runs a command in the repository root with the stack's environment and
// returns its combined output.
func (s *stack) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, tail(out, 2000))
	}
	return string(out), nil
}

// tail returns at most the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// compose runs a compose subcommand on the stack's project.
func (s *stack) compose(ctx context.Context, args ...string) (string, error) {
	return s.run(ctx, filepath.Join(s.root, "scripts", "compose.sh"), append([]string{"compose"}, args...)...)
}

// docker runs a docker CLI command and returns its trimmed output.
func (s *stack) docker(ctx context.Context, args ...string) (string, error) {
	out, err := s.run(ctx, "docker", args...)
	return strings.TrimSpace(out), err
}

func (s *stack) label() string { return "label=com.docker.compose.project=" + s.project }

// containers returns the ids of the service's containers (running or not),
// ordered by their compose container number.
func (s *stack) containers(ctx context.Context, service string) ([]string, error) {
	out, err := s.docker(ctx, "ps", "-a", "--filter", s.label(),
		"--filter", "label=com.docker.compose.service="+service,
		"--format", `{{.Label "com.docker.compose.container-number"}} {{.ID}}`)
	if err != nil {
		return nil, err
	}
	type numbered struct {
		n  int
		id string
	}
	var cs []numbered
	for _, line := range strings.Split(out, "\n") {
		n, id, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		num, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("container number %q: %w", n, err)
		}
		cs = append(cs, numbered{num, id})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].n < cs[j].n })
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.id
	}
	return ids, nil
}

// baseURL returns http://127.0.0.1:<host port> of the container's published
// port. An ephemeral host port changes when the container restarts, so ask
// again after every start.
func (s *stack) baseURL(ctx context.Context, id string, port int) (string, error) {
	out, err := s.docker(ctx, "port", id, strconv.Itoa(port)+"/tcp")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if hp := strings.TrimSpace(line); strings.HasPrefix(hp, "127.0.0.1:") {
			return "http://" + hp, nil
		}
	}
	return "", fmt.Errorf("container %s publishes %d/tcp on no 127.0.0.1 port: %q", id, port, out)
}

// leaderURL is the leader's base URL on the fixed published port.
func (s *stack) leaderURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.leaderPort) }

// network returns the id of the project's network declared as name.
func (s *stack) network(ctx context.Context, name string) (string, error) {
	out, err := s.docker(ctx, "network", "ls", "-q", "--filter", s.label(),
		"--filter", "label=com.docker.compose.network="+name)
	if err != nil {
		return "", err
	}
	if out == "" || strings.Contains(out, "\n") {
		return "", fmt.Errorf("network %s of project %s: found %q", name, s.project, out)
	}
	return out, nil
}

// volumesOf returns the names of the volumes mounted in the project's
// containers, anonymous ones included (they carry no project label).
func (s *stack) volumesOf(ctx context.Context) ([]string, error) {
	ids, err := s.docker(ctx, "ps", "-aq", "--filter", s.label())
	if err != nil || ids == "" {
		return nil, err
	}
	out, err := s.docker(ctx, append([]string{"inspect", "--format",
		`{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}`}, strings.Fields(ids)...)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// leftovers lists the containers, networks and volumes of the project that
// still exist, plus any of the given volumes; empty means none.
func (s *stack) leftovers(ctx context.Context, volumes []string) (string, error) {
	var left []string
	for _, kind := range [][]string{{"ps", "-aq"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		out, err := s.docker(ctx, append(kind, "--filter", s.label())...)
		if err != nil {
			return "", err
		}
		if out != "" {
			left = append(left, kind[0]+": "+strings.ReplaceAll(out, "\n", " "))
		}
	}
	if len(volumes) > 0 {
		all, err := s.docker(ctx, "volume", "ls", "-q")
		if err != nil {
			return "", err
		}
		present := make(map[string]bool)
		for _, v := range strings.Fields(all) {
			present[v] = true
		}
		for _, v := range volumes {
			if present[v] {
				left = append(left, "volume "+v)
			}
		}
	}
	return strings.Join(left, "; "), nil
}

// down removes the project with its volumes (idempotent).
func (s *stack) down(ctx context.Context) error {
	_, err := s.compose(ctx, "down", "-v", "--remove-orphans", "--timeout", "10")
	return err
}

// dumpLogs writes the containers' state and recent logs to the test log.
func (s *stack) dumpLogs(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := s.compose(ctx, "ps"); err == nil {
		t.Logf("compose ps:\n%s", out)
	}
	out, err := s.compose(ctx, "logs", "--no-color", "--timestamps", "--tail=300")
	if err != nil {
		t.Logf("compose logs: %v", err)
	}
	t.Logf("compose logs:\n%s", out)
	// Last, where a truncated report still shows it: the leader's latest warnings and errors.
	out, err = s.compose(ctx, "logs", "--no-color", "--tail=3000", "leader")
	if err != nil {
		return
	}
	var bad []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			bad = append(bad, truncate(strings.TrimSpace(line), 400))
		}
	}
	bad = bad[max(0, len(bad)-12):]
	t.Logf("the leader's last %d warnings and errors:\n%s", len(bad), strings.Join(bad, "\n"))
}

// truncate cuts s to n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
