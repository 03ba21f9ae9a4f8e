package node

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/testutil/tcpproxy"
)

// A leader answers reads only while no other leader can hold the lease. Cut off from NATS (as a frozen or
// partitioned leader is), it stops before its lease can expire, so a standby that takes over and writes never has
// its writes hidden by the old leader's reads; and once it takes the lease again after it expired, its reads wait
// until its store holds what the log got meanwhile.
func TestLeader_ReadsNeedTheLease(t *testing.T) {
	tk := startTakeover(t)
	url1, l2, url2, proxy := tk.url1, tk.l2, tk.url2, tk.proxy

	proxy.Cut()
	waitRole(t, url2, api.RoleLeader, 30*time.Second)
	if code, _ := put(t, url2, "k", "new"); code != http.StatusOK {
		t.Fatalf("put on the new leader: %d", code)
	}
	code, body, _ := do(t, http.MethodGet, url1+"/v1/kv/k?timeout=500ms", nil)
	if code == http.StatusOK {
		t.Fatalf("the cut-off leader answered a read with %q after another leader took over", body)
	}
	if code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
		t.Fatalf("read on the cut-off leader: %d %s, want 503 or 504", code, body)
	}

	// The new leader steps down and releases the lease; the old one, reconnected, finds it free and takes it again.
	// It must not answer from its store before catching up with the new leader's write.
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	proxy.Pass()
	eventually(t, 30*time.Second, func() string {
		code, body, _ := do(t, http.MethodGet, url1+"/v1/kv/k?timeout=500ms", nil)
		switch {
		case code == http.StatusOK && string(body) == "new":
			return ""
		case code == http.StatusOK:
			t.Fatalf("the leader answered %q after taking the lease back; the log holds \"new\"", body)
		}
		return "read: " + strconv.Itoa(code) + " " + string(body)
	})
	// And it leads again: writes go on from the log's end.
	if code, _ := put(t, url1, "k", "newer"); code != http.StatusOK {
		t.Fatalf("put after taking the lease back: %d", code)
	}
}

// A leader that loses its lease to another leader stops taking writes and becomes a follower of the new leader by
// itself: it redirects writers to it and answers reads that see its writes. Once the lease is free again it takes
// it, and leads again from the log's end, without a restart.
func TestLeader_LostLeaseFollows(t *testing.T) {
	tk := startTakeover(t)
	url1, l2, url2, proxy, e1 := tk.url1, tk.l2, tk.url2, tk.proxy, tk.epoch1
	leaderHint(t, url1, url1) // the leader names itself
	leaderHint(t, url2, url1) // the standby follows it

	proxy.Cut()
	e2 := waitRole(t, url2, api.RoleLeader, 30*time.Second).Epoch
	if e1 == 0 || e2 <= e1 {
		t.Fatalf("epochs %d then %d: want a higher one at the takeover", e1, e2)
	}
	_, v2 := put(t, url2, "k", "new")
	proxy.Pass() // l1 finds l2 holding the lease
	if st := waitRole(t, url1, api.RoleFollower, 20*time.Second); st.LeaderURL != url2 {
		t.Fatalf("the demoted leader follows %q, want %s", st.LeaderURL, url2)
	}
	code, body, hdr := do(t, http.MethodPut, url1+"/v1/kv/k", []byte("stale"))
	if code != http.StatusTemporaryRedirect || !strings.HasPrefix(hdr.Get("Location"), url2) {
		t.Fatalf("write on the demoted leader: %d %s to %q, want 307 to %s", code, body, hdr.Get("Location"), url2)
	}
	if code, got, v := getKey(t, url1, "k"); code != http.StatusOK || got != "new" || v != v2 {
		t.Fatalf("k on the demoted leader: %d %q version %d, want \"new\" version %d", code, got, v, v2)
	}
	leaderHint(t, url1, url2)

	if err := l2.Close(); err != nil { // releases the lease
		t.Fatal(err)
	}
	if e3 := waitRole(t, url1, api.RoleLeader, 30*time.Second).Epoch; e3 <= e2 {
		t.Fatalf("epoch %d when leading again after epoch %d", e3, e2)
	}
	if code, got, v := getKey(t, url1, "k"); code != http.StatusOK || got != "new" || v != v2 {
		t.Fatalf("k on the leader again: %d %q version %d, want 200 \"new\" version %d", code, got, v, v2)
	}
	if code, v := put(t, url1, "k", "newer"); code != http.StatusOK || v <= v2 {
		t.Fatalf("write after leading again: %d version %d, want 200 and a version above %d", code, v, v2)
	}
}

// leaderHint checks the Replikv-Leader header of a status answer of the node at url ("" for none).
func leaderHint(t *testing.T, url, want string) {
	t.Helper()
	_, _, hdr := do(t, http.MethodGet, url+"/v1/status", nil)
	if got := hdr.Get(api.HeaderLeader); got != want {
		t.Fatalf("%s of %s = %q, want %q", api.HeaderLeader, url, got, want)
	}
}

// takeover is the setup of a takeover: a leader whose link to NATS goes through a proxy (to cut it off), holding
// k = "old", and a standby on the same NATS waiting for the lease; both with a 2 s lease.
type takeover struct {
	proxy      *tcpproxy.Proxy
	l2         *Leader
	url1, url2 string
	epoch1     uint64 // the first leader's epoch
}

func startTakeover(t *testing.T) takeover {
	t.Helper()
	s := startFailover(t)
	tk := takeover{proxy: s.proxy, url1: s.url, epoch1: status(t, s.url).Epoch}
	if code, _ := put(t, tk.url1, "k", "old"); code != http.StatusOK {
		t.Fatalf("put: %d", code)
	}
	tk.l2 = startLeader(t, t.TempDir(), s.snapDir, "--nats-url", s.emb.ClientURL(), "--lease-ttl",
		failoverTTL.String())
	tk.url2 = base(tk.l2.HTTPAddr())
	waitRole(t, tk.url2, api.RoleFollower, 20*time.Second) // the standby follows until the lease is free
	return tk
}

// While the write pipeline resyncs because the lease was taken again after it had expired, writes wait or answer
// 503: the leader is not ready until the resync is done.
func TestLeader_NotReadyWhileResyncRequested(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	g, release := holdAcks(t, l, nil)
	w := async(t, http.MethodPut, url+"/v1/kv/a", []byte("1"))
	<-g.held
	// The resync first drains the committer, which waits on the held ack: it cannot finish yet.
	l.pipeline().requestResync()
	eventually(t, 5*time.Second, func() string {
		if code, why := readyz(t, url); code != http.StatusServiceUnavailable || !strings.Contains(why, "taken again") {
			return fmt.Sprintf("readyz %d, error %q while the resync waits", code, why)
		}
		return ""
	})
	release()
	if a := recv(t, w); a.code != http.StatusOK {
		t.Fatalf("held write: %d %s", a.code, a.body)
	}
	waitState(t, url, stateReady, 10*time.Second)
}
