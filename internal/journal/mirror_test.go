package journal

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// waitMirror polls until the catch-up mirror holds the log up to last, for at most 10 s.
func waitMirror(t testing.TB, c *Conn, last uint64) Info {
	t.Helper()
	return waitMirrorFor(t, c, last, 10*time.Second)
}

func waitMirrorFor(t testing.TB, c *Conn, last uint64, timeout time.Duration) Info {
	t.Helper()
	var info Info
	waitFor(t, timeout, "the mirror to reach the log's end", func() bool {
		var err error
		info, err = c.CatchUpMirrorInfo(testCtx(t))
		return err == nil && info.LastSeq >= last
	})
	return info
}

func TestConn_CatchUpMirror(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := connectStream(t, srv.ClientURL(), "MIR")
	ctx := testCtx(t)
	if _, err := c.CatchUpMirrorInfo(ctx); !errors.Is(err, ErrNoStream) {
		t.Fatalf("CatchUpMirrorInfo without a mirror = %v, want ErrNoStream", err)
	}
	if _, err := c.Subscribe(ctx, 1, 0, FromCatchUpMirror()); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Subscribe(FromCatchUpMirror) without a mirror = %v, want ErrNoStream", err)
	}
	publishN(t, c, 0, 10)
	for range 2 { // idempotent
		if err := c.EnsureCatchUpMirror(ctx); err != nil {
			t.Fatalf("EnsureCatchUpMirror: %v", err)
		}
	}
	// The mirror copies what the log held before it existed, and what comes after, with the log's sequences.
	publishN(t, c, 10, 10)
	if info := waitMirror(t, c, 20); info.FirstSeq != 1 || info.LastSeq != 20 {
		t.Fatalf("mirror info = %+v, want seqs 1..20", info)
	}
	sub, err := c.Subscribe(ctx, 3, 0, FromCatchUpMirror())
	if err != nil {
		t.Fatalf("Subscribe(FromCatchUpMirror): %v", err)
	}
	for want := uint64(3); want <= 20; want++ {
		m := receive(t, sub, 5*time.Second)
		if m.Seq != want || !bytes.Equal(m.Data, entry(want)) {
			t.Fatalf("mirror delivered seq %d %q, want %d %q", m.Seq, m.Data, want, entry(want))
		}
		if m.Pending != 20-want {
			t.Fatalf("seq %d: pending %d, want %d", m.Seq, m.Pending, 20-want)
		}
	}
	sub.Stop()

	// Log compaction trims the mirror too.
	if _, err := c.Purge(ctx, 15); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	info, err := c.CatchUpMirrorInfo(ctx)
	if err != nil || info.FirstSeq != 15 || info.LastSeq != 20 {
		t.Fatalf("mirror after Purge(15) = %+v, %v; want seqs 15..20", info, err)
	}
	// New entries still arrive with the log's sequences after the purge.
	publishN(t, c, 20, 3)
	waitMirror(t, c, 23)
	sub, err = c.Subscribe(ctx, 2, 0, FromCatchUpMirror())
	if err != nil {
		t.Fatalf("Subscribe(FromCatchUpMirror): %v", err)
	}
	defer sub.Stop()
	if m := receive(t, sub, 5*time.Second); m.Seq != 15 {
		t.Fatalf("first entry from a purged mirror = %d, want 15 (the caller checks)", m.Seq)
	}
	for want := uint64(16); want <= 23; want++ {
		if m := receive(t, sub, 5*time.Second); m.Seq != want || !bytes.Equal(m.Data, entry(want)) {
			t.Fatalf("mirror delivered seq %d %q, want %d", m.Seq, m.Data, want)
		}
	}
}

