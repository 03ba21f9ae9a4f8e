package journal

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// embeddedStartTimeout bounds how long StartEmbedded waits for the server to accept connections (JetStream
// recovers its store before that, so a large store takes a while).
const embeddedStartTimeout = 60 * time.Second

// EmbeddedConfig configures the in-process NATS server the leader runs when no --nats-url is given.
type EmbeddedConfig struct {
	// Listen is the host:port for client connections. Port 0 picks a free port (see Embedded.ClientURL).
	Listen string
	// StoreDir is the JetStream file storage directory; required.
	StoreDir string
	// SyncInterval is how often JetStream fsyncs its files; 0 keeps the server default (2 minutes). An
	// acknowledged write younger than this may be lost on power failure (not on a process crash).
	SyncInterval time.Duration
	// SyncAlways fsyncs every write before acknowledging it: the slowest and only power-loss-safe mode.
	SyncAlways bool
	// Logger receives the server's log; nil discards it.
	Logger *zap.Logger
}

// Embedded is a running in-process NATS server with JetStream (file storage). Close stops it.
type Embedded struct {
	srv       *server.Server
	closeOnce sync.Once
}

// StartEmbedded starts the server and waits (bounded) until it accepts client connections. A bad configuration or
// an address already in use is returned as an error, never as an exit of the process.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String(fieldComponent, "nats-server"))
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("journal: start embedded: %w: empty store dir", ErrMalformed)
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("journal: start embedded: %w: negative sync interval", ErrMalformed)
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("journal: start embedded: %w: listen %q: %w", ErrMalformed, cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("journal: start embedded: %w: listen port %q", ErrMalformed, portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as "default port 4222"
	}
	opts := &server.Options{
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		NoSigs:       true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("journal: start embedded: %w", err)
	}
	slog := newServerLogger(log)
	srv.SetLoggerV2(slog, log.Core().Enabled(zap.DebugLevel), false, false)
	// Start returns once the listeners are set up, or early after a Fatalf (which our logger turns into a value).
	srv.Start()
	select {
	case msg := <-slog.fatal:
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("journal: start embedded: %s", msg)
	default:
	}
	if !srv.ReadyForConnections(embeddedStartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("journal: start embedded: not ready after %s", embeddedStartTimeout)
	}
	log.Info("embedded nats server ready", zap.String(fieldURL, srv.ClientURL()))
	return &Embedded{srv: srv}, nil
}

// ClientURL is the nats:// URL clients connect to (with the actual port when Listen asked for port 0).
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Close shuts the server down and waits until it is gone. It is idempotent and safe for concurrent use.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	})
}
