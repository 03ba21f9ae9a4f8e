package node

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/testutil/tcpproxy"
)

// failoverTTL is the lease TTL of the failover tests.
const failoverTTL = 2 * time.Second

// failoverSetup is a leader whose link to NATS goes through a proxy (so that cutting it is a crash as the others see
// it), on an embedded NATS server of the test, with lease TTL failoverTTL.
type failoverSetup struct {
	emb     *journal.Embedded
	proxy   *tcpproxy.Proxy
	leader  *Leader
	url     string
	snapDir string
}

func startFailover(t *testing.T) failoverSetup {
	t.Helper()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	s := failoverSetup{emb: emb, proxy: tcpproxy.Start(t, strings.TrimPrefix(emb.ClientURL(), "nats://")),
		snapDir: t.TempDir()}
	s.leader = startLeader(t, t.TempDir(), s.snapDir, "--nats-url", "nats://"+s.proxy.Addr(),
		"--lease-ttl", failoverTTL.String())
	s.url = base(s.leader.HTTPAddr())
	waitState(t, s.url, stateReady, 20*time.Second)
	return s
}

// follower starts a follower on the setup's NATS server (through its own proxy when proxied) with args.
func (s failoverSetup) follower(t *testing.T, proxied bool, args ...string) (*Follower, string, *tcpproxy.Proxy) {
	t.Helper()
	natsURL := s.emb.ClientURL()
	var p *tcpproxy.Proxy
	if proxied {
		p = tcpproxy.Start(t, strings.TrimPrefix(natsURL, "nats://"))
		natsURL = "nats://" + p.Addr()
	}
	f := startFollower(t, t.TempDir(), s.snapDir, natsURL, append([]string{"--lease-ttl", failoverTTL.String()},
		args...)...)
	return f, base(f.HTTPAddr()), p
}

func status(t *testing.T, url string) statusBody {
	t.Helper()
	var st statusBody
	getJSON(t, url+"/v1/status", &st)
	return st
}

// putVia writes key through url, following a 307 to the leader, until it is answered 200 or 10 s passed (a client
// retries a 503: a follower's view of the lease may be a second old, so it may send the writer to the old leader).
// It returns the last answer's status.
func putVia(t *testing.T, url, key, value string) int {
	t.Helper()
	var code int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var hdr http.Header
		code, _, hdr = do(t, http.MethodPut, url+"/v1/kv/"+key, []byte(value))
		if code == http.StatusTemporaryRedirect {
			code = tryPut(hdr.Get("Location"), value)
		}
		if code == http.StatusOK {
			return code
		}
	}
	return code
}

// tryPut puts value at url and returns the status, 0 when the node cannot be reached (a leader that is gone).
func tryPut(url, value string) int {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(value))
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// With --failover auto, when the leader stops renewing its lease (cut off from NATS, as in a crash), exactly one of
// the ready followers takes the lease within the TTL plus a little, replays the log to its end and takes writes:
// every write the old leader acknowledged is there, the other follower sends writers to the new leader and converges
// with it. The old leader, back on NATS, finds the lease taken, takes no write and follows the new leader.
func TestFollower_AutoFailover(t *testing.T) {
	s := startFailover(t)
	_, urlA, _ := s.follower(t, false, "--failover", "auto")
	_, urlB, _ := s.follower(t, false, "--failover", "auto")
	acked := map[string]string{}
	for i := range 200 {
		k, v := fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)
		if code, _ := put(t, s.url, k, v); code != http.StatusOK {
			t.Fatalf("put %s: %d", k, code)
		}
		acked[k] = v
	}
	waitState(t, urlA, stateReady, 20*time.Second)
	waitState(t, urlB, stateReady, 20*time.Second)
	epoch1 := status(t, s.url).Epoch

	s.proxy.Cut()
	cut := time.Now()
	var leaderURL, otherURL string
	eventually(t, failoverTTL+10*time.Second, func() string {
		a, b := status(t, urlA), status(t, urlB)
		switch {
		case a.Role == api.RoleLeader && b.Role == api.RoleLeader:
			t.Fatalf("two followers lead: %+v and %+v", a, b)
		case a.Role == api.RoleLeader && a.State == stateReady:
			leaderURL, otherURL = urlA, urlB
		case b.Role == api.RoleLeader && b.State == stateReady:
			leaderURL, otherURL = urlB, urlA
		default:
			return fmt.Sprintf("roles %s/%s, states %s/%s", a.Role, b.Role, a.State, b.State)
		}
		return ""
	})
	took := time.Since(cut)
	t.Logf("a follower leads %v after the leader was cut off (lease TTL %v)", took.Round(time.Millisecond), failoverTTL)
	if took > failoverTTL+2*time.Second+time.Second { // the poll's own period on top of the goal
		t.Errorf("takeover took %v, want at most the lease TTL + 2 s", took)
	}
	if e := status(t, leaderURL).Epoch; e <= epoch1 {
		t.Fatalf("new leader's epoch %d, want above %d", e, epoch1)
	}
	for k, v := range acked {
		if code, got, _ := getKey(t, leaderURL, k); code != http.StatusOK || got != v {
			t.Fatalf("%s on the new leader: %d %q, want %q", k, code, got, v)
		}
	}
	// Writes through either follower reach the new leader.
	if code := putVia(t, otherURL, "after", "1"); code != http.StatusOK {
		t.Fatalf("write through the other follower: %d", code)
	}
	if code := putVia(t, leaderURL, "after2", "2"); code != http.StatusOK {
		t.Fatalf("write on the new leader: %d", code)
	}
	if st := status(t, otherURL); st.Role != api.RoleFollower || st.LeaderURL != leaderURL {
		t.Fatalf("other follower: role %s, leader %q; want follower of %s", st.Role, st.LeaderURL, leaderURL)
	}
	digestsEqual(t, leaderURL, otherURL, 20*time.Second)

	// The old leader comes back: it finds the lease taken, takes no write, and follows the new leader.
	s.proxy.Pass()
	eventually(t, 20*time.Second, func() string {
		code, body, hdr := do(t, http.MethodPut, s.url+"/v1/kv/stale", []byte("x"))
		if code == http.StatusTemporaryRedirect && strings.HasPrefix(hdr.Get("Location"), leaderURL) {
			return ""
		}
		if code == http.StatusOK {
			t.Fatalf("the old leader took a write after a follower took over")
		}
		return fmt.Sprintf("write on the old leader: %d %s", code, body)
	})
	digestsEqual(t, leaderURL, s.url, 20*time.Second)
}

