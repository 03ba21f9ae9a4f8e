package journal

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// embeddedStartTimeout bounds how long StartEmbedded waits for the server to accept connections (JetStream
// recovers its store before that, so a large store takes a while).
const embeddedStartTimeout = 60 * time.Second

const (
	// defaultRecoverFree is EmbeddedConfig.RecoverFree's default.
	defaultRecoverFree = 32 << 20
	// recoverPoll is how often a failed store's free space is checked.
	recoverPoll = time.Second
	// restartBackoff is the least time between two restarts of the server.
	restartBackoff = 10 * time.Second
)

// errNotRunning is InProcessConn's answer while the server restarts; the client's reconnect loop retries.
var errNotRunning = errors.New("journal: embedded nats server is restarting")

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
	// RecoverFree is the free space StoreDir's file system needs before a server whose store failed a write (a
	// full disk) is restarted; 0 means 32 MiB.
	RecoverFree int64
	// Logger receives the server's log; nil discards it.
	Logger *zap.Logger
	// Users, when not empty, turns authentication on: every client, the in-process connection included, must log in
	// as one of them (user name and password), and may then use only the subjects of that user's Permissions
	// (LeaderPermissions, FollowerPermissions). Empty means no authentication: anyone who reaches Listen may publish
	// and subscribe to anything, the log included.
	Users []User
}

// Embedded is a running in-process NATS server with JetStream (file storage). Close stops it.
//
// nats-server stops a stream for good once its file store fails a write (a full disk): every later publish goes
// unanswered until the server restarts. Embedded watches the server's log for that failure and, once StoreDir's
// file system has EmbeddedConfig.RecoverFree bytes free again, restarts the server in place (same address, same
// store; the restart recovers every stream from disk as a process restart would). Clients reconnect by themselves.
type Embedded struct {
	opts        server.Options // Port is the bound port after the first start, so a restart keeps the address
	log         *zap.Logger
	recoverFree int64

	mu  sync.Mutex
	srv *server.Server

	failed   chan storeFailure // a store's critical write error, buffered 1
	restarts int
	failure  error // the store failure the server has not been restarted from yet; guarded by mu
	stop     chan struct{}
	done     chan struct{}
	closeMu  sync.Once
}

// storeFailure is a server's log line saying a store failed a write, with the server's generation (Restarts when it
// started), so that a line of a server already replaced is told apart.
type storeFailure struct {
	gen int
	msg string
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
	if cfg.RecoverFree < 0 {
		return nil, fmt.Errorf("journal: start embedded: %w: negative recover free space", ErrMalformed)
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
	if err := validateUsers(cfg.Users); err != nil {
		return nil, fmt.Errorf("journal: start embedded: %w", err)
	}
	e := &Embedded{
		opts: server.Options{
			Host:         host,
			Port:         port,
			JetStream:    true,
			StoreDir:     cfg.StoreDir,
			SyncInterval: cfg.SyncInterval,
			SyncAlways:   cfg.SyncAlways,
			NoSigs:       true,
			Users:        serverUsers(cfg.Users),
		},
		log:         log,
		recoverFree: cfg.RecoverFree,
		failed:      make(chan storeFailure, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if e.recoverFree == 0 {
		e.recoverFree = defaultRecoverFree
	}
	srv, err := e.start(0)
	if err != nil {
		return nil, fmt.Errorf("journal: start embedded: %w", err)
	}
	e.srv = srv
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		e.opts.Port = a.Port
	}
	log.Info("embedded nats server ready", zap.String(fieldURL, srv.ClientURL()), zap.Bool("auth", len(cfg.Users) > 0),
		zap.Strings("users", userNames(cfg.Users)))
	if ip := net.ParseIP(host); len(cfg.Users) == 0 && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		log.Warn("the embedded nats server has no authentication and listens beyond loopback: whoever reaches it can "+
			"write the replication log", zap.String("listen", cfg.Listen))
	}
	go e.supervise()
	return e, nil
}

// start runs one server, generation gen, with e.opts and waits until it accepts connections.
func (e *Embedded) start(gen int) (*server.Server, error) {
	opts := e.opts // NewServer keeps and amends the Options it is given
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, err
	}
	slog := newServerLogger(e.log)
	slog.writeFailed = func(msg string) {
		// Keep the newest: a pending one is of this server or of one it replaced, never of a later one.
		for {
			select {
			case e.failed <- storeFailure{gen: gen, msg: msg}:
				return
			default:
			}
			select {
			case <-e.failed:
			default:
			}
		}
	}
	srv.SetLoggerV2(slog, e.log.Core().Enabled(zap.DebugLevel), false, false)
	// Start returns once the listeners are set up, or early after a Fatalf (which our logger turns into a value).
	srv.Start()
	select {
	case msg := <-slog.fatal:
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New(msg)
	default:
	}
	if !srv.ReadyForConnections(embeddedStartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("not ready after %s", embeddedStartTimeout)
	}
	return srv, nil
}

