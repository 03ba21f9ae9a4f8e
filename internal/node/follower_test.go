package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/journal"
)

func TestFollower_ReplaysLogAndServesReads(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	for i := 0; i < 100; i++ {
		put(t, lurl, fmt.Sprintf("pre/%03d", i), "v")
	}
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), "--id", "f1")
	furl := base(f.HTTPAddr())

	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				put(t, lurl, fmt.Sprintf("live/%d/%d", i, j), fmt.Sprint(j))
			}
		}(i)
	}
	wg.Wait()
	st := waitState(t, furl, stateReady, 20*time.Second)
	if st.SnapshotSeq != 0 {
		t.Fatalf("snapshot_seq = %d, want 0 (log replay)", st.SnapshotSeq)
	}
	digestsEqual(t, lurl, furl, 20*time.Second)

	t.Run("ReadYourWrites", func(t *testing.T) {
		_, v := put(t, lurl, "ryw", "mine")
		code, b, h := do(t, http.MethodGet, fmt.Sprintf("%s/v1/kv/ryw?min_seq=%d", furl, v), nil)
		if code != http.StatusOK || string(b) != "mine" {
			t.Fatalf("min_seq read: %d %q", code, b)
		}
		if h.Get("Replikv-Seq") == "" {
			t.Fatal("no Replikv-Seq header")
		}
	})
	t.Run("Strong", func(t *testing.T) {
		put(t, lurl, "strong", "now")
		code, b, _ := do(t, http.MethodGet, furl+"/v1/kv/strong?consistency=strong", nil)
		if code != http.StatusOK || string(b) != "now" {
			t.Fatalf("strong read: %d %q", code, b)
		}
	})
	t.Run("Redirect", func(t *testing.T) {
		code, _, h := do(t, http.MethodPut, furl+"/v1/kv/a%2Fb?x=1", []byte("v"))
		if code != http.StatusTemporaryRedirect {
			t.Fatalf("follower write: %d", code)
		}
		if want := lurl + "/v1/kv/a%2Fb?x=1"; h.Get("Location") != want {
			t.Fatalf("Location %q, want %q", h.Get("Location"), want)
		}
	})
	t.Run("LeaderListsFollower", func(t *testing.T) {
		// With its URL, so that a tool given one node's URL finds the others.
		eventually(t, 10*time.Second, func() string {
			_, b, _ := do(t, http.MethodGet, lurl+"/v1/followers", nil)
			if !strings.Contains(string(b), `"id":"f1"`) || !strings.Contains(string(b), `"state":"ready"`) ||
				!strings.Contains(string(b), `"url":"`+furl+`"`) {
				return string(b)
			}
			return ""
		})
	})
	t.Run("StatusNamesLeader", func(t *testing.T) {
		var lst statusBody
		getJSON(t, lurl+"/v1/status", &lst)
		if lst.Epoch == 0 {
			t.Fatal("the leader's status has no epoch")
		}
		for _, u := range []string{lurl, furl} {
			eventually(t, 5*time.Second, func() string {
				var st statusBody
				getJSON(t, u+"/v1/status", &st)
				if st.LeaderURL != lurl || st.Epoch != lst.Epoch {
					return fmt.Sprintf("%s: leader_url %q epoch %d, want %q and %d", u, st.LeaderURL, st.Epoch, lurl,
						lst.Epoch)
				}
				return ""
			})
			leaderHint(t, u, lurl) // and every answer says where the leader is
		}
	})
}

func TestFollower_OnboardsFromSnapshotAfterCompaction(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--snapshot-keep", "2")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	var seqs []uint64
	for s := 0; s < 3; s++ {
		for i := 0; i < 50; i++ {
			put(t, lurl, fmt.Sprintf("k/%d/%d", s, i), fmt.Sprint(s))
		}
		code, b, _ := do(t, http.MethodPost, lurl+"/v1/snapshots", nil)
		if code != http.StatusCreated {
			t.Fatalf("snapshot: %d %s", code, b)
		}
		var m struct{ Seq uint64 }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, m.Seq)
	}
	var list struct {
		Snapshots []struct{ Seq uint64 } `json:"snapshots"`
	}
	getJSON(t, lurl+"/v1/snapshots", &list)
	if len(list.Snapshots) != 2 || list.Snapshots[0].Seq != seqs[2] || list.Snapshots[1].Seq != seqs[1] {
		t.Fatalf("retained %+v, want seqs %d and %d", list.Snapshots, seqs[2], seqs[1])
	}
	// The log now starts at the oldest retained snapshot's entry, kept to check the snapshot's mark against.
	jc := connectJournal(t, l.NATSURL())
	info, err := jc.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.FirstSeq != seqs[1] {
		t.Fatalf("log first seq %d, want %d", info.FirstSeq, seqs[1])
	}
	put(t, lurl, "after", "snap")

	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL())
	furl := base(f.HTTPAddr())
	st := waitState(t, furl, stateReady, 30*time.Second)
	if st.SnapshotSeq != seqs[2] {
		t.Fatalf("snapshot_seq %d, want newest %d", st.SnapshotSeq, seqs[2])
	}
	digestsEqual(t, lurl, furl, 20*time.Second)
}