// A lagging mirror is never purged past its own end: that would move its next sequence away from the log's.
func TestConn_PurgeMirrorBehind(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := connectStream(t, srv.ClientURL(), "MIRB")
	ctx := testCtx(t)
	publishN(t, c, 0, 5)
	if err := c.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, c, 5)
	if err := c.purgeMirror(ctx, 100); err != nil {
		t.Fatalf("purgeMirror beyond its end: %v", err)
	}
	info, err := c.CatchUpMirrorInfo(ctx)
	if err != nil || info.Msgs != 0 || info.LastSeq != 5 {
		t.Fatalf("mirror after purge beyond its end = %+v, %v; want empty with last seq 5", info, err)
	}
	publishN(t, c, 5, 2)
	if info := waitMirror(t, c, 7); info.FirstSeq != 6 || info.LastSeq != 7 {
		t.Fatalf("mirror after new entries = %+v, want seqs 6..7", info)
	}
}

// A stream that has the mirror's name but is not a mirror of the log is refused, never read, purged or removed.
func TestConn_CatchUpMirrorNotAMirror(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := connectStream(t, srv.ClientURL(), "MIRX")
	ctx := testCtx(t)
	if _, err := c.jetStream().CreateStream(ctx, jetstream.StreamConfig{Name: mirrorName("MIRX"), Subjects: []string{"other"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.jetStream().Publish(ctx, "other", []byte("not a log entry")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.EnsureCatchUpMirror(ctx); !errors.Is(err, ErrStreamConfig) {
		t.Fatalf("EnsureCatchUpMirror over a plain stream = %v, want ErrStreamConfig", err)
	}
	if _, err := c.CatchUpMirrorInfo(ctx); !errors.Is(err, ErrStreamConfig) {
		t.Fatalf("CatchUpMirrorInfo of a plain stream = %v, want ErrStreamConfig", err)
	}
	if sub, err := c.Subscribe(ctx, 1, 0, FromCatchUpMirror()); !errors.Is(err, ErrStreamConfig) {
		if err == nil {
			sub.Stop()
		}
		t.Fatalf("Subscribe FromCatchUpMirror to a plain stream = %v, want ErrStreamConfig", err)
	}
	publishN(t, c, 0, 3)
	if _, err := c.Purge(ctx, 3); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	s, err := c.jetStream().Stream(ctx, mirrorName("MIRX"))
	if err != nil {
		t.Fatal(err)
	}
	if si := s.CachedInfo(); si.Config.Mirror != nil || len(si.Config.Subjects) != 1 || si.State.Msgs != 3 {
		t.Fatalf("Purge changed the plain stream: %+v, %d messages (want 3)", si.Config, si.State.Msgs)
	}
	if err := c.RemoveCatchUpMirror(ctx); err != nil {
		t.Fatalf("RemoveCatchUpMirror: %v", err)
	}
	if _, err := c.jetStream().Stream(ctx, mirrorName("MIRX")); err != nil {
		t.Fatalf("RemoveCatchUpMirror deleted a stream that is not a mirror: %v", err)
	}
}

// Removing the mirror ends the subscriptions that read it with ErrNoStream; removing a missing one is a no-op.
func TestConn_RemoveCatchUpMirror(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := connectStream(t, srv.ClientURL(), "MIRR")
	ctx := testCtx(t)
	if err := c.RemoveCatchUpMirror(ctx); err != nil {
		t.Fatalf("RemoveCatchUpMirror without a mirror: %v", err)
	}
	publishN(t, c, 0, 3)
	if err := c.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, c, 3)
	sub, err := c.Subscribe(ctx, 1, 0, FromCatchUpMirror())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	for range 3 {
		receive(t, sub, 5*time.Second)
	}
	if err := c.RemoveCatchUpMirror(ctx); err != nil {
		t.Fatalf("RemoveCatchUpMirror: %v", err)
	}
	if _, err := c.CatchUpMirrorInfo(ctx); !errors.Is(err, ErrNoStream) {
		t.Fatalf("CatchUpMirrorInfo after removal = %v, want ErrNoStream", err)
	}
	select {
	case _, ok := <-sub.C():
		if ok {
			t.Fatal("a message after the mirror was removed")
		}
		if !errors.Is(sub.Err(), ErrNoStream) {
			t.Fatalf("subscription ended with %v, want ErrNoStream", sub.Err())
		}
	case <-time.After(30 * time.Second): // up to two missed heartbeats and a reset, see TestConn_Subscribe
		t.Fatal("the subscription did not end after the mirror was removed")
	}
	if info, err := c.Info(ctx); err != nil || info.LastSeq != 3 {
		t.Fatalf("the log after removing its mirror: %+v, %v", info, err)
	}
}

// deleteConsumers deletes every consumer of stream, which makes ordered consumers recreate theirs.
func deleteConsumers(t *testing.T, c *Conn, stream string) {
	t.Helper()
	ctx := testCtx(t)
	s, err := c.jetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	names := s.ConsumerNames(ctx)
	n := 0
	for name := range names.Name() {
		if err := s.DeleteConsumer(ctx, name); err != nil {
			t.Fatalf("delete consumer %s: %v", name, err)
		}
		n++
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("stream %s has no consumer to delete", stream)
	}
}

// A subscription of the mirror goes on reading it after its consumer is recreated, but once the stream of the
// mirror's name is no longer a mirror of the log (here: promoted to a plain stream that then takes other writes),
// the first message of a consumer recreated on it is not handed on: the subscription ends with ErrStreamConfig.
func TestConn_SubscribeMirrorReplaced(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := connectStream(t, srv.ClientURL(), "MIRP")
	ctx := testCtx(t)
	publishN(t, c, 0, 5)
	if err := c.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, c, 5)
	sub, err := c.Subscribe(ctx, 1, 0, FromCatchUpMirror())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	check := func(m Msg) {
		t.Helper()
		if !bytes.Equal(m.Data, entry(m.Seq)) {
			t.Fatalf("seq %d: %q is not the log's entry", m.Seq, m.Data)
		}
	}
	for want := uint64(1); want <= 5; want++ {
		if m := receive(t, sub, 5*time.Second); m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		} else {
			check(m)
		}
	}

	// A recreated consumer on the mirror itself: reading goes on.
	deleteConsumers(t, c, mirrorName("MIRP"))
	publishN(t, c, 5, 5)
	for want := uint64(6); want <= 10; want++ {
		if m := receive(t, sub, 30*time.Second); m.Seq != want {
			t.Fatalf("after the consumer was recreated: seq %d, want %d", m.Seq, want)
		} else {
			check(m)
		}
	}

	// The mirror becomes a plain stream, the consumer is recreated on it, and then the stream takes writes of its
	// own. (A consumer that outlives the promotion reads such writes: nothing is recreated, nothing checked here. The
	// follower compares the last entry it applied from the mirror with the log's before it goes on from the log;
	// see node's TestFollower_RebootstrapsWhenMirrorDiverges.)
	waitMirror(t, c, 10)
	name := mirrorName("MIRP")
	s, err := c.jetStream().Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Mirror = nil
	if _, err := c.jetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("promote the mirror: %v", err)
	}
	deleteConsumers(t, c, name)
	waitFor(t, 30*time.Second, "the ordered consumer to be recreated", func() bool {
		s, err := c.jetStream().Stream(ctx, name)
		return err == nil && s.CachedInfo().State.Consumers == 1
	})
	cfg.Subjects = []string{"impostor"}
	if _, err := c.jetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("give the promoted mirror subjects: %v", err)
	}
	for range 5 {
		if _, err := c.jetStream().Publish(ctx, "impostor", []byte("not a log entry")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-sub.C():
			if ok {
				t.Fatalf("seq %d %q delivered from a stream that is no longer the mirror", m.Seq, m.Data)
			}
			if !errors.Is(sub.Err(), ErrStreamConfig) {
				t.Fatalf("subscription ended with %v, want ErrStreamConfig", sub.Err())
			}
			return
		case <-deadline:
			t.Fatal("the subscription did not end after the mirror was replaced")
		}
	}
}