// POST /v1/promote: refused while another leader holds the lease (409 leader_alive, and the follower goes on
// following), by a follower that is not ready (409 not_eligible) and with --failover off (409 failover_off); once the
// leader is gone the follower takes over and answers 200 with its status as leader, and writes go on from the log's
// end.
func TestFollower_PromoteByHand(t *testing.T) {
	s := startFailover(t)
	f, url, _ := s.follower(t, false) // --failover manual, the default
	_, offURL, _ := s.follower(t, false, "--failover", "off")
	_, v1 := put(t, s.url, "k", "1")
	waitState(t, url, stateReady, 20*time.Second)

	code, body, _ := do(t, http.MethodPost, url+"/v1/promote?timeout=500ms", nil)
	if code != http.StatusConflict || !strings.Contains(string(body), "leader_alive") {
		t.Fatalf("promote while the leader lives: %d %s, want 409 leader_alive", code, body)
	}
	if st := status(t, url); st.Role != api.RoleFollower || f.Leading() {
		t.Fatalf("after a refused promotion: role %s", st.Role)
	}
	if code, _ := put(t, s.url, "k", "2"); code != http.StatusOK {
		t.Fatalf("the leader stopped taking writes after a refused promotion: %d", code)
	}
	code, body, _ = do(t, http.MethodPost, offURL+"/v1/promote", nil)
	if code != http.StatusConflict || !strings.Contains(string(body), "failover_off") {
		t.Fatalf("promote with --failover off: %d %s, want 409 failover_off", code, body)
	}
	code, body, _ = do(t, http.MethodPost, url+"/v1/promote?timeout=forever", nil)
	if code != http.StatusBadRequest {
		t.Fatalf("promote with a bad timeout: %d %s, want 400", code, body)
	}
	code, _, _ = do(t, http.MethodGet, url+"/v1/promote", nil)
	if code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/promote: %d, want 405", code)
	}
	for _, path := range []string{"/v1/snapshots", "/v1/followers"} {
		if code, _, _ := do(t, http.MethodGet, url+path, nil); code != http.StatusNotFound {
			t.Fatalf("GET %s on a follower: %d, want 404", path, code)
		}
	}

	// A follower on a stream that does not exist is not ready, so not eligible.
	_, lostURL, _ := s.follower(t, false, "--stream", "NOSUCH")
	code, body, _ = do(t, http.MethodPost, lostURL+"/v1/promote?timeout=1s", nil)
	if code != http.StatusConflict || !strings.Contains(string(body), "not_eligible") {
		t.Fatalf("promote a follower that is not ready: %d %s, want 409 not_eligible", code, body)
	}

	if err := s.leader.Close(); err != nil { // releases the lease
		t.Fatal(err)
	}
	code, body, _ = do(t, http.MethodPost, url+"/v1/promote", nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"role":"leader"`) ||
		!strings.Contains(string(body), `"state":"ready"`) {
		t.Fatalf("promote once the leader is gone: %d %s, want 200 with role leader, ready", code, body)
	}
	if code, got, _ := getKey(t, url, "k"); code != http.StatusOK || got != "2" {
		t.Fatalf("k on the promoted follower: %d %q, want \"2\"", code, got)
	}
	if code, v := put(t, url, "k", "3"); code != http.StatusOK || v <= v1 {
		t.Fatalf("write on the promoted follower: %d version %d", code, v)
	}
	for _, path := range []string{"/v1/snapshots", "/v1/followers"} {
		if code, body, _ := do(t, http.MethodGet, url+path, nil); code != http.StatusOK {
			t.Fatalf("GET %s on the promoted follower: %d %s", path, code, body)
		}
	}
	if code, body, _ := do(t, http.MethodPost, url+"/v1/snapshots", nil); code != http.StatusCreated {
		t.Fatalf("snapshot on the promoted follower: %d %s", code, body)
	}
	// Promoting the leader again is a no-op that answers its status.
	if code, body, _ := do(t, http.MethodPost, url+"/v1/promote", nil); code != http.StatusOK ||
		!strings.Contains(string(body), `"role":"leader"`) {
		t.Fatalf("promote the leader: %d %s", code, body)
	}
	if code := putVia(t, offURL, "viaoff", "1"); code != http.StatusOK {
		t.Fatalf("write through the other follower: %d", code)
	}
	digestsEqual(t, url, offURL, 20*time.Second)
}

// A promoted follower that loses the lease (cut off from NATS while another follower takes over) stops taking
// writes and becomes a follower of the new leader by itself: it checks its store against the log, resumes from its
// applied sequence + 1, converges with the new leader and redirects writers to it.
func TestFollower_DemotedFollowsAgain(t *testing.T) {
	s := startFailover(t)
	_, urlA, proxyA := s.follower(t, true, "--failover", "manual")
	_, urlB, _ := s.follower(t, false, "--failover", "auto")
	put(t, s.url, "k", "1")
	waitState(t, urlA, stateReady, 20*time.Second)
	waitState(t, urlB, stateReady, 20*time.Second)
	// Hand the lease to A: the leader stops, so B (auto) may race A for it; promote A until it wins.
	if err := s.leader.Close(); err != nil {
		t.Fatal(err)
	}
	code, body, _ := do(t, http.MethodPost, urlA+"/v1/promote", nil)
	if code != http.StatusOK {
		if !strings.Contains(string(body), "leader_alive") {
			t.Fatalf("promote A: %d %s", code, body)
		}
		t.Skipf("B took the lease first (a legitimate race of --failover auto): %s", body)
	}
	_, vA := put(t, urlA, "k", "fromA")

	proxyA.Cut() // A stops renewing: B takes over
	eventually(t, failoverTTL+15*time.Second, func() string {
		if st := status(t, urlB); st.Role != api.RoleLeader || st.State != stateReady {
			return fmt.Sprintf("B: role %s, state %s", st.Role, st.State)
		}
		return ""
	})
	_, vB := put(t, urlB, "k", "fromB")
	if vB <= vA {
		t.Fatalf("B's version %d is not above A's %d", vB, vA)
	}
	proxyA.Pass()
	eventually(t, 30*time.Second, func() string {
		st := status(t, urlA)
		if st.Role == api.RoleFollower && st.State == stateReady && st.AppliedSeq >= vB {
			return ""
		}
		return fmt.Sprintf("A: role %s, state %s (%s), applied %d", st.Role, st.State, st.Error, st.AppliedSeq)
	})
	if code, got, v := getKey(t, urlA, "k"); code != http.StatusOK || got != "fromB" || v != vB {
		t.Fatalf("k on A: %d %q version %d, want \"fromB\" version %d", code, got, v, vB)
	}
	code, _, hdr := do(t, http.MethodPut, urlA+"/v1/kv/k", []byte("x"))
	if code != http.StatusTemporaryRedirect || !strings.HasPrefix(hdr.Get("Location"), urlB) {
		t.Fatalf("write on the demoted A: %d to %q, want 307 to %s", code, hdr.Get("Location"), urlB)
	}
	if code := putVia(t, urlA, "k", "viaA"); code != http.StatusOK {
		t.Fatalf("write through A: %d", code)
	}
	digestsEqual(t, urlA, urlB, 20*time.Second)
}

// A leader that lost its lease while frozen or cut off, and wakes up with a write to send, expects the log to end
// where it left it. The node that took over opens its term with an entry of its own before it takes any write, so
// that late write is refused by the log, and the new leader's own writes go on (it is not fenced by it).
func TestFollower_TermFencesThePreviousLeader(t *testing.T) {
	s := startFailover(t)
	_, url, _ := s.follower(t, false, "--failover", "auto")
	_, end := put(t, s.url, "k", "1") // the log's end as the old leader knows it
	waitState(t, url, stateReady, 20*time.Second)
	s.proxy.Cut()
	waitRole(t, url, api.RoleLeader, failoverTTL+10*time.Second)

	jc := connectJournal(t, s.emb.ClientURL())
	late := apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("k"), Value: []byte("late")})
	ack, err := jc.PublishAsync(t.Context(), late, end, "old-leader-late")
	if err == nil {
		_, err = ack.Wait(t.Context())
	}
	if !errors.Is(err, journal.ErrWrongLastSeq) {
		t.Fatalf("the old leader's late write after the takeover: %v, want it refused (wrong last sequence)", err)
	}
	if code, v := put(t, url, "k", "2"); code != http.StatusOK || v <= end+1 {
		t.Fatalf("write on the new leader: %d version %d", code, v)
	}
	if code, got, _ := getKey(t, url, "k"); code != http.StatusOK || got != "2" {
		t.Fatalf("k on the new leader: %d %q", code, got)
	}
}
