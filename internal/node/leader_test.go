package node

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
)

func TestLeader_ConcurrentWritesAndConditions(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)

	t.Run("OK", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for j := 0; j < 50; j++ {
					if code, _ := put(t, url, fmt.Sprintf("c/%d/%d", i, j), "v"); code != http.StatusOK {
						t.Errorf("put: %d", code)
					}
				}
			}(i)
		}
		wg.Wait()
		var d digestBody
		getJSON(t, url+"/v1/digest", &d)
		if d.Keys != 800 {
			t.Fatalf("keys = %d, want 800", d.Keys)
		}
	})

	t.Run("IfNoneMatchSeesInFlight", func(t *testing.T) {
		// 32 concurrent creates of one key: the in-flight overlay must let exactly one win.
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				code, _ := put(t, url, "race/key", fmt.Sprint(i), "If-None-Match", "*")
				switch code {
				case http.StatusOK:
					wins.Add(1)
				case http.StatusPreconditionFailed:
					conflicts.Add(1)
				default:
					t.Errorf("unexpected %d", code)
				}
			}(i)
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 31 {
			t.Fatalf("wins %d conflicts %d, want 1 and 31", wins.Load(), conflicts.Load())
		}
	})

	t.Run("IfMatchChain", func(t *testing.T) {
		_, v := put(t, url, "cas", "0")
		// Many concurrent CAS attempts against the same version: exactly one wins.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, _ := put(t, url, "cas", "x", "If-Match", fmt.Sprintf("%q", fmt.Sprint(v))); code == http.StatusOK {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("wins = %d, want 1", wins.Load())
		}
	})

	t.Run("DeleteAbsent", func(t *testing.T) {
		code, _, _ := do(t, http.MethodDelete, url+"/v1/kv/never-written", nil)
		if code != http.StatusNotFound {
			t.Fatalf("delete absent: %d", code)
		}
		put(t, url, "gone", "x")
		code, _, _ = do(t, http.MethodDelete, url+"/v1/kv/gone", nil)
		if code != http.StatusOK {
			t.Fatalf("delete: %d", code)
		}
		code, _, _ = do(t, http.MethodGet, url+"/v1/kv/gone", nil)
		if code != http.StatusNotFound {
			t.Fatalf("get deleted: %d", code)
		}
	})
}

