package journal

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/testlog"
)

// startServer runs an embedded server on a free port with its store in a temp dir; it stops at cleanup.
func startServer(t testing.TB) *Embedded {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", t.TempDir())
}

func startServerAt(t testing.TB, listen, dir string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Listen: listen, StoreDir: dir})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// connect opens a Conn on stream; it closes at cleanup.
func connect(t testing.TB, url, stream string) *Conn {
	t.Helper()
	c, err := Connect(testCtx(t), Config{URL: url, Stream: stream, Name: t.Name(), Logger: testlog.New(t)})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// connectStream connects and ensures the stream exists.
func connectStream(t testing.TB, url, stream string) *Conn {
	t.Helper()
	c := connect(t, url, stream)
	if _, err := c.EnsureStream(testCtx(t)); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return c
}

// testCtx is a context bounded well below the go test timeout, cancelled at cleanup.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// publishN publishes n entries "e<i>" after expectedLast and waits for all acks, returning the sequences.
func publishN(t testing.TB, c *Conn, expectedLast uint64, n int) []uint64 {
	t.Helper()
	ctx := testCtx(t)
	acks := make([]*Ack, 0, n)
	for i := range n {
		a, err := c.PublishAsync(ctx, entry(expectedLast+uint64(i)+1), expectedLast+uint64(i), "")
		if err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
		acks = append(acks, a)
	}
	seqs := make([]uint64, 0, n)
	for i, a := range acks {
		seq, err := a.Wait(ctx)
		if err != nil {
			t.Fatalf("Wait %d: %v", i, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// entry is the payload the tests publish as sequence seq.
func entry(seq uint64) []byte { return []byte("entry-" + strconv.FormatUint(seq, 10)) }

// receive reads one message from s or fails after timeout.
func receive(t testing.TB, s *Subscription, timeout time.Duration) Msg {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatalf("subscription closed: %v", s.Err())
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
	}
	return Msg{}
}
