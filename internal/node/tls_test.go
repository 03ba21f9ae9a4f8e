package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/cli"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/testutil/testca"
)

// TestNode_TLSAndReadToken runs a leader and a follower with HTTPS, mutual TLS and both tokens: a write sent to the
// follower is redirected to the leader's https:// advertise URL and lands there, the follower serves it to the read
// token, the read token cannot write, and the healthcheck probe passes on both nodes.
func TestNode_TLSAndReadToken(t *testing.T) {
	const authToken, readToken = "all-t0ken", "read-t0ken"
	tf := testca.WriteFiles(t)
	tlsArgs := []string{"--tls-cert", tf.CertFile, "--tls-key", tf.KeyFile, "--tls-client-ca", tf.CAFile,
		"--auth-token", authToken, "--read-token", readToken}
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, tlsArgs...)
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), tlsArgs...)
	leaderURL, followerURL := "https://"+l.HTTPAddr(), "https://"+f.HTTPAddr()

	hc := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tf.CA.Pool(),
			Certificates: []tls.Certificate{tf.CA.Issue(t).TLS(t)}}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, url, token, body string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, u := range []string{leaderURL, followerURL} {
		eventually(t, 60*time.Second, func() string {
			if code, body, _ := send(http.MethodGet, u+"/readyz", "", ""); code != http.StatusOK {
				return fmt.Sprintf("%s/readyz: %d %s", u, code, body)
			}
			return ""
		})
	}

	// A write through the follower: 307 to the leader's https:// URL, then 200 there.
	code, body, hdr := send(http.MethodPut, followerURL+"/v1/kv/tls-key", authToken, "tls-value")
	if code != http.StatusTemporaryRedirect {
		t.Fatalf("PUT on the follower: %d %s, want 307", code, body)
	}
	loc := hdr.Get("Location")
	if loc != leaderURL+"/v1/kv/tls-key" {
		t.Fatalf("Location = %q, want the leader's https URL %q", loc, leaderURL+"/v1/kv/tls-key")
	}
	code, body, _ = send(http.MethodPut, loc, authToken, "tls-value")
	if code != http.StatusOK {
		t.Fatalf("PUT on the leader: %d %s", code, body)
	}
	var res struct {
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}

	// The read token reads on both nodes and cannot write on either.
	url := fmt.Sprintf("%s/v1/kv/tls-key?min_seq=%d", followerURL, res.Version)
	if code, body, _ := send(http.MethodGet, url, readToken, ""); code != http.StatusOK || body != "tls-value" {
		t.Fatalf("read token GET on the follower: %d %q", code, body)
	}
	for _, u := range []string{leaderURL, followerURL} {
		if code, body, _ := send(http.MethodPut, u+"/v1/kv/tls-key", readToken, "x"); code != http.StatusForbidden ||
			!strings.Contains(body, `"forbidden"`) {
			t.Fatalf("read token PUT on %s: %d %s, want 403 forbidden", u, code, body)
		}
		if code, _, _ := send(http.MethodGet, u+"/v1/status", "", ""); code != http.StatusUnauthorized {
			t.Fatalf("no token on %s: %d, want 401", u, code)
		}
	}

	// Plain HTTP and clients without a certificate get nothing.
	if resp, err := http.Get("http://" + l.HTTPAddr() + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served on the HTTPS port")
		}
	}
	noCert := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tf.CA.Pool()}}}
	if resp, err := noCert.Get(leaderURL + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatal("a client without a certificate was served")
	}

	// The healthcheck subcommand's probe, as the binaries run it.
	for _, n := range []struct{ name, addr string }{{"leader", l.HTTPAddr()}, {"follower", f.HTTPAddr()}} {
		args := append([]string{"healthcheck", "--http-addr", n.addr, "--data-dir", t.TempDir()}, tlsArgs...)
		var err error
		var stderr bytes.Buffer
		if n.name == "leader" {
			err = cli.Run(context.Background(), args, func(string) string { return "" }, &stderr, config.ParseLeader, noRun[config.Leader])
		} else {
			err = cli.Run(context.Background(), append(args, "--nats-url", l.NATSURL()), func(string) string { return "" },
				&stderr, config.ParseFollower, noRun[config.Follower])
		}
		if err != nil {
			t.Fatalf("%s healthcheck: %v (%s)", n.name, err, stderr.String())
		}
	}
}

// noRun stands in for a binary's node in cli.Run: the healthcheck subcommand must not start one.
func noRun[C any](context.Context, C, *zap.Logger) error {
	return fmt.Errorf("the healthcheck ran a node")
}
