package journal

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
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
