package journal

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestConn_Outage shuts the server down under a running publisher and subscriber, checks that calls fail fast with
// ErrUnavailable instead of hanging, restarts the server on the same port and store, and checks that the Conn and
// the Subscription recover by themselves.
func TestConn_Outage(t *testing.T) {
	dir := t.TempDir()
	e := startServerAt(t, "127.0.0.1:0", dir)
	_, port, err := net.SplitHostPort(e.ClientURL()[len("nats://"):])
	if err != nil {
		t.Fatal(err)
	}
	c := connectStream(t, e.ClientURL(), "OUT")
	ctx := testCtx(t)
	publishN(t, c, 0, 10)
	sub, err := c.Subscribe(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	for want := uint64(1); want <= 10; want++ {
		if m := receive(t, sub, 5*time.Second); m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}

	idle, err := c.Subscribe(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}

	// Acks in flight when the server goes away resolve promptly, either way.
	var inflight []*Ack
	for i := range uint64(100) {
		a, err := c.PublishAsync(ctx, entry(11+i), 10+i, "")
		if err != nil {
			t.Fatal(err)
		}
		inflight = append(inflight, a)
	}
	e.Close()
	t.Run("InflightResolve", func(t *testing.T) {
		for _, a := range inflight {
			start := time.Now()
			_, err := a.Wait(ctx)
			if err != nil && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("in-flight Wait = %v, want a sequence or ErrUnavailable", err)
			}
			if d := time.Since(start); d > ackTimeout+time.Second {
				t.Fatalf("in-flight Wait took %s", d)
			}
		}
	})
	waitFor(t, 5*time.Second, "disconnect noticed", func() bool { return !c.Connected() })

	t.Run("FailFast", func(t *testing.T) {
		start := time.Now()
		if _, err := c.PublishAsync(ctx, []byte("x"), 110, ""); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("PublishAsync while down = %v, want ErrUnavailable", err)
		}
		if _, err := c.Info(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Info while down = %v, want ErrUnavailable", err)
		}
		if err := c.PublishHeartbeat(Heartbeat{ID: "f", State: StateReady}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("PublishHeartbeat while down = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("calls while down took %s, want fail-fast", d)
		}
	})

	t.Run("StopWhileDown", func(t *testing.T) {
		start := time.Now()
		idle.Stop()
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Stop while down took %s", d)
		}
		if err := idle.Err(); err != nil {
			t.Fatalf("Err after Stop = %v", err)
		}
	})

	startServerAt(t, "127.0.0.1:"+port, dir)
	waitFor(t, 10*time.Second, "reconnect", c.Connected)

	t.Run("Recovered", func(t *testing.T) {
		var info Info
		waitFor(t, 10*time.Second, "stream info after restart", func() bool {
			info, err = c.Info(ctx)
			return err == nil
		})
		if info.LastSeq < 10 {
			t.Fatalf("stream lost data across restart: %+v", info)
		}
		// The subscription resumes after the last entry it delivered, without gaps or repeats.
		last := info.LastSeq
		publishN(t, c, last, 5)
		for want := uint64(11); want <= last+5; want++ {
			if m := receive(t, sub, 15*time.Second); m.Seq != want {
				t.Fatalf("after restart: seq %d, want %d", m.Seq, want)
			}
		}
	})
}

// TestConnect_ServerDownAtStart checks that Connect returns while NATS is down, that calls fail fast with
// ErrUnavailable meanwhile, and that the Conn connects by itself once the server appears.
func TestConnect_ServerDownAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c := connect(t, "nats://"+addr, "LATE")
	if c.Connected() {
		t.Fatal("Connected with no server")
	}
	ctx := testCtx(t)
	start := time.Now()
	if _, err := c.EnsureStream(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("EnsureStream while down = %v, want ErrUnavailable", err)
	}
	if _, err := c.PublishAsync(ctx, []byte("x"), 0, ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("PublishAsync while down = %v, want ErrUnavailable", err)
	}
	if _, err := c.Subscribe(ctx, 1, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Subscribe while down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("calls while down took %s, want fail-fast", d)
	}
	startServerAt(t, addr, t.TempDir())
	waitFor(t, 10*time.Second, "connect", c.Connected)
	if _, err := c.EnsureStream(ctx); err != nil {
		t.Fatalf("EnsureStream after connect: %v", err)
	}
	if seqs := publishN(t, c, 0, 1); seqs[0] != 1 {
		t.Fatalf("first seq = %d", seqs[0])
	}
}