func TestLeader_RestartRecoversFromLog(t *testing.T) {
	dataDir, snapDir := t.TempDir(), t.TempDir()
	l := startLeader(t, dataDir, snapDir)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	for i := 0; i < 200; i++ {
		put(t, url, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	var before digestBody
	getJSON(t, url+"/v1/digest", &before)
	// Roll the store back by removing it: the leader must rebuild it from the log alone.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	natsPort := l.NATSURL()[len("nats://127.0.0.1:"):]
	removeStore(t, dataDir)
	l2 := startLeader(t, dataDir, snapDir, "--nats-listen", "127.0.0.1:"+natsPort)
	url2 := base(l2.HTTPAddr())
	waitState(t, url2, stateReady, 20*time.Second)
	var after digestBody
	getJSON(t, url2+"/v1/digest", &after)
	// The same state, and one entry more in the log: the restarted leader's term.
	if after.Keys != before.Keys || after.Digest != before.Digest || after.Seq != before.Seq+1 {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if code, v := put(t, url2, "new", "x"); code != http.StatusOK || v != after.Seq+1 {
		t.Fatalf("write after restart: %d version %d, want 200 and %d", code, v, after.Seq+1)
	}
}

// A second leader process finds the lease held: it follows the log, answers reads that see the leader's writes, and
// redirects writers to the leader.
func TestLeader_SecondLeaderFollows(t *testing.T) {
	snapDir := t.TempDir()
	l1 := startLeader(t, t.TempDir(), snapDir)
	url1 := base(l1.HTTPAddr())
	waitState(t, url1, stateReady, 20*time.Second)
	put(t, url1, "a", "1")

	l2 := startLeader(t, t.TempDir(), snapDir, "--nats-url", l1.NATSURL())
	url2 := base(l2.HTTPAddr())
	if st := waitRole(t, url2, api.RoleFollower, 20*time.Second); st.LeaderURL != url1 {
		t.Fatalf("the second leader follows %q, want %s", st.LeaderURL, url1)
	}
	code, b, hdr := do(t, http.MethodPut, url2+"/v1/kv/b", []byte("2"))
	if code != http.StatusTemporaryRedirect || !strings.HasPrefix(hdr.Get("Location"), url1) {
		t.Fatalf("write on the second leader: %d %s to %q, want 307 to %s", code, b, hdr.Get("Location"), url1)
	}
	put(t, url1, "a", "2")
	if code, got, _ := getKey(t, url2, "a"); code != http.StatusOK || got != "2" {
		t.Fatalf("read on the second leader after a write on the first: %d %q, want \"2\"", code, got)
	}
	for _, path := range []string{"/v1/snapshots", "/v1/followers"} {
		if code, _, _ := do(t, http.MethodGet, url2+path, nil); code != http.StatusNotFound {
			t.Fatalf("GET %s on the following leader: %d, want 404", path, code)
		}
	}
	if code, _ := put(t, url1, "c", "3"); code != http.StatusOK {
		t.Fatalf("first leader write: %d", code)
	}
}

func TestLeader_RogueWriterFences(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v := put(t, url, "a", "1")

	// Another writer appends behind the leader's back, as a stale leader without a lease would.
	jc := connectJournal(t, l.NATSURL())
	ack, err := jc.PublishAsync(t.Context(), apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("rogue"), Value: []byte("x")}), v, "rogue-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ack.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	code, b, _ := do(t, http.MethodPut, url+"/v1/kv/b", []byte("2"))
	if code != http.StatusServiceUnavailable {
		t.Fatalf("write after rogue append: %d %s", code, b)
	}
	mustContain(t, string(b), "not_leader")
	st := waitState(t, url, stateDegraded, 5*time.Second)
	mustContain(t, st.Error, "fenced")
	// The leader never overwrote: the log still ends with the rogue entry.
	info, err := jc.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.LastSeq != v+1 {
		t.Fatalf("log last seq %d, want %d", info.LastSeq, v+1)
	}
}

func connectJournal(t testing.TB, url string) *journal.Conn {
	t.Helper()
	jc, err := journal.Connect(t.Context(), journal.Config{URL: url, Stream: "REPLIKV", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jc.Close)
	return jc
}

func TestLeader_NATSOutage(t *testing.T) {
	natsDir := t.TempDir()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: natsDir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	natsURL := emb.ClientURL()
	listen := natsURL[len("nats://"):]
	l := startLeader(t, t.TempDir(), t.TempDir(), "--nats-url", natsURL)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v := put(t, url, "before", "1")

	emb.Close()
	// Writes fail fast with 503 and nothing is applied without an ack.
	eventually(t, 10*time.Second, func() string {
		start := time.Now()
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/during", []byte("x"))
		if code != http.StatusServiceUnavailable {
			return fmt.Sprintf("write during outage: %d %s", code, b)
		}
		if d := time.Since(start); d > 2*time.Second {
			return fmt.Sprintf("503 took %s", d)
		}
		return ""
	})
	// A write whose ack was lost leaves its key's outcome open: a linearizable read of it either finds nothing or
	// cannot answer (504) until the log is back; it never sees the value.
	switch code, b, _ := do(t, http.MethodGet, url+"/v1/kv/during?timeout=300ms", nil); code {
	case http.StatusNotFound, http.StatusGatewayTimeout:
	default:
		t.Fatalf("unacknowledged write applied: GET %d %s", code, b)
	}

	emb2, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: listen, StoreDir: natsDir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb2.Close)
	// The leader reconnects by itself; the log may hold a write whose answer was lost, so versions may have moved.
	eventually(t, 30*time.Second, func() string {
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/after", []byte("2"))
		if code != http.StatusOK {
			return fmt.Sprintf("write after outage: %d %s", code, b)
		}
		return ""
	})
	code, b, _ := do(t, http.MethodGet, url+"/v1/kv/before", nil)
	if code != http.StatusOK || string(b) != "1" {
		t.Fatalf("acknowledged write lost: %d %q (version %d)", code, b, v)
	}
}

func TestLeader_StandbyTakesOverReleasedLease(t *testing.T) {
	natsDir, snapDir := t.TempDir(), t.TempDir()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: natsDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	l1 := startLeader(t, t.TempDir(), snapDir, "--nats-url", emb.ClientURL())
	url1 := base(l1.HTTPAddr())
	waitState(t, url1, stateReady, 20*time.Second)
	put(t, url1, "a", "1")
	l2 := startLeader(t, t.TempDir(), snapDir, "--nats-url", emb.ClientURL())
	url2 := base(l2.HTTPAddr())
	waitRole(t, url2, api.RoleFollower, 20*time.Second)

	var before digestBody
	getJSON(t, url1+"/v1/digest", &before)
	if err := l1.Close(); err != nil { // releases the lease
		t.Fatal(err)
	}
	waitRole(t, url2, api.RoleLeader, 30*time.Second)
	var after digestBody
	getJSON(t, url2+"/v1/digest", &after)
	if after.Keys != before.Keys || after.Digest != before.Digest || after.Seq != before.Seq+1 { // +1: its term
		t.Fatalf("standby state %+v, want %+v", after, before)
	}
	if code, v := put(t, url2, "b", "2"); code != http.StatusOK || v != after.Seq+1 {
		t.Fatalf("standby write: %d version %d", code, v)
	}
}

// An entry of the leader's own that lands after a resync read the log (a publish sent just before the resync, whose
// ack was lost) makes the next write fail with wrong-last-sequence. That is not another writer: the leader
// resynchronises again instead of fencing itself for good.
func TestLeader_OwnStragglerIsNotAnotherWriter(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v := put(t, url, "a", "1")

	// The straggler: published with the pipeline's own Nats-Msg-Id prefix, behind the pipeline's back.
	jc := connectJournal(t, l.NATSURL())
	id := l.pipeline().msgID + "straggler"
	ack, err := jc.PublishAsync(t.Context(), apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("s"), Value: []byte("x")}), v, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ack.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	code, b, _ := do(t, http.MethodPut, url+"/v1/kv/b", []byte("2"))
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), `"unavailable"`) {
		t.Fatalf("write after the straggler: %d %s, want 503 unavailable (refused, not committed)", code, b)
	}
	eventually(t, 10*time.Second, func() string {
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/b", []byte("2"))
		if code != http.StatusOK {
			return fmt.Sprintf("write after the resync: %d %s", code, b)
		}
		return ""
	})
	if code, b, _ := do(t, http.MethodGet, url+"/v1/kv/s", nil); code != http.StatusOK || string(b) != "x" {
		t.Fatalf("the straggler's entry: %d %q", code, b)
	}
	if st := waitState(t, url, stateReady, 5*time.Second); st.Error != "" {
		t.Fatalf("status error %q", st.Error)
	}
}

