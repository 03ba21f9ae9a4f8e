package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/journal/journaltest"
)

// The NATS users of the authentication tests.
const (
	natsLeaderUser       = "replikv-leader"
	natsLeaderPassword   = "leader-Secret-1"
	natsFollowerUser     = "replikv-follower"
	natsFollowerPassword = "follower-Secret-2"
)

// startAuthLeader starts an in-process leader logging to log whose embedded NATS server requires the two users.
func startAuthLeader(t *testing.T, log *zap.Logger, dataDir, snapDir string, args ...string) *Leader {
	t.Helper()
	base := []string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--snapshot-interval", "0", "--snapshots", "file://" + snapDir,
		"--nats-user", natsLeaderUser, "--nats-follower-user", natsFollowerUser}
	getenv := func(k string) string {
		return map[string]string{"REPLIKV_NATS_PASSWORD": natsLeaderPassword,
			"REPLIKV_NATS_FOLLOWER_PASSWORD": natsFollowerPassword}[k]
	}
	cfg, err := config.ParseLeader(append(base, args...), getenv, io.Discard)
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

// noPermissionViolations fails the test if a node's log says NATS refused it something: the client's asynchronous
// error, or the embedded server's violation report.
func noPermissionViolations(t *testing.T, who string, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		if e.Message == "nats async error" || strings.Contains(e.Message, "Violation") {
			t.Errorf("%s logged %q %v", who, e.Message, e.ContextMap())
		}
	}
}

// With the embedded server's authentication on, a follower with the follower user's credentials onboards as any
// follower does (snapshot, catch-up from the mirror, live replication, sync confirmations, redirects), one without
// them is refused, and the follower's credentials cannot write the log.
func TestFollower_NATSAuth(t *testing.T) {
	snapDir := t.TempDir()
	llog, llogs := observedLogger(t)
	l := startAuthLeader(t, llog, t.TempDir(), snapDir, "--catchup-mirror", "--snapshot-keep", "2",
		"--sync-followers", "1", "--sync-timeout", "300ms")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "a", 40)
	snapshotNow(t, lurl)
	putMany(t, lurl, "b", 40)
	snap := snapshotNow(t, lurl).Seq // compacts the log and the mirror below the older snapshot
	putMany(t, lurl, "c", 80)

	t.Run("Refused", func(t *testing.T) {
		for name, args := range map[string][]string{
			"NoCredentials":  nil,
			"WrongPassword":  {"--nats-user", natsFollowerUser, "--nats-password", "wrong"},
			"LeadersSecret":  {"--nats-user", natsFollowerUser, "--nats-password", natsLeaderPassword},
			"UnknownUser":    {"--nats-user", "nobody", "--nats-password", natsFollowerPassword},
			"OtherUsersName": {"--nats-user", natsLeaderUser, "--nats-password", natsFollowerPassword},
		} {
			f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), args...)
			var st statusBody
			eventually(t, 10*time.Second, func() string {
				getJSON(t, base(f.HTTPAddr())+"/v1/status", &st)
				if st.State == stateReady || !strings.Contains(st.Error, "nats refused the credentials") {
					return fmt.Sprintf("%s: state %q, error %q", name, st.State, st.Error)
				}
				return ""
			})
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})

	flog, flogs := observedLogger(t)
	f := startFollowerLog(t, flog, t.TempDir(), snapDir, l.NATSURL(), "--id", "authf", "--ready-lag", "10",
		"--nats-user", natsFollowerUser, "--nats-password", natsFollowerPassword)
	furl := base(f.HTTPAddr())
	st := waitState(t, furl, stateReady, 30*time.Second)
	if st.SnapshotSeq != snap {
		t.Fatalf("snapshot_seq %d, want %d (the newest snapshot)", st.SnapshotSeq, snap)
	}
	if n := flogs.FilterMessage(msgMirrorCatchUp).Len(); n != 1 {
		t.Fatalf("logged %q %d times, want once", msgMirrorCatchUp, n)
	}
	digestsEqual(t, lurl, furl, 20*time.Second)

	// Heartbeats reach the leader: writes are confirmed by the follower.
	eventually(t, 10*time.Second, func() string {
		code, b, _ := do(t, http.MethodPut, lurl+"/v1/kv/sync", []byte("x"))
		if code != http.StatusOK || !strings.Contains(string(b), `"replicated":1`) {
			return fmt.Sprintf("sync write: %d %s", code, b)
		}
		return ""
	})
	if code, b, _ := do(t, http.MethodGet, furl+"/v1/kv/sync", nil); code != http.StatusOK || string(b) != "x" {
		t.Fatalf("follower read after a confirmed write: %d %q", code, b)
	}
	_, b, _ := do(t, http.MethodGet, lurl+"/v1/followers", nil)
	mustContain(t, string(b), `"id":"authf"`)
	// The follower reads the lease: writes are redirected to the leader.
	code, _, h := do(t, http.MethodPut, furl+"/v1/kv/r", []byte("v"))
	if code != http.StatusTemporaryRedirect || h.Get("Location") != lurl+"/v1/kv/r" {
		t.Fatalf("follower write: %d, Location %q", code, h.Get("Location"))
	}
	// Live replication and strong reads.
	putMany(t, lurl, "d", 40)
	if code, b, _ := do(t, http.MethodGet, furl+"/v1/kv/d/0039?consistency=strong", nil); code != http.StatusOK || string(b) != "v" {
		t.Fatalf("strong read on the follower: %d %q", code, b)
	}
	digestsEqual(t, lurl, furl, 20*time.Second)
	noPermissionViolations(t, "leader", llogs)
	noPermissionViolations(t, "follower", flogs)

	t.Run("FollowerCredentialsCannotWriteLog", func(t *testing.T) {
		var before digestBody
		getJSON(t, lurl+"/v1/digest", &before)
		rlog, rlogs := observedLogger(t)
		jc, err := journal.Connect(t.Context(), journal.Config{URL: l.NATSURL(), Stream: "REPLIKV", Logger: rlog,
			User: natsFollowerUser, Password: natsFollowerPassword})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(jc.Close)
		eventually(t, 10*time.Second, func() string {
			if !jc.Connected() {
				return "not connected"
			}
			return ""
		})
		rogue := apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("rogue"), Value: []byte("x")})
		if _, err := jc.PublishAsync(t.Context(), rogue, before.Seq, "rogue-1"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() string {
			for _, e := range rlogs.FilterMessage("nats async error").All() {
				if strings.Contains(fmt.Sprint(e.ContextMap()["error"]), "replikv.REPLIKV.log") {
					return ""
				}
			}
			return "no permissions violation for the publish to the log"
		})
		// Nothing reached the log: the leader is not fenced, and its next write is the log's next entry.
		code, v := put(t, lurl, "after", "1")
		if code != http.StatusOK || v != before.Seq+1 {
			t.Fatalf("leader write after the follower's attempt: %d, version %d; want 200, %d", code, v, before.Seq+1)
		}
		if code, _, _ := do(t, http.MethodGet, furl+"/v1/kv/rogue?min_seq="+strconv.FormatUint(v, 10), nil); code != http.StatusNotFound {
			t.Fatalf("follower read of the rogue key: %d, want 404", code)
		}
		waitState(t, lurl, stateReady, time.Second)
	})
}

