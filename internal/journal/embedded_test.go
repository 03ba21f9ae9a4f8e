package journal

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/testlog"
)

func TestStartEmbedded(t *testing.T) {
	t.Run("FreePort", func(t *testing.T) {
		e := startServer(t)
		url := e.ClientURL()
		if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") || strings.HasSuffix(url, ":-1") {
			t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<port>", url)
		}
		c := connect(t, url, "S")
		waitFor(t, 5*time.Second, "connected", c.Connected)
		e.Close()
		e.Close() // idempotent
	})
	t.Run("PortInUse", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		_, err = StartEmbedded(EmbeddedConfig{Listen: l.Addr().String(), StoreDir: t.TempDir()})
		if err == nil {
			t.Fatal("StartEmbedded on a busy port succeeded")
		}
	})
	bad := []struct {
		name string
		cfg  EmbeddedConfig
	}{
		{"NoStoreDir", EmbeddedConfig{Listen: "127.0.0.1:0"}},
		{"NoPort", EmbeddedConfig{Listen: "127.0.0.1", StoreDir: "x"}},
		{"BadPort", EmbeddedConfig{Listen: "127.0.0.1:http", StoreDir: "x"}},
		{"NegativeSync", EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: "x", SyncInterval: -1}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := StartEmbedded(tt.cfg); !errors.Is(err, ErrMalformed) {
				t.Fatalf("StartEmbedded = %v, want ErrMalformed", err)
			}
		})
	}
}

// A Conn to the process's own embedded server with Config.InProcess talks to it in memory, not over TCP, and works as
// a TCP one does: it publishes, reads the log, and the server counts it as a client.
func TestConnect_InProcess(t *testing.T) {
	e := startServer(t)
	ctx := testCtx(t)
	c, err := Connect(ctx, Config{URL: e.ClientURL(), Stream: "INPROC", InProcess: e, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	if addr := c.conn().ConnectedAddr(); addr != "pipe" {
		t.Fatalf("connected to %q, want an in-memory pipe", addr)
	}
	publishN(t, c, 0, 5)
	sub, err := c.Subscribe(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	for want := uint64(1); want <= 5; want++ {
		if m := receive(t, sub, 5*time.Second); m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}
	// A TCP client sees what the in-process one wrote.
	tcp := connectStream(t, e.ClientURL(), "INPROC")
	if info, err := tcp.Info(ctx); err != nil || info.LastSeq != 5 {
		t.Fatalf("info over TCP = %+v, %v; want 5 entries", info, err)
	}
	if addr := tcp.conn().ConnectedAddr(); addr == "pipe" {
		t.Fatal("a Conn without InProcess connected in memory")
	}
}
