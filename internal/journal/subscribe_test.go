package journal

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestConn_Subscribe(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "SUB")
	ctx := testCtx(t)
	publishN(t, c, 0, 100)

	t.Run("FromMiddle", func(t *testing.T) {
		s, err := c.Subscribe(ctx, 50, 16)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		for want := uint64(50); want <= 100; want++ {
			m := receive(t, s, 5*time.Second)
			if m.Seq != want || !bytes.Equal(m.Data, entry(want)) {
				t.Fatalf("got seq %d data %q, want seq %d data %q", m.Seq, m.Data, want, entry(want))
			}
			if m.Pending != 100-want {
				t.Fatalf("seq %d: Pending = %d, want %d", m.Seq, m.Pending, 100-want)
			}
		}
	})

	t.Run("KeepsDelivering", func(t *testing.T) {
		s, err := c.Subscribe(ctx, 101, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		publishN(t, c, 100, 3)
		for want := uint64(101); want <= 103; want++ {
			if m := receive(t, s, 5*time.Second); m.Seq != want {
				t.Fatalf("got seq %d, want %d", m.Seq, want)
			}
		}
	})

	t.Run("StopIdempotent", func(t *testing.T) {
		s, err := c.Subscribe(ctx, 1, 1) // tiny buffer: the goroutine is blocked sending when stopped
		if err != nil {
			t.Fatal(err)
		}
		receive(t, s, 5*time.Second)
		s.Stop()
		s.Stop()
		for range s.C() { // drains what was buffered, then ends because C is closed
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err after Stop = %v, want nil", err)
		}
	})

	t.Run("NoStream", func(t *testing.T) {
		other := connect(t, e.ClientURL(), "MISSING")
		if _, err := other.Subscribe(ctx, 1, 0); !errors.Is(err, ErrNoStream) {
			t.Fatalf("Subscribe on missing stream = %v, want ErrNoStream", err)
		}
	})

	t.Run("ConnClose", func(t *testing.T) {
		own := connect(t, e.ClientURL(), "SUB")
		s, err := own.Subscribe(ctx, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		own.Close()
		for range s.C() {
		}
		if err := s.Err(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Err after Conn.Close = %v, want ErrClosed", err)
		}
		if _, err := own.Subscribe(ctx, 1, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
		}
	})

	t.Run("StreamDeleted", func(t *testing.T) {
		own := connectStream(t, e.ClientURL(), "DOOMED")
		publishN(t, own, 0, 1)
		s, err := own.Subscribe(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		receive(t, s, 5*time.Second)
		if err := own.jetStream().DeleteStream(ctx, "DOOMED"); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			for range s.C() {
			}
		}()
		// Usually the server's notice to the pending pull ends it at once; when the deletion falls between two pulls,
		// the client only notices after two missed heartbeats (5 s each) and a failed reset.
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("subscription still open after its stream was deleted")
		}
		if err := s.Err(); !errors.Is(err, ErrNoStream) {
			t.Fatalf("Err = %v, want ErrNoStream", err)
		}
	})

	// A stream deleted and recreated under the subscription (another history, numbered from 1 again) is never read
	// on from the next sequence: the subscription ends as for a deleted stream and delivers none of the new entries.
	t.Run("StreamRecreated", func(t *testing.T) {
		own := connectStream(t, e.ClientURL(), "REBORN")
		publishN(t, own, 0, 3)
		s, err := own.Subscribe(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		for range 3 {
			receive(t, s, 5*time.Second)
		}
		if err := s.checkStream(ctx); err != nil {
			t.Fatalf("checkStream on the stream subscribed to: %v", err)
		}
		if err := own.jetStream().DeleteStream(ctx, "REBORN"); err != nil {
			t.Fatal(err)
		}
		if _, err := own.EnsureStream(ctx); err != nil {
			t.Fatal(err)
		}
		// Usually the deletion ends the subscription before the new stream exists; when the library recreates its
		// consumer on the new stream instead, checkStream must end it.
		if err := s.checkStream(ctx); !errors.Is(err, ErrNoStream) {
			t.Fatalf("checkStream after the stream was recreated: %v, want ErrNoStream", err)
		}
		publishN(t, own, 0, 6)
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m, ok := <-s.C():
				if ok {
					t.Fatalf("delivered seq %d (%q) of the recreated stream", m.Seq, m.Data)
				}
				if err := s.Err(); !errors.Is(err, ErrNoStream) {
					t.Fatalf("Err = %v, want ErrNoStream", err)
				}
				return
			case <-deadline:
				t.Fatal("subscription still open after its stream was recreated")
			}
		}
	})

	// Last: purges the shared stream.
	t.Run("AfterPurge", func(t *testing.T) {
		if _, err := c.Purge(ctx, 40); err != nil {
			t.Fatal(err)
		}
		s, err := c.Subscribe(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		m := receive(t, s, 5*time.Second)
		if m.Seq != 40 {
			t.Fatalf("first seq after purge = %d, want 40 (the server skips the purged range silently)", m.Seq)
		}
	})
}

// recordingPacer records what it is asked and blocks, when told to, until its context ends.
type recordingPacer struct {
	mu    sync.Mutex
	calls [][2]uint64
	block bool
}

func (p *recordingPacer) Wait(ctx context.Context, seq, pending uint64) error {
	p.mu.Lock()
	p.calls = append(p.calls, [2]uint64{seq, pending})
	block := p.block
	p.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func TestConn_SubscribeWithPacer(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "PACED")
	ctx := testCtx(t)
	publishN(t, c, 0, 20)

	t.Run("AskedBeforeEveryEntry", func(t *testing.T) {
		p := &recordingPacer{}
		s, err := c.Subscribe(ctx, 11, 4, WithPacer(p))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		for want := uint64(11); want <= 20; want++ {
			if m := receive(t, s, 5*time.Second); m.Seq != want {
				t.Fatalf("got seq %d, want %d", m.Seq, want)
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, call := range p.calls {
			if want := [2]uint64{uint64(11 + i), uint64(20 - 11 - i)}; call != want {
				t.Fatalf("pacer call %d = (seq, pending) %v, want %v", i, call, want)
			}
		}
		if len(p.calls) != 10 {
			t.Fatalf("%d pacer calls, want 10", len(p.calls))
		}
	})

	t.Run("StopEndsAWait", func(t *testing.T) {
		p := &recordingPacer{block: true}
		s, err := c.Subscribe(ctx, 1, 4, WithPacer(p))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the pacer to be asked", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.calls) > 0
		})
		select {
		case m := <-s.C():
			t.Fatalf("entry %d delivered while the pacer blocks", m.Seq)
		default:
		}
		stopped := make(chan struct{})
		go func() { s.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("Stop is stuck behind a pacer's wait")
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err after Stop = %v, want nil", err)
		}
	})
}

// TestConn_SubscribeStopDeletesConsumer checks that Stop removes the server's consumer instead of leaving it to
// expire.
func TestConn_SubscribeStopDeletesConsumer(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "DELCONS")
	ctx := testCtx(t)
	publishN(t, c, 0, 3)
	consumers := func() int {
		t.Helper()
		st, err := c.jetStream().Stream(ctx, "DELCONS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	s, err := c.Subscribe(ctx, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, s, 5*time.Second)
	if n := consumers(); n != 1 {
		t.Fatalf("%d consumers while subscribed, want 1", n)
	}
	s.Stop()
	if n := consumers(); n != 0 {
		t.Fatalf("%d consumers after Stop, want 0", n)
	}
}