// supervise restarts the server after a store's write failure, once the store's file system has room again.
func (e *Embedded) supervise() {
	defer close(e.done)
	var last time.Time
	for {
		var f storeFailure
		select {
		case <-e.stop:
			return
		case f = <-e.failed:
		}
		if f.gen != e.Restarts() {
			continue // from a server already replaced
		}
		why := f.msg
		e.log.Error("the embedded nats server's store failed a write; it restarts once its disk has room",
			zap.String("error", why), zap.Int64("need_free_bytes", e.recoverFree))
		e.mu.Lock()
		e.failure = fmt.Errorf("the embedded nats server's store failed a write (%s); it restarts once %d bytes "+
			"are free on its disk: %w", why, e.recoverFree, ErrUnavailable)
		e.mu.Unlock()
		t := time.NewTicker(recoverPoll)
		for waiting := true; waiting; {
			select {
			case <-e.stop:
				t.Stop()
				return
			case <-t.C:
			}
			free, err := freeBytes(e.opts.StoreDir)
			if err != nil || free < e.recoverFree || time.Since(last) < restartBackoff {
				continue
			}
			last = time.Now()
			if err := e.restart(); err != nil {
				e.log.Error("restarting the embedded nats server failed; retrying", zap.Error(err),
					zap.Duration("retry_in", restartBackoff))
				continue
			}
			waiting = false
		}
		t.Stop()
	}
}

// restart replaces the server with a new one on the same address and store.
func (e *Embedded) restart() error {
	e.mu.Lock()
	old := e.srv
	e.srv = nil
	e.mu.Unlock()
	if old != nil {
		old.Shutdown()
		old.WaitForShutdown()
	}
	e.mu.Lock()
	gen := e.restarts + 1
	e.mu.Unlock()
	srv, err := e.start(gen)
	if err != nil {
		return fmt.Errorf("journal: restart embedded: %w", err)
	}
	e.mu.Lock()
	e.srv = srv
	e.restarts++
	e.failure = nil
	e.mu.Unlock()
	var streams int
	if jsz, err := srv.Jsz(nil); err == nil {
		streams = jsz.Streams
	}
	e.log.Info("embedded nats server restarted", zap.String(fieldURL, srv.ClientURL()), zap.Int("streams", streams))
	return nil
}

// Restarts returns how many times the server was restarted after a store failure.
func (e *Embedded) Restarts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restarts
}

// StoreFailure returns why the server's log stopped taking writes (a store failed a write) until it restarts, or nil.
func (e *Embedded) StoreFailure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failure
}

// InProcessConn implements nats.InProcessConnProvider: a connection in memory to the running server. While the
// server restarts it fails, and the client's reconnect loop tries again.
func (e *Embedded) InProcessConn() (net.Conn, error) {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil, errNotRunning
	}
	return srv.InProcessConn()
}

// ClientURL is the nats:// URL clients connect to (with the actual port when Listen asked for port 0).
func (e *Embedded) ClientURL() string {
	return "nats://" + net.JoinHostPort(e.opts.Host, strconv.Itoa(e.opts.Port))
}

// Close shuts the server down and waits until it is gone. It is idempotent and safe for concurrent use.
func (e *Embedded) Close() {
	e.closeMu.Do(func() {
		close(e.stop)
		<-e.done
		e.mu.Lock()
		srv := e.srv
		e.srv = nil
		e.mu.Unlock()
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	})
}

// serverUsers converts users into nats-server's users (nil for none). The server clones them when it starts, so
// a restart can use the same ones.
func serverUsers(users []User) []*server.User {
	var out []*server.User
	for _, u := range users {
		out = append(out, &server.User{
			Username: u.Name,
			Password: u.Password,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: slices.Clone(u.Permissions.Publish)},
				Subscribe: &server.SubjectPermission{Allow: slices.Clone(u.Permissions.Subscribe)},
			},
		})
	}
	return out
}

// userNames lists the names of users, for logs (never their passwords).
func userNames(users []User) []string {
	names := make([]string, 0, len(users))
	for _, u := range users {
		names = append(names, u.Name)
	}
	return names
}

// freeBytes returns the space an unprivileged writer may still use on dir's file system.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("journal: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// isWriteFailure reports whether a server log line says a store stopped taking writes.
func isWriteFailure(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "critical write error")
}