func TestFollower_GapRebootstraps(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--snapshot-keep", "2")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	put(t, lurl, "a", "1")
	fdir := t.TempDir()
	f := startFollower(t, fdir, snapDir, l.NATSURL(), "--id", "gap")
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	digestsEqual(t, lurl, furl, 10*time.Second)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// While the follower is away the log is compacted past its position.
	for s := 0; s < 2; s++ {
		for i := 0; i < 20; i++ {
			put(t, lurl, fmt.Sprintf("g/%d/%d", s, i), "x")
		}
		if code, b, _ := do(t, http.MethodPost, lurl+"/v1/snapshots", nil); code != http.StatusCreated {
			t.Fatalf("snapshot: %d %s", code, b)
		}
	}
	f2 := startFollower(t, fdir, snapDir, l.NATSURL(), "--id", "gap")
	furl2 := base(f2.HTTPAddr())
	st := waitState(t, furl2, stateReady, 30*time.Second)
	if st.SnapshotSeq == 0 {
		t.Fatal("follower did not re-bootstrap from a snapshot")
	}
	digestsEqual(t, lurl, furl2, 20*time.Second)
}

func TestFollower_SyncReplication(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--sync-followers", "1", "--sync-timeout", "1s")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), "--id", "sync1")
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)

	eventually(t, 10*time.Second, func() string {
		code, b, _ := do(t, http.MethodPut, lurl+"/v1/kv/warm", []byte("x"))
		if code != http.StatusOK {
			return fmt.Sprintf("%d %s", code, b)
		}
		return ""
	})
	code, b, _ := do(t, http.MethodPut, lurl+"/v1/kv/s", []byte("synced"))
	if code != http.StatusOK || !strings.Contains(string(b), `"replicated":1`) {
		t.Fatalf("sync write: %d %s", code, b)
	}
	// Confirmed means applied on the follower: an eventual read there sees it at once.
	if code, b, _ := do(t, http.MethodGet, furl+"/v1/kv/s", nil); code != http.StatusOK || string(b) != "synced" {
		t.Fatalf("follower read after sync write: %d %q", code, b)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, b, _ = do(t, http.MethodPut, lurl+"/v1/kv/s2", []byte("alone"))
	if code != http.StatusAccepted || !strings.Contains(string(b), `"replicated":0`) {
		t.Fatalf("write without follower: %d %s", code, b)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("202 after %s, before the sync timeout", d)
	}
}

func TestFollower_BadEntryIsNeverSkipped(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	_, v := put(t, lurl, "a", "1")
	jc := connectJournal(t, l.NATSURL())
	ack, err := jc.PublishAsync(t.Context(), []byte{0x7f, 0x01, 0x02}, v, "garbage")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ack.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL())
	furl := base(f.HTTPAddr())
	st := waitState(t, furl, stateFailed, 20*time.Second)
	mustContain(t, st.Error, fmt.Sprintf("seq %d", v+1))
	if st.AppliedSeq != v {
		t.Fatalf("applied %d, want %d (stopped before the bad entry)", st.AppliedSeq, v)
	}
	// Eventual reads still answer from what was applied.
	if code, b, _ := do(t, http.MethodGet, furl+"/v1/kv/a", nil); code != http.StatusOK || string(b) != "1" {
		t.Fatalf("read: %d %q", code, b)
	}
}

