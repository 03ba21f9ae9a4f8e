package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/store"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

func testLogger(t testing.TB) *zap.Logger {
	if os.Getenv("REPLIKV_TEST_LOG") != "" {
		return testlog.New(t)
	}
	return zap.NewNop()
}

// startLeader starts an in-process leader with an embedded NATS server on free ports.
func startLeader(t testing.TB, dataDir, snapDir string, args ...string) *Leader {
	t.Helper()
	return startLeaderLog(t, testLogger(t), dataDir, snapDir, args...)
}

func startLeaderLog(t testing.TB, log *zap.Logger, dataDir, snapDir string, args ...string) *Leader {
	t.Helper()
	base := []string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--snapshot-interval", "0", "--snapshots", "file://" + snapDir}
	cfg, err := config.ParseLeader(append(base, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("leader config: %v", err)
	}
	l, err := StartLeader(context.Background(), cfg, log.Named("leader"))
	if err != nil {
		t.Fatalf("start leader: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func startFollower(t testing.TB, dataDir, snapDir, natsURL string, args ...string) *Follower {
	t.Helper()
	return startFollowerLog(t, testLogger(t), dataDir, snapDir, natsURL, args...)
}

// startFollowerLog is startFollower with the follower logging to log.
func startFollowerLog(t testing.TB, log *zap.Logger, dataDir, snapDir, natsURL string, args ...string) *Follower {
	t.Helper()
	base := []string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--nats-url", natsURL,
		"--snapshots", "file://" + snapDir}
	cfg, err := config.ParseFollower(append(base, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("follower config: %v", err)
	}
	f, err := StartFollower(context.Background(), cfg, log.Named("follower"))
	if err != nil {
		t.Fatalf("start follower: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

type statusBody struct {
	Role        string `json:"role"`
	State       string `json:"state"`
	AppliedSeq  uint64 `json:"applied_seq"`
	LogLastSeq  uint64 `json:"log_last_seq"`
	SnapshotSeq uint64 `json:"snapshot_seq"`
	Error       string `json:"error"`
	LeaderURL   string `json:"leader_url"`
	Epoch       uint64 `json:"epoch"`
}

type digestBody struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

var httpc = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

func do(t testing.TB, method, url string, body []byte, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	code, b, _ := do(t, http.MethodGet, url, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func base(addr string) string { return "http://" + addr }

// eventually polls cond until it returns "" or the deadline passes, then fails with the last reason.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		if why = cond(); why == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met in %s: %s", timeout, why)
}

// waitRole waits until the node at url is ready in role (api.RoleLeader: it leads and takes writes; api.RoleFollower:
// it follows, within --ready-lag of the log).
func waitRole(t testing.TB, url, role string, timeout time.Duration) statusBody {
	t.Helper()
	var st statusBody
	eventually(t, timeout, func() string {
		getJSON(t, url+"/v1/status", &st)
		if st.Role != role || st.State != stateReady {
			return fmt.Sprintf("role %s, state %q (error %q), want %s, ready", st.Role, st.State, st.Error, role)
		}
		return ""
	})
	return st
}

func waitState(t testing.TB, url, state string, timeout time.Duration) statusBody {
	t.Helper()
	var st statusBody
	eventually(t, timeout, func() string {
		getJSON(t, url+"/v1/status", &st)
		if st.State != state {
			return fmt.Sprintf("state %q (error %q), want %q", st.State, st.Error, state)
		}
		return ""
	})
	return st
}

func put(t testing.TB, url, key, value string, hdr ...string) (int, uint64) {
	t.Helper()
	code, b, _ := do(t, http.MethodPut, url+"/v1/kv/"+key, []byte(value), hdr...)
	var res struct {
		Version uint64 `json:"version"`
	}
	if code == http.StatusOK || code == http.StatusAccepted {
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("PUT %s: %v: %s", key, err, b)
		}
	}
	return code, res.Version
}

// digestsEqual waits until both nodes report the same digest at the same sequence. A node that answers 503 (a
// follower swapping in a new store while it re-bootstraps) is asked again.
func digestsEqual(t testing.TB, a, b string, timeout time.Duration) digestBody {
	t.Helper()
	var da, db digestBody
	eventually(t, timeout, func() string {
		for _, n := range []struct {
			url string
			d   *digestBody
		}{{a, &da}, {b, &db}} {
			code, body, _ := do(t, http.MethodGet, n.url+"/v1/digest", nil)
			switch {
			case code == http.StatusServiceUnavailable:
				return fmt.Sprintf("%s: 503 %s", n.url, body)
			case code != http.StatusOK:
				t.Fatalf("GET %s/v1/digest: %d %s", n.url, code, body)
			}
			if err := json.Unmarshal(body, n.d); err != nil {
				t.Fatalf("GET %s/v1/digest: %v", n.url, err)
			}
		}
		if da != db {
			return fmt.Sprintf("%+v != %+v", da, db)
		}
		return ""
	})
	return da
}

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

func removeStore(t testing.TB, dataDir string) {
	t.Helper()
	if err := os.RemoveAll(store.StoreDir(dataDir)); err != nil {
		t.Fatal(err)
	}
}
