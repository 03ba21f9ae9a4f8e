//go:build e2e

package tests

import (
	"bytes"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFlags_Invalid: an invalid value, from a flag or from the environment, stops the binary at start with exit
// code 2 and a message naming the flag.
func TestFlags_Invalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		bin   func() string
		env   []string
		args  []string
		names []string // the message must contain one of these
	}{
		{"FollowerNegativeReadyLag", follower, nil, []string{"--ready-lag=-1"}, []string{"ready-lag"}},
		{"FollowerReadyLagNotANumber", follower, nil, []string{"--ready-lag=many"}, []string{"ready-lag"}},
		{"LeaderHTTPAddrNonsense", leader, nil, []string{"--http-addr=nonsense"}, []string{"http-addr"}},
		{"FollowerHTTPAddrNonsense", follower, nil, []string{"--http-addr=nonsense"}, []string{"http-addr"}},
		{"LeaderUnknownFlag", leader, nil, []string{"--no-such-flag=1"}, []string{"no-such-flag"}},
		{"FollowerUnknownFlag", follower, nil, []string{"--no-such-flag=1"}, []string{"no-such-flag"}},
		{"LeaderSnapshotIntervalNotADuration", leader, nil, []string{"--snapshot-interval=soon"}, []string{"snapshot-interval"}},
		{"LeaderSyncTimeoutNotADuration", leader, nil, []string{"--sync-timeout=abc"}, []string{"sync-timeout"}},
		{"LeaderNegativeSyncFollowers", leader, nil, []string{"--sync-followers=-1"}, []string{"sync-followers"}},
		{"LeaderLogLevelUnknown", leader, nil, []string{"--log-level=loud"}, []string{"log-level"}},
		{"LeaderSnapshotsScheme", leader, nil, []string{"--snapshots=ftp://host/dir"}, []string{"snapshots"}},
		{"LeaderSnapshotCPUZero", leader, nil, []string{"--snapshot-cpu=0"}, []string{"snapshot-cpu"}},
		{"FollowerCatchUpRateNegative", follower, nil, []string{"--catchup-rate=-5"}, []string{"catchup-rate"}},
		{"FollowerEnvCatchUpRateTooSlow", follower, []string{"REPLIKV_CATCHUP_RATE=1"}, nil,
			[]string{"catchup-rate", "REPLIKV_CATCHUP_RATE"}},
		{"FollowerEnvNegativeReadyLag", follower, []string{"REPLIKV_READY_LAG=-1"}, nil,
			[]string{"ready-lag", "REPLIKV_READY_LAG"}},
		{"LeaderEnvBadSyncTimeout", leader, []string{"REPLIKV_SYNC_TIMEOUT=abc"}, nil,
			[]string{"sync-timeout", "REPLIKV_SYNC_TIMEOUT"}},
		// A password in a bad URL is redacted in the error (the harness fails the test if it shows).
		{"LeaderNATSURLSchemeWithPassword", leader, nil, []string{"--nats-url=http://alice:SecretPW2@127.0.0.1:4222"},
			[]string{"nats-url"}},
		{"FollowerNATSURLSchemeWithPassword", follower, nil, []string{"--nats-url=http://alice:SecretPW2@127.0.0.1:4222"},
			[]string{"nats-url"}},
		{"FollowerEnvNATSURLWithPassword", follower, []string{"REPLIKV_NATS_URL=ftp://bob:EnvSecretPW3@127.0.0.1:4222"}, nil,
			[]string{"nats-url", "REPLIKV_NATS_URL"}},
		{"LeaderEnvHTTPAddrNonsense", leader, []string{"REPLIKV_HTTP_ADDR=nonsense"}, []string{"--data-dir=" + t.TempDir()},
			[]string{"http-addr", "REPLIKV_HTTP_ADDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if !hasFlag(args, "data-dir") {
				args = append(args, "--data-dir="+t.TempDir())
			}
			code, out := runToExit(t, tt.bin(), append(baseEnv(), tt.env...), 15*time.Second, args...)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			if !containsAny(out, tt.names) {
				t.Fatalf("message does not name the flag (%v); output:\n%s", tt.names, out)
			}
		})
	}
}

func leader() string   { return binaries.leader }
func follower() string { return binaries.follower }

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestFlags_SnapshotKeepOne: the contract keeps "never fewer than 2" snapshots, so --snapshot-keep=1 is either
// rejected at start (exit 2 naming the flag) or raised to 2; it must never crash or start with a bad exit.
func TestFlags_SnapshotKeepOne(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binaries.leader, "--snapshot-keep=1", "--data-dir="+t.TempDir(), "--http-addr=127.0.0.1:0",
		"--nats-listen=127.0.0.1:0", "--snapshots=file://"+t.TempDir())
	cmd.Dir = t.TempDir()
	cmd.Env = baseEnv()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.After(startTimeout)
	for {
		select {
		case <-done:
			code := cmd.ProcessState.ExitCode()
			if code != 2 || !strings.Contains(out.String(), "snapshot-keep") {
				t.Fatalf("exit code %d (want 2 naming snapshot-keep, or a running leader); output:\n%s", code, out.String())
			}
			t.Logf("--snapshot-keep=1 rejected at start (exit 2)")
			return
		case <-deadline:
			t.Fatalf("neither exited nor listening within %v; output:\n%s", startTimeout, out.String())
		case <-time.After(pollEvery):
		}
		if strings.Contains(out.String(), msgHTTPListening) {
			t.Logf("--snapshot-keep=1 accepted (raised to the minimum of 2)")
			return
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFlags_Environment: every flag can come from REPLIKV_<FLAG>, and a flag on the command line wins.
func TestFlags_Environment(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})

	// Leader: the auth token from the environment only, then overridden by the flag.
	envOnly := c.newLeader()
	envOnly.env = append(envOnly.env, "REPLIKV_AUTH_TOKEN=from-env")
	c.runLeader(envOnly)
	both := c.newLeader("--auth-token=from-flag")
	both.env = append(both.env, "REPLIKV_AUTH_TOKEN=from-env")
	c.runLeader(both)

	tests := []struct {
		name  string
		node  *proc
		token string
		want  int
	}{
		{"EnvTokenRequired", envOnly, "", http.StatusUnauthorized},
		{"EnvTokenAccepted", envOnly, "from-env", http.StatusOK},
		{"FlagWinsOverEnv", both, "from-flag", http.StatusOK},
		{"EnvTokenIgnoredWhenFlagSet", both, "from-env", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &client{base: tt.node.URL(), token: tt.token, hc: c.hc}
			cl.must(t, http.MethodGet, "/v1/status", nil, nil, tt.want)
		})
	}

	// Follower: the id from the environment only, then overridden by the flag.
	fEnv := c.newFollower("unused")
	fEnv.args = dropFlag(fEnv.args, "id")
	fEnv.env = append(fEnv.env, "REPLIKV_ID=id-from-env")
	fEnv.start(false)
	fBoth := c.newFollower("id-from-flag")
	fBoth.env = append(fBoth.env, "REPLIKV_ID=id-from-env")
	fBoth.start(false)
	for _, tt := range []struct {
		name string
		node *proc
		want string
	}{{"FollowerEnvID", fEnv, "id-from-env"}, {"FollowerFlagWinsOverEnv", fBoth, "id-from-flag"}} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.node.api().status(t).ID; got != tt.want {
				t.Fatalf("status id %q, want %q", got, tt.want)
			}
		})
	}
}