func TestFollower_LogUnreachableIsNotReady(t *testing.T) {
	natsDir, snapDir := t.TempDir(), t.TempDir()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: natsDir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	natsURL := emb.ClientURL()
	l := startLeader(t, t.TempDir(), snapDir, "--nats-url", natsURL)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	put(t, lurl, "a", "1")
	f := startFollower(t, t.TempDir(), snapDir, natsURL)
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	// Ready allows --ready-lag entries of lag: wait until "a" is applied before cutting the log off.
	digestsEqual(t, lurl, furl, 10*time.Second)

	emb.Close()
	st := waitState(t, furl, stateFailed, 20*time.Second)
	mustContain(t, st.Error, "unreachable")
	if code, b, _ := do(t, http.MethodGet, furl+"/v1/kv/a", nil); code != http.StatusOK || string(b) != "1" {
		t.Fatalf("eventual read while cut off: %d %q", code, b)
	}
	if code, _, _ := do(t, http.MethodGet, furl+"/v1/kv/a?consistency=strong&timeout=300ms", nil); code != http.StatusGatewayTimeout {
		t.Fatalf("strong read while cut off: %d, want 504", code)
	}

	emb2, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: natsURL[len("nats://"):], StoreDir: natsDir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb2.Close)
	waitState(t, furl, stateReady, 30*time.Second)
	eventually(t, 30*time.Second, func() string {
		if code, _ := put(t, lurl, "b", "2"); code != http.StatusOK {
			return fmt.Sprintf("leader write: %d", code)
		}
		return ""
	})
	digestsEqual(t, lurl, furl, 20*time.Second)
}

func TestFollower_ReplaysWhenSnapshotDirMissing(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	put(t, lurl, "a", "1")
	// The follower's snapshot directory does not exist (no leader ever wrote there): no snapshot, replay from 1.
	f := startFollower(t, t.TempDir(), t.TempDir()+"/never-created", l.NATSURL())
	furl := base(f.HTTPAddr())
	st := waitState(t, furl, stateReady, 20*time.Second)
	if st.SnapshotSeq != 0 {
		t.Fatalf("snapshot_seq %d, want 0", st.SnapshotSeq)
	}
	digestsEqual(t, lurl, furl, 10*time.Second)
}

// heartbeatCounter counts the heartbeats on natsURL's log by state.
type heartbeatCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func countHeartbeats(t *testing.T, natsURL string) *heartbeatCounter {
	t.Helper()
	c := &heartbeatCounter{counts: map[string]int{}}
	stop, err := connectJournal(t, natsURL).SubscribeHeartbeats(func(h journal.Heartbeat) {
		c.mu.Lock()
		c.counts[h.State]++
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return c
}

func (c *heartbeatCounter) get(state string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[state]
}

// TestFollower_HeartbeatsAreSparse: a follower catching up (here paced, so that it takes seconds) reports to the
// leader about every sparseHeartbeatEvery, not after every batch: many followers onboarding at once must not flood
// the leader with heartbeats. Ready, it does the same while its leader is asynchronous (no write waits for its
// confirmation): a ready follower applies a batch per write, and its heartbeats would outnumber the writes.
func TestFollower_HeartbeatsAreSparse(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "k", 1200)
	hbs := countHeartbeats(t, l.NATSURL())
	start := time.Now()
	stopTrickle := trickle(t, lurl, 20*time.Millisecond) // a growing log: catch-up stays paced
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL(), "--catchup-rate", "500", "--catchup-pacing", "fixed")
	waitState(t, base(f.HTTPAddr()), stateReady, 30*time.Second)
	took := time.Since(start)
	stopTrickle()
	catchingUp := hbs.get(stateCatchingUp)
	// About 1,100 entries at 500/s, each its own batch: one heartbeat per batch would be hundreds.
	if limit := int(took/sparseHeartbeatEvery) + 5; catchingUp > limit {
		t.Fatalf("%d heartbeats while catching up for %v; want at most %d", catchingUp, took, limit)
	}
	if catchingUp == 0 {
		t.Fatal("no heartbeat while catching up")
	}

	// Ready: a second of writes, each its own batch on the follower (hundreds of them), and about ten heartbeats.
	before := hbs.get(stateReady)
	start = time.Now()
	writes := 0
	for time.Since(start) < time.Second {
		put(t, lurl, fmt.Sprintf("ready/%d", writes), "v")
		writes++
	}
	digestsEqual(t, lurl, base(f.HTTPAddr()), 10*time.Second)
	took = time.Since(start)
	ready := hbs.get(stateReady) - before
	if limit := int(took/sparseHeartbeatEvery) + 5; ready > limit {
		t.Fatalf("%d heartbeats while ready for %v (%d writes) from an asynchronous leader's follower; want at most %d",
			ready, took, writes, limit)
	}
	if ready == 0 {
		t.Fatal("no heartbeat while ready")
	}
}

