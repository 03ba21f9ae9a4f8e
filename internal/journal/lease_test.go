package journal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func leaderInfo(id string) LeaderInfo {
	return LeaderInfo{ID: id, URL: "http://" + id + ":8080", Since: time.Now().UTC().Round(time.Millisecond)}
}

func acquireLease(t *testing.T, c *Conn, info LeaderInfo, ttl time.Duration) *Lease {
	t.Helper()
	l, err := c.AcquireLease(testCtx(t), info, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%s): %v", info.ID, err)
	}
	t.Cleanup(func() { l.Close(testCtx(t)) })
	return l
}

func assertLeader(t *testing.T, c *Conn, want LeaderInfo) {
	t.Helper()
	got, err := c.Leader(testCtx(t))
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	if got.ID != want.ID || got.URL != want.URL || !got.Since.Equal(want.Since) || got.Async != want.Async {
		t.Fatalf("Leader = %+v, want %+v", got, want)
	}
}

func TestConn_AcquireLease(t *testing.T) {
	e := startServer(t)
	const ttl = time.Second

	t.Run("AcquireAndHeld", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "HELD")
		b := connect(t, e.ClientURL(), "HELD")
		if _, err := b.Leader(testCtx(t)); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Leader before any lease = %v, want ErrNoLeader", err)
		}
		infoA := leaderInfo("a")
		infoA.Async = true // kept through renewals
		la := acquireLease(t, a, infoA, ttl)
		assertLeader(t, b, infoA)
		if _, err := b.AcquireLease(testCtx(t), leaderInfo("b"), ttl); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("second leader AcquireLease = %v, want ErrLeaseHeld", err)
		}
		// Renewals keep it alive well past the TTL.
		deadline := time.Now().Add(2 * ttl)
		for time.Now().Before(deadline) {
			select {
			case <-la.Lost():
				t.Fatalf("lease lost while renewing: %v", la.Err())
			case <-time.After(ttl / 2):
			}
			assertLeader(t, b, infoA)
		}
	})

	t.Run("SameIDTakesBack", func(t *testing.T) {
		t.Parallel()
		old := connect(t, e.ClientURL(), "TAKEBACK")
		restarted := connect(t, e.ClientURL(), "TAKEBACK")
		lOld := acquireLease(t, old, leaderInfo("n1"), ttl)
		infoNew := leaderInfo("n1")
		infoNew.Since = infoNew.Since.Add(time.Second) // a later incarnation of the same id
		acquireLease(t, restarted, infoNew, ttl)
		assertLeader(t, old, infoNew)
		select {
		case <-lOld.Lost():
		case <-time.After(5 * ttl):
			t.Fatal("old incarnation did not notice its lease was taken")
		}
		if err := lOld.Err(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Err = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("CloseReleases", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "RELEASE")
		b := connect(t, e.ClientURL(), "RELEASE")
		la := acquireLease(t, a, leaderInfo("a"), ttl)
		la.Close(testCtx(t))
		la.Close(testCtx(t)) // idempotent
		if _, err := b.Leader(testCtx(t)); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Leader after Close = %v, want ErrNoLeader", err)
		}
		acquireLease(t, b, leaderInfo("b"), ttl)
		select {
		case <-la.Lost():
			t.Fatal("Close must not close Lost")
		default:
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "EXPIRE")
		b := connect(t, e.ClientURL(), "EXPIRE")
		la := acquireLease(t, a, leaderInfo("a"), ttl)
		a.Close() // stops renewing without deleting: the key must expire by itself
		waitFor(t, 5*ttl, "lease expiry", func() bool {
			_, err := b.Leader(testCtx(t))
			return errors.Is(err, ErrNoLeader)
		})
		lb := acquireLease(t, b, leaderInfo("b"), ttl)
		if la.Epoch() == 0 || lb.Epoch() <= la.Epoch() {
			t.Fatalf("epochs %d then %d: want a higher one at the takeover", la.Epoch(), lb.Epoch())
		}
		if got, err := b.Leader(testCtx(t)); err != nil || got.Epoch != lb.Epoch() {
			t.Fatalf("Leader = %+v, %v; want epoch %d in the lease", got, err, lb.Epoch())
		}
	})

	t.Run("RecreatedWhenGone", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "RECREATE")
		info := leaderInfo("a")
		la := acquireLease(t, a, info, ttl)
		first := la.Epoch()
		// Simulate the key expiring during an outage: it disappears, and the holder takes it again (still ours).
		kv, err := a.jetStream().KeyValue(testCtx(t), leaseBucket("RECREATE"))
		if err != nil {
			t.Fatal(err)
		}
		if err := kv.Delete(testCtx(t), leaseKey); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*ttl, "lease re-created", func() bool {
			_, err := a.Leader(testCtx(t))
			return err == nil
		})
		assertLeader(t, a, info)
		select {
		case <-la.Lost():
			t.Fatalf("lease reported lost: %v", la.Err())
		default:
		}
		if n := la.Regains(); n != 1 {
			t.Fatalf("Regains = %d after one re-creation, want 1", n)
		}
		if la.Epoch() <= first {
			t.Fatalf("epoch %d after the re-creation, want above %d", la.Epoch(), first)
		}
		waitFor(t, 5*ttl, "the new epoch in the lease", func() bool {
			got, err := a.Leader(testCtx(t))
			return err == nil && got.Epoch == la.Epoch()
		})
	})

	t.Run("ValidUntil", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "VALID")
		before := time.Now()
		la := acquireLease(t, a, leaderInfo("a"), ttl)
		if la.TTL() != ttl {
			t.Fatalf("TTL = %v, want %v", la.TTL(), ttl)
		}
		first := la.ValidUntil()
		if first.Before(before.Add(ttl)) || first.After(time.Now().Add(ttl)) {
			t.Fatalf("ValidUntil = %v after acquiring at [%v, now]: not one TTL after the create was sent", first, before)
		}
		// Renewals move it forward.
		waitFor(t, 5*ttl, "a renewal", func() bool { return la.ValidUntil().After(first) })
		if n := la.Regains(); n != 0 {
			t.Fatalf("Regains = %d without an expiry", n)
		}
		// With the connection closed nothing renews it: it lapses.
		a.Close()
		waitFor(t, 2*ttl, "validity to lapse", func() bool { return time.Now().After(la.ValidUntil()) })
	})

	// ValidUntil never runs ahead of the key's real expiry, even when the renewer finds its own value written by an
	// earlier attempt whose answer it never got (here written by the test, at a time the renewer does not know).
	t.Run("ValidUntilAfterLostAnswer", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "LOSTACK")
		la := acquireLease(t, a, leaderInfo("a"), ttl)
		kv, err := a.jetStream().KeyValue(testCtx(t), leaseBucket("LOSTACK"))
		if err != nil {
			t.Fatal(err)
		}
		cur, err := kv.Get(testCtx(t), leaseKey)
		if err != nil {
			t.Fatal(err)
		}
		// The same bytes, a new revision: what an update whose answer was lost leaves behind.
		if _, err := kv.Put(testCtx(t), leaseKey, cur.Value()); err != nil {
			t.Fatal(err)
		}
		seen := la.ValidUntil()
		deadline := time.Now().Add(3 * ttl)
		for changes := 0; changes < 3 && time.Now().Before(deadline); {
			vu := la.ValidUntil()
			if vu.Equal(seen) {
				time.Sleep(time.Millisecond)
				continue
			}
			changes++
			seen = vu
			latest, err := kv.Get(testCtx(t), leaseKey)
			if err != nil {
				t.Fatal(err)
			}
			// Same host, same clock: the key cannot expire before its newest write's time plus the TTL.
			if expiry := latest.Created().Add(ttl); vu.After(expiry.Add(5 * time.Millisecond)) {
				t.Fatalf("ValidUntil %v is %v after the key's expiry %v", vu.Format(time.StampMicro),
					vu.Sub(expiry), expiry.Format(time.StampMicro))
			}
		}
	})

	t.Run("TakenByOther", func(t *testing.T) {
		t.Parallel()
		a := connect(t, e.ClientURL(), "STOLEN")
		la := acquireLease(t, a, leaderInfo("a"), ttl)
		kv, err := a.jetStream().KeyValue(testCtx(t), leaseBucket("STOLEN"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(testCtx(t), leaseKey, []byte(`{"id":"intruder","url":"http://x"}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-la.Lost():
		case <-time.After(5 * ttl):
			t.Fatal("lease not reported lost")
		}
		if err := la.Err(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Err = %v, want ErrLeaseLost", err)
		}
		// Close after loss must not delete the intruder's key.
		la.Close(testCtx(t))
		got, err := a.Leader(testCtx(t))
		if err != nil || got.ID != "intruder" {
			t.Fatalf("Leader after losing = %+v, %v", got, err)
		}
	})

	bad := []struct {
		name string
		info LeaderInfo
		ttl  time.Duration
	}{
		{"EmptyID", LeaderInfo{}, ttl},
		{"LongID", LeaderInfo{ID: string(make([]byte, 257))}, ttl},
		{"ShortTTL", leaderInfo("a"), time.Millisecond},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, e.ClientURL(), "BADLEASE")
			if _, err := c.AcquireLease(testCtx(t), tt.info, tt.ttl); !errors.Is(err, ErrMalformed) {
				t.Fatalf("AcquireLease = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestConn_Leader(t *testing.T) {
	e := startServer(t)
	c := connect(t, e.ClientURL(), "LEADER")
	ctx := testCtx(t)
	if _, err := c.Leader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader without bucket = %v, want ErrNoLeader", err)
	}
	kv, err := c.jetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: leaseBucket("LEADER")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader without key = %v, want ErrNoLeader", err)
	}
	if _, err := kv.Put(ctx, leaseKey, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leader(ctx); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Leader with garbage = %v, want ErrMalformed", err)
	}
	other := connect(t, e.ClientURL(), "LEADER")
	if _, err := other.AcquireLease(ctx, leaderInfo("x"), time.Second); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("AcquireLease over garbage = %v, want ErrLeaseHeld", err)
	}
}

// TestWhileNoResponders: "no responders" (a request's or a publish's) is retried until op answers, until the wait is
// over, or until the context ends; any other result is returned at once.
func TestWhileNoResponders(t *testing.T) {
	old := noRespondersWait
	noRespondersWait = 300 * time.Millisecond
	t.Cleanup(func() { noRespondersWait = old })
	errOther := errors.New("other")
	for _, tc := range []struct {
		name    string
		results []error // op's errors in turn; the last one repeats
		cancel  bool
		wantErr error
		calls   func(n int) bool
	}{
		{name: "answers at once", results: []error{nil}, calls: func(n int) bool { return n == 1 }},
		{name: "answers after no responders", results: []error{nats.ErrNoResponders, jetstream.ErrNoStreamResponse, nil},
			calls: func(n int) bool { return n == 3 }},
		{name: "other error", results: []error{errOther}, wantErr: errOther, calls: func(n int) bool { return n == 1 }},
		{name: "never answers", results: []error{nats.ErrNoResponders}, wantErr: nats.ErrNoResponders,
			calls: func(n int) bool { return n >= 3 && n <= 30 }},
		{name: "context ends", results: []error{nats.ErrNoResponders}, cancel: true, wantErr: nats.ErrNoResponders,
			calls: func(n int) bool { return n == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			n := 0
			start := time.Now()
			v, err := whileNoResponders(ctx, func() (int, error) {
				err := tc.results[min(n, len(tc.results)-1)]
				n++
				return n, err
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if v != n || !tc.calls(n) {
				t.Fatalf("value %d after %d calls", v, n)
			}
			if elapsed := time.Since(start); elapsed > noRespondersWait+time.Second {
				t.Fatalf("took %s, wait is %s", elapsed, noRespondersWait)
			}
		})
	}
}
