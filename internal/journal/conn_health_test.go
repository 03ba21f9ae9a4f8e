package journal

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/replikv/replikv/internal/testutil/testlog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// connectObserved connects like connect, also recording what the Conn logs.
func connectObserved(t *testing.T, url, stream string) (*Conn, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(testlog.New(t).Core(), core))
	c, err := Connect(testCtx(t), Config{URL: url, Stream: stream, Name: t.Name(), Logger: log})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c, logs
}

// TestConn_AuthOutage is issue 17, finding 2: an external nats-server restarted for a while with another password.
// By default nats.go closes a connection for good after the same authorization error twice, and a closed connection
// never reconnects. The Conn must say why it is down (ErrAuth, without the credentials), keep retrying, and recover
// by itself once the right password is back.
func TestConn_AuthOutage(t *testing.T) {
	const good, bad = "good-secret-1", "bad-secret-2"
	p := startNATSProc(t, good)
	c, logs := connectObserved(t, p.url(good), "AUTH")
	if _, err := c.EnsureStream(testCtx(t)); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	publishN(t, c, 0, 1)
	if h := c.Health(); !h.Connected || h.Err != nil {
		t.Fatalf("Health before the outage = %+v", h)
	}

	p.restart(bad)
	// Several refusals in a row: nats.go's default gives up at the second.
	waitFor(t, 20*time.Second, "repeated authorization failures", func() bool {
		h := c.Health()
		return !h.Connected && errors.Is(h.Err, ErrAuth) && h.Attempts >= 6
	})
	t.Run("Refused", func(t *testing.T) {
		h := c.Health()
		if !errors.Is(h.Err, ErrUnavailable) || !errors.Is(h.Err, nats.ErrAuthorization) {
			t.Errorf("Health().Err = %v, want ErrUnavailable, ErrAuth and nats.ErrAuthorization", h.Err)
		}
		if strings.Contains(h.Err.Error(), good) {
			t.Errorf("Health().Err shows the password: %v", h.Err)
		}
		if _, err := c.PublishAsync(testCtx(t), entry(2), 1, ""); !errors.Is(err, ErrUnavailable) {
			t.Errorf("PublishAsync while refused = %v, want ErrUnavailable", err)
		}
	})

	p.restart(good)
	waitFor(t, 10*time.Second, "reconnect after the right password is back", c.Connected)
	var info Info
	waitFor(t, 10*time.Second, "stream info after reconnect", func() bool {
		var err error
		info, err = c.Info(testCtx(t))
		return err == nil
	})
	if info.LastSeq != 1 {
		t.Fatalf("last seq after the outage = %d, want 1", info.LastSeq)
	}
	publishN(t, c, 1, 1)
	if h := c.Health(); !h.Connected || h.Err != nil || h.Attempts != 0 || h.Redials != 0 {
		t.Fatalf("Health after recovery = %+v, want connected on the same connection", h)
	}

	t.Run("Logs", func(t *testing.T) {
		auth := 0
		for _, e := range logs.All() {
			text := e.Message
			for k, v := range e.ContextMap() {
				text += " " + k + "=" + toString(v)
			}
			if strings.Contains(text, good) || strings.Contains(text, bad) || strings.Contains(text, "u:") {
				t.Errorf("log shows a credential: %s", text)
			}
			if strings.Contains(text, "authorization violation") {
				auth++
			}
		}
		// Once when it started, not once per attempt (the outage took at least six).
		if auth == 0 || auth > 2 {
			t.Errorf("authorization failure logged %d times, want once or twice", auth)
		}
	})
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

// TestConn_Redial makes nats.go close the connection for good, which it still does for a server error it does not
// know whatever the reconnect options: a subscription on "a.>.b" is refused with -ERR 'Invalid Subject'. The Conn
// must dial a new connection and move its subscription, heartbeat and pressure listeners and lease over to it.
func TestConn_Redial(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "REDIAL")
	ctx := testCtx(t)
	publishN(t, c, 0, 3)
	sub, err := c.Subscribe(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	for want := uint64(1); want <= 3; want++ {
		if m := receive(t, sub, 5*time.Second); m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}
	hbs := make(chan Heartbeat, 64)
	stopHB, err := c.SubscribeHeartbeats(func(h Heartbeat) {
		select {
		case hbs <- h:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopHB)
	reports := make(chan Pressure, 64)
	stopPressure, err := c.SubscribePressure(func(p Pressure) {
		select {
		case reports <- p:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopPressure)
	const ttl = time.Second
	lease, err := c.AcquireLease(ctx, LeaderInfo{ID: "a", URL: "http://a"}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lease.Close(testCtx(t)) })

	old := c.conn()
	if _, err := old.Subscribe("replikv.REDIAL.>.bad", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "nats.go closing the connection", old.IsClosed)
	waitFor(t, 10*time.Second, "a new connection", func() bool {
		h := c.Health()
		return h.Connected && h.Redials == 1
	})

	t.Run("Subscription", func(t *testing.T) {
		publishN(t, c, 3, 2)
		for want := uint64(4); want <= 5; want++ {
			if m := receive(t, sub, 15*time.Second); m.Seq != want {
				t.Fatalf("seq %d, want %d", m.Seq, want)
			}
		}
	})
	t.Run("Heartbeats", func(t *testing.T) {
		waitFor(t, 10*time.Second, "a heartbeat on the new connection", func() bool {
			if err := c.PublishHeartbeat(Heartbeat{ID: "f", State: StateReady, Applied: 5}); err != nil {
				t.Fatalf("PublishHeartbeat: %v", err)
			}
			select {
			case <-hbs:
				return true
			default:
				return false
			}
		})
	})
	t.Run("Pressure", func(t *testing.T) {
		waitFor(t, 10*time.Second, "a pressure report on the new connection", func() bool {
			if err := c.PublishPressure(Pressure{Epoch: 1, Window: 250 * time.Millisecond}); err != nil {
				t.Fatalf("PublishPressure: %v", err)
			}
			select {
			case <-reports:
				return true
			default:
				return false
			}
		})
	})
	t.Run("Lease", func(t *testing.T) {
		// Over two TTLs the lease stays ours: the renewer works on the new connection.
		until := time.Now().Add(2 * ttl)
		waitFor(t, 4*ttl, "two lease TTLs", func() bool {
			if err := lease.Err(); err != nil {
				t.Fatalf("lease lost: %v", err)
			}
			return time.Now().After(until)
		})
		if info, err := c.Leader(ctx); err != nil || info.ID != "a" {
			t.Fatalf("Leader = %+v, %v; want a", info, err)
		}
	})
}

// TestConn_Health checks the report while connected and after Close.
func TestConn_Health(t *testing.T) {
	e := startServer(t)
	c := connect(t, e.ClientURL(), "HEALTH")
	waitFor(t, 5*time.Second, "connected", c.Connected)
	h := c.Health()
	if !h.Connected || h.Err != nil || h.Since.IsZero() || h.Redials != 0 {
		t.Fatalf("Health = %+v", h)
	}
	c.Close()
	if h := c.Health(); h.Connected || !errors.Is(h.Err, ErrClosed) {
		t.Fatalf("Health after Close = %+v", h)
	}
}
