//go:build e2e

package tests

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

// Every secret a test gives a binary, as a flag or in the environment, must stay out of everything the binary
// prints. The harness collects them from each process's arguments and environment and scans the process's whole
// output when the test ends (and the output of runs that exit at start), failing the test, without printing the
// secret, if one shows.

// secretFlags are the flags whose value is a secret.
var secretFlags = []string{"auth-token", "read-token", "nats-password", "nats-follower-password"}

// urlFlags are the flags whose value is a URL that may carry a password.
var urlFlags = []string{"nats-url", "snapshots"}

// minSecretLen keeps short values (which would match by chance) out of the scan.
const minSecretLen = 6

// secret is one secret value and where the test gave it (for the failure message).
type secret struct{ value, source string }

// secretsOf returns the secrets in a process's arguments and environment.
func secretsOf(args, env []string) []secret {
	var out []secret
	add := func(value, source string) {
		if len(value) >= minSecretLen {
			out = append(out, secret{value: value, source: source})
		}
	}
	for _, name := range secretFlags {
		add(flagValue(args, name), "--"+name)
	}
	for _, name := range urlFlags {
		for _, raw := range strings.Split(flagValue(args, name), ",") {
			if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok {
					add(pw, "the password in --"+name)
				}
			}
		}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		for _, raw := range strings.Split(v, ",") {
			if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok {
					add(pw, "the password in $"+k)
				}
			}
		}
		upper := strings.ToUpper(k)
		for _, word := range []string{"SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY"} {
			if strings.Contains(upper, word) {
				add(v, "$"+k)
				break
			}
		}
	}
	return out
}

// redactArgs returns args joined for a log line, with every secret replaced.
func redactArgs(args []string, secrets []secret) string {
	s := strings.Join(args, " ")
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec.value, "[REDACTED]")
	}
	return s
}

// checkNoSecrets fails the test if output (named what) holds one of secrets.
func checkNoSecrets(t testing.TB, what, output string, secrets []secret) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(output, sec.value) {
			t.Errorf("%s holds the secret given as %s", what, sec.source)
		}
	}
}

// checkLogNoSecrets is checkNoSecrets on a log file.
func checkLogNoSecrets(t testing.TB, path string, secrets []secret) {
	t.Helper()
	if len(secrets) == 0 {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s to scan it for secrets: %v", path, err)
		return
	}
	checkNoSecrets(t, path, string(b), secrets)
}

func TestSecretsOf(t *testing.T) {
	got := secretsOf(
		[]string{"--auth-token=tok-123456", "--nats-url", "nats://alice:pw-SecretPW2@127.0.0.1:4222,nats://h2:4222", "--id=f1",
			"--read-token=short"},
		[]string{"AWS_SECRET_ACCESS_KEY=aws-secret-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "PATH=/usr/bin", "REPLIKV_AUTH_TOKEN=env-token-1",
			"REPLIKV_NATS_URL=nats://bob:env-pw-77@h:4222"})
	want := map[string]bool{"tok-123456": true, "pw-SecretPW2": true, "aws-secret-1": true, "AKIDEXAMPLE": true, "env-token-1": true,
		"env-pw-77": true}
	if len(got) != len(want) {
		t.Fatalf("secrets %v, want %v", got, want)
	}
	for _, s := range got {
		if !want[s.value] {
			t.Fatalf("unexpected secret %q from %s", s.value, s.source)
		}
	}
	if line := redactArgs([]string{"--auth-token=tok-123456"}, got); strings.Contains(line, "tok-123456") {
		t.Fatalf("redactArgs left the token: %s", line)
	}
	var ft fakeT
	checkNoSecrets(&ft, "output", `{"msg":"x","token":"tok-123456"}`, got)
	if !ft.failed {
		t.Fatal("checkNoSecrets missed a token in the output")
	}
}

// fakeT records an Errorf without failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
