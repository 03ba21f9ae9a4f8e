package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
)

// Each test here pins one way a leader's answer could contradict the log (issue: leader reads and 412s that a
// history checker found not linearizable). They hold the leader's acks back through the pipeline's ackHook, so that
// an entry is in the log (where followers apply it at once) before the leader has applied it.

// ackGate holds the leader's acks back until released; fail makes the held acks fail as if they were lost.
type ackGate struct {
	release chan struct{}
	fail    error
	held    chan uint64 // each held sequence, as the committer reaches it
}

// holdAcks installs a gate on l's pipeline. release() lets the held acks (and every later one) through.
func holdAcks(t *testing.T, l *Leader, fail error) (g *ackGate, release func()) {
	t.Helper()
	p := l.pipeline()
	if p == nil {
		t.Fatal("leader has no pipeline")
	}
	g = &ackGate{release: make(chan struct{}), fail: fail, held: make(chan uint64, 16)}
	hook := func(seq uint64) error {
		select {
		case g.held <- seq:
		default:
		}
		<-g.release
		if g.fail != nil {
			return g.fail
		}
		return nil
	}
	p.ackHook.Store(&hook)
	var done bool
	release = func() {
		if !done {
			done = true
			close(g.release)
		}
	}
	t.Cleanup(func() { release(); p.ackHook.Store(nil) })
	return g, release
}

// answer is one HTTP answer, received by a goroutine.
type answer struct {
	code int
	body []byte
	hdr  http.Header
	at   time.Time
}

// async sends a request in its own goroutine; the answer arrives on the channel.
func async(t *testing.T, method, url string, body []byte, hdr ...string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		code, b, h := do(t, method, url, body, hdr...)
		ch <- answer{code: code, body: b, hdr: h, at: time.Now()}
	}()
	return ch
}

// logHolds waits until the log's last sequence reaches seq: the entry is committed, whatever the leader knows.
func logHolds(t *testing.T, jc *journal.Conn, seq uint64) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		info, err := jc.Info(t.Context())
		if err != nil {
			return err.Error()
		}
		if info.LastSeq < seq {
			return fmt.Sprintf("log last seq %d, want %d", info.LastSeq, seq)
		}
		return ""
	})
}

// notYet fails if an answer arrives within d: the request must wait for something the test still holds back.
func notYet(t *testing.T, what string, ch <-chan answer, d time.Duration) {
	t.Helper()
	select {
	case a := <-ch:
		t.Fatalf("%s answered %d %s (version %s) while the leader had not applied a committed write",
			what, a.code, a.body, a.hdr.Get("ETag"))
	case <-time.After(d):
	}
}

func recv(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no answer in 30 s")
		return answer{}
	}
}

// A: a write the log holds (a follower may serve it) is seen by every leader read that starts afterwards, even
// before the leader has its ack.
func TestLeader_ReadSeesCommittedUnackedWrite(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	put(t, url, "other", "o")
	_, v1 := put(t, url, "k", "old")
	jc := connectJournal(t, l.NATSURL())

	g, release := holdAcks(t, l, nil)
	w := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new"))
	<-g.held
	logHolds(t, jc, v1+1)

	// A read of a key with no write in flight does not wait for k's.
	if code, b, _ := do(t, http.MethodGet, url+"/v1/kv/other?timeout=2s", nil); code != http.StatusOK || string(b) != "o" {
		t.Fatalf("GET of a key without a write in flight, while k's ack is held: %d %q", code, b)
	}

	for _, path := range []string{"/v1/kv/k", "/v1/kv?values=true", "/v1/digest"} {
		r := async(t, http.MethodGet, url+path, nil)
		notYet(t, "GET "+path, r, 300*time.Millisecond)
		defer func(path string, r <-chan answer) {
			a := recv(t, r)
			if a.code != http.StatusOK || a.hdr.Get("Replikv-Seq") != strconv.FormatUint(v1+1, 10) {
				t.Errorf("GET %s: %d %s, Replikv-Seq %s; want 200 at seq %d", path, a.code, a.body,
					a.hdr.Get("Replikv-Seq"), v1+1)
			}
		}(path, r)
	}
	release()
	if a := recv(t, w); a.code != http.StatusOK {
		t.Fatalf("PUT: %d %s", a.code, a.body)
	}
	code, b, h := do(t, http.MethodGet, url+"/v1/kv/k", nil)
	if code != http.StatusOK || string(b) != "new" || h.Get("ETag") != etagOf(v1+1) {
		t.Fatalf("GET after the ack: %d %q %s", code, b, h.Get("ETag"))
	}
}