// The leader drops heartbeats it cannot decode (an id with spaces or control characters, an empty id, no JSON) and
// those claiming more than it published, counts each in replikv_errors_total{kind="bad_heartbeat"}, and lists none
// of them as a follower.
func TestLeader_CountsBadHeartbeats(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	put(t, lurl, "a", "1")
	bad := [][]byte{
		[]byte(`{"id":"two words","state":"ready","applied":1}`),
		[]byte(`{"id":"esc\u001b[2J","state":"ready","applied":1}`),
		[]byte(`{"id":"bidi\u202egnp.","state":"ready","applied":1}`),
		[]byte(`{"id":"` + strings.Repeat("x", 257) + `","state":"ready","applied":1}`),
		[]byte(`{"id":"","state":"ready","applied":1}`),
		[]byte(`not json`),
		[]byte(`{"id":"ahead","state":"ready","applied":1000000}`),
	}
	journaltest.PublishRawHeartbeats(t, l.NATSURL(), "REPLIKV", "", "", bad...)
	eventually(t, 10*time.Second, func() string {
		if n := errorsCounted(t, lurl, "bad_heartbeat"); n != float64(len(bad)) {
			return fmt.Sprintf("bad_heartbeat counted %v, want %d", n, len(bad))
		}
		return ""
	})
	_, b, _ := do(t, http.MethodGet, lurl+"/v1/followers", nil)
	if strings.Contains(string(b), `"id"`) {
		t.Fatalf("a dropped heartbeat is listed: %s", b)
	}
}

// errorsCounted is the sum of the node's replikv_errors_total counters of kind, read from its /metrics.
func errorsCounted(t *testing.T, url, kind string) float64 {
	t.Helper()
	_, b, _ := do(t, http.MethodGet, url+"/metrics", nil)
	var sum float64
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "replikv_errors_total{") || !strings.Contains(line, `kind="`+kind+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