// TestFollower_HeartbeatsPromptForSyncLeader: with --sync-followers the leader's writes wait for a ready follower's
// heartbeat, which it sends after each batch (at most one a millisecond), not every sparseHeartbeatEvery: the median
// sync write takes milliseconds, where waiting for the next sparse heartbeat would take 50 ms on average.
func TestFollower_HeartbeatsPromptForSyncLeader(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--sync-followers", "1", "--sync-timeout", "5s")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL())
	waitState(t, base(f.HTTPAddr()), stateReady, 20*time.Second)
	if !f.leaderWaits(t.Context()) {
		t.Fatal("follower of a leader with --sync-followers 1 does not confirm promptly")
	}
	const n = 21
	took := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if code, b, _ := do(t, http.MethodPut, fmt.Sprintf("%s/v1/kv/sync/%d", lurl, i), []byte("v")); code != http.StatusOK {
			t.Fatalf("sync write %d: %d %s", i, code, b)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	if median := took[n/2]; median > sparseHeartbeatEvery*3/10 {
		t.Fatalf("median sync write took %v (all: %v); confirmations are not prompt", median, took)
	}
}

// TestFollower_CatchUpIsPaced checks that --catchup-rate is wired into the follower's log reads with --catchup-pacing
// fixed: while the leader takes writes, a backlog well beyond --ready-lag is read no faster than the rate, and the
// follower still ends ready with the leader's digest.
func TestFollower_CatchUpIsPaced(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	const n = 1200
	putMany(t, lurl, "k", n)
	stopTrickle := trickle(t, lurl, 20*time.Millisecond)
	start := time.Now()
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL(), "--catchup-rate", "500", "--catchup-pacing", "fixed")
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 30*time.Second)
	// About n - 100 (the ready lag) entries at 500/s: at least 2 s; unpaced this takes a few milliseconds.
	if d := time.Since(start); d < 1800*time.Millisecond {
		t.Fatalf("ready after %v, faster than --catchup-rate 500 allows for %d entries", d, n)
	}
	stopTrickle()
	digestsEqual(t, lurl, furl, 20*time.Second)
}

// TestFollower_CatchUpIdleLogUnpaced: from a log nobody writes to, catch-up is not paced once the pacer has seen the
// log not grow for a window (0.5 s): a backlog that --catchup-rate 500 would spread over 6 s takes about one window.
func TestFollower_CatchUpIdleLogUnpaced(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	const n = 3000
	putMany(t, lurl, "k", n)
	start := time.Now()
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL(), "--catchup-rate", "500")
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 30*time.Second)
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("ready after %v from an idle log; paced at 500/s it takes about 6s, unpaced about 0.5s", d)
	}
	digestsEqual(t, lurl, furl, 20*time.Second)
}

// trickle writes a key every interval in the background, so that the log keeps growing as a busy leader's does, until
// the returned stop (or the end of the test) stops it.
func trickle(t *testing.T, lurl string, every time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-tk.C:
			}
			req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/kv/trickle/%d", lurl, i), strings.NewReader("v"))
			if err != nil {
				return
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestFollower_CatchUpAdaptive checks that --catchup-pacing adaptive is wired to the leader's pressure
// reports: while the leader takes a trickle of writes at a steady latency, a follower catching up from --catchup-rate
// 200 raises its rate (replikv_catchup_rate) above it, and ends ready with the leader's digest.
func TestFollower_CatchUpAdaptive(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "k", 3000)
	stopTrickle := trickle(t, lurl, 20*time.Millisecond)
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL(), "--catchup-rate", "200", "--catchup-pacing", "adaptive")
	furl := base(f.HTTPAddr())
	var peak float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		peak = max(peak, scrape(t, furl, "replikv_catchup_rate"))
		if st := status(t, furl); st.State == stateReady {
			break
		}
	}
	if peak <= 200 {
		t.Fatalf("the catch-up rate peaked at %v entries/s; want it raised above --catchup-rate 200", peak)
	}
	waitState(t, furl, stateReady, 30*time.Second)
	stopTrickle()
	digestsEqual(t, lurl, furl, 20*time.Second)
}