func etagOf(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// B: a 412 (or a 404 of a delete) decided on a write still in flight is answered only once that write is applied,
// so that no read after the 412 can find the very version the 412 called stale.
func TestLeader_PreconditionOnInFlightWrite(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v1 := put(t, url, "k", "old")
	_, vd := put(t, url, "d", "x")
	jc := connectJournal(t, l.NATSURL())

	g, release := holdAcks(t, l, nil)
	w := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new"))
	<-g.held
	del := async(t, http.MethodDelete, url+"/v1/kv/d", nil)
	cas := async(t, http.MethodPut, url+"/v1/kv/k", []byte("cas"), "If-Match", etagOf(v1))
	// The delete of d is in flight behind k's write; a second delete of d must not say 404 before it is applied.
	logHolds(t, jc, vd+2)
	del2 := async(t, http.MethodDelete, url+"/v1/kv/d", nil)
	notYet(t, "CAS on an in-flight version", cas, 300*time.Millisecond)
	notYet(t, "DELETE of a key deleted in flight", del2, 100*time.Millisecond)
	released := time.Now()
	release()
	for name, ch := range map[string]<-chan answer{"PUT": w, "DELETE": del} {
		if a := recv(t, ch); a.code != http.StatusOK {
			t.Fatalf("%s: %d %s", name, a.code, a.body)
		}
	}
	a := recv(t, cas)
	if a.code != http.StatusPreconditionFailed || a.at.Before(released) {
		t.Fatalf("CAS: %d %s at %s, want 412 after the release at %s", a.code, a.body, a.at, released)
	}
	if a := recv(t, del2); a.code != http.StatusNotFound {
		t.Fatalf("second DELETE: %d %s, want 404", a.code, a.body)
	}
}

// B, failure side: when the in-flight write the precondition failed against is not confirmed, the conditional
// write is answered 503 unavailable (nothing was sent for it), never 412.
func TestLeader_PreconditionOnFailedInFlightWrite(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v1 := put(t, url, "k", "old")

	lost := fmt.Errorf("test: ack lost: %w", journal.ErrUnavailable)
	g, release := holdAcks(t, l, lost)
	w := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new"))
	<-g.held
	cas := async(t, http.MethodPut, url+"/v1/kv/k", []byte("cas"), "If-Match", etagOf(v1))
	notYet(t, "CAS on an in-flight version", cas, 300*time.Millisecond)
	release()
	a := recv(t, w)
	if a.code != http.StatusServiceUnavailable || errCode(t, a.body) != "outcome_unknown" {
		t.Fatalf("PUT with a lost ack: %d %s, want 503 outcome_unknown", a.code, a.body)
	}
	a = recv(t, cas)
	if a.code != http.StatusServiceUnavailable || errCode(t, a.body) != "unavailable" {
		t.Fatalf("CAS on a failed in-flight write: %d %s, want 503 unavailable", a.code, a.body)
	}
	// The lost ack's entry is in the log: after the resync the leader serves it.
	code, b, h := do(t, http.MethodGet, url+"/v1/kv/k", nil)
	if code != http.StatusOK || string(b) != "new" || h.Get("ETag") != etagOf(v1+1) {
		t.Fatalf("GET after the resync: %d %q %s", code, b, h.Get("ETag"))
	}
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Code
}

// C: a leader that has not replayed the log answers no read from a store it already has: while another node holds
// the lease it follows the log, and its reads wait for the log's end.
func TestLeader_NoReadBeforeRecovery(t *testing.T) {
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	dataDir, snapDir := t.TempDir(), t.TempDir()
	l := startLeader(t, dataDir, snapDir, "--nats-url", emb.ClientURL())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v1 := put(t, url, "k", "old")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The log moves on while the leader is down (its last write, applied to the log only), and the leader cannot
	// replay it on restart: someone else holds the lease.
	jc := connectJournal(t, emb.ClientURL())
	lease, err := jc.AcquireLease(t.Context(), journal.LeaderInfo{ID: "other", URL: "http://127.0.0.1:1", Since: time.Now()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := jc.PublishAsync(t.Context(), apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("k"), Value: []byte("new")}), v1, "other-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ack.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}

	l = startLeader(t, dataDir, snapDir, "--nats-url", emb.ClientURL())
	url = base(l.HTTPAddr())
	// It follows the log while the other holds the lease: a read answers the log's value, never its store's.
	eventually(t, 20*time.Second, func() string {
		code, b, _ := do(t, http.MethodGet, url+"/v1/kv/k?timeout=1s", nil)
		if code == http.StatusOK && string(b) != "new" {
			t.Fatalf("GET on a leader without the lease: %q, want the log's value", b)
		}
		if code != http.StatusOK {
			return fmt.Sprintf("GET: %d %s", code, b)
		}
		return ""
	})
	if st := waitRole(t, url, api.RoleFollower, 20*time.Second); st.LeaderURL != "http://127.0.0.1:1" {
		t.Fatalf("following %q, want the lease holder's URL", st.LeaderURL)
	}

	lease.Close(t.Context())
	waitRole(t, url, api.RoleLeader, 30*time.Second)
	code, b, _ := do(t, http.MethodGet, url+"/v1/kv/k", nil)
	if code != http.StatusOK || string(b) != "new" {
		t.Fatalf("GET after recovery: %d %q, want the log's value", code, b)
	}
}

// D: while the write pipeline cannot resynchronise with the log (NATS down after a lost ack), the leader answers
// no read from its stale store; once NATS is back it resynchronises within a second and reads see the log.
func TestLeader_NoStaleReadUntilResync(t *testing.T) {
	natsDir := t.TempDir()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: natsDir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	natsURL := emb.ClientURL()
	l := startLeader(t, t.TempDir(), t.TempDir(), "--nats-url", natsURL)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v1 := put(t, url, "k", "old")
	jc := connectJournal(t, natsURL)

	g, release := holdAcks(t, l, fmt.Errorf("test: ack lost: %w", journal.ErrUnavailable))
	w := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new"))
	<-g.held
	logHolds(t, jc, v1+1)
	emb.Close()
	release()
	if a := recv(t, w); a.code != http.StatusServiceUnavailable || errCode(t, a.body) != "outcome_unknown" {
		t.Fatalf("PUT with a lost ack: %d %s, want 503 outcome_unknown", a.code, a.body)
	}
	st := waitState(t, url, stateDegraded, 2*time.Second)
	if st.Error == "" {
		t.Fatal("degraded without an error")
	}
	code, b, _ := do(t, http.MethodGet, url+"/v1/kv/k?timeout=500ms", nil)
	if code != http.StatusGatewayTimeout {
		t.Fatalf("GET while the leader cannot resync: %d %q, want 504", code, b)
	}

	emb2, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: natsURL[len("nats://"):], StoreDir: natsDir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb2.Close)
	back := time.Now()
	code, b, h := do(t, http.MethodGet, url+"/v1/kv/k?timeout=20s", nil)
	if code != http.StatusOK || string(b) != "new" || h.Get("ETag") != etagOf(v1+1) {
		t.Fatalf("GET after NATS is back: %d %q %s", code, b, h.Get("ETag"))
	}
	waitState(t, url, stateReady, 5*time.Second)
	t.Logf("reads served again %s after NATS accepted connections", time.Since(back))
}