// A heartbeat claiming more than the leader ever published (forged, or from another log) is dropped: it never
// counts as a sync confirmation.
func TestLeader_DropsHeartbeatBeyondTheLog(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir(), "--sync-followers", "1", "--sync-timeout", "300ms")
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	jc := connectJournal(t, l.NATSURL())
	for range 5 {
		if err := jc.PublishHeartbeat(journal.Heartbeat{ID: "forged", State: journal.StateReady, Applied: math.MaxUint64,
			SentAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	code, b, _ := do(t, http.MethodPut, url+"/v1/kv/k", []byte("v"))
	if code != http.StatusAccepted || !strings.Contains(string(b), `"replicated":0`) {
		t.Fatalf("write with only a forged follower: %d %s, want 202 replicated 0", code, b)
	}
	for _, f := range l.Followers() {
		if f.ID == "forged" {
			t.Fatalf("forged follower listed: %+v", f)
		}
	}
}

// A leader whose store holds entries never creates an empty log in place of a missing one: it reports failed and
// leaves the server without a stream, so a log the server failed to recover is not replaced.
func TestLeader_MissingLogNotRecreated(t *testing.T) {
	dataDir, snapDir := t.TempDir(), t.TempDir()
	natsURL := startSharedNATS(t)
	l := startLeader(t, dataDir, snapDir, "--nats-url", natsURL)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	put(t, url, "a", "1")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	empty := startSharedNATS(t)
	l = startLeader(t, dataDir, snapDir, "--nats-url", empty)
	st := waitState(t, base(l.HTTPAddr()), stateFailed, 20*time.Second)
	mustContain(t, st.Error, "does not create an empty log")
	if _, err := connectJournal(t, empty).Info(t.Context()); !errors.Is(err, journal.ErrNoStream) {
		t.Fatalf("log stream on the new server: %v, want ErrNoStream", err)
	}
}
