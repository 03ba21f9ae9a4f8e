package journal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

const (
	// maxPendingAcks caps the publishes in flight; PublishAsync backs off when it is reached.
	maxPendingAcks = 4096
	// ackTimeout fails a publish whose ack has not arrived, so that Ack.Wait never hangs on a lost ack.
	ackTimeout = 5 * time.Second
	// apiTimeout bounds JetStream API calls whose context has no deadline.
	apiTimeout = 5 * time.Second
	// stallWait is how long one attempt of PublishAsync waits for a free slot before it rechecks its context.
	stallWait = 50 * time.Millisecond
	// reconnectWait and reconnectJitter pace reconnection attempts; there is no limit on their number.
	reconnectWait   = 500 * time.Millisecond
	reconnectJitter = 250 * time.Millisecond
	dialTimeout     = 2 * time.Second
	pingInterval    = 5 * time.Second
	maxReplicas     = 5
	defaultConnName = "replikv"
)

// Config configures Connect.
type Config struct {
	// URL is one or more comma-separated nats:// URLs; required.
	URL string
	// Stream is the JetStream stream name of the replication log; see ValidateStreamName.
	Stream string
	// Replicas is the number of stream (and lease bucket) replicas used when creating them; 0 means 1, max 5.
	Replicas int
	// StreamTags are JetStream placement tags for the log stream and the lease bucket when they are created: on a
	// cluster they go to servers that carry every tag. Empty means anywhere. See ValidateTags.
	StreamTags []string
	// MirrorTags are placement tags for the catch-up mirror when EnsureCatchUpMirror creates it, so that the
	// followers' catch-up reads cost other servers than the log's. Empty means anywhere.
	MirrorTags []string
	// Name is the client connection name shown by the server; empty means "replikv".
	Name string
	// Logger receives connection events; nil discards them.
	Logger *zap.Logger
	// CredsFile is a NATS user credentials (.creds: JWT + NKey seed) file; empty means none. User/password and
	// token auth go in the URL (nats://user:pass@host:4222), which is never logged, or in User and Password.
	CredsFile string
	// User and Password, when User is set, are the NATS user name and password the connection logs in with (to the
	// embedded server with authentication on, or to an external one). Both or neither. The password is never
	// logged nor put in an error.
	User, Password string
	// OnMalformedHeartbeat, when not nil, is called for each heartbeat that SubscribeHeartbeats drops because it does
	// not decode (DecodeHeartbeat), on the subscription's goroutine; it must not block.
	OnMalformedHeartbeat func(error)
	// CAFile is a PEM bundle of CAs trusted for tls:// servers; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key for servers that require mutual TLS.
	CertFile, KeyFile string
	// InProcess, when not nil, is the embedded server this process runs: the connection to it is made in memory
	// instead of over TCP to URL, which saves the system calls of every publish and acknowledgement.
	InProcess *Embedded
}

func (cfg *Config) validate() error {
	if cfg.URL == "" {
		return fmt.Errorf("%w: empty nats url", ErrMalformed)
	}
	if err := ValidateStreamName(cfg.Stream); err != nil {
		return err
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 1 || cfg.Replicas > maxReplicas {
		return fmt.Errorf("%w: replicas %d, want 1..%d", ErrMalformed, cfg.Replicas, maxReplicas)
	}
	if err := ValidateTags(cfg.StreamTags); err != nil {
		return fmt.Errorf("journal: stream tags: %w", err)
	}
	if err := ValidateTags(cfg.MirrorTags); err != nil {
		return fmt.Errorf("journal: catch-up mirror tags: %w", err)
	}
	if cfg.User != "" || cfg.Password != "" {
		if err := ValidateUserName(cfg.User); err != nil {
			return fmt.Errorf("journal: nats user: %w", err)
		}
		if cfg.Password == "" {
			return fmt.Errorf("%w: nats user %q without a password", ErrMalformed, cfg.User)
		}
	}
	if cfg.Name == "" {
		cfg.Name = defaultConnName
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return nil
}

// stopper is anything a Conn owns and must stop when it closes (subscriptions, heartbeat and pressure listeners,
// leases).
type stopper interface{ stop() }

// rebinder is a stopper that lives on the connection itself (a core NATS subscription, a consumer's iterator): after
// the Conn replaced a connection nats.go had closed for good (see supervise), rebind moves it onto the new one. It is
// called on the supervising goroutine, never under Conn.mu, and must not block for long.
type rebinder interface{ rebind() }

// session is one nats.go connection and the JetStream context on it. A Conn keeps one session for its whole life
// unless nats.go closes the connection by itself, which it does for a few server errors whatever the reconnect
// options (see supervise); the Conn then dials a new session and swaps it in. Everything bound to a session (the
// cached lease bucket handle) lives in it, so that a swap cannot leave a handle on the dead connection behind.
type session struct {
	nc *nats.Conn
	js jetstream.JetStream
	// gen is the in-process server's Embedded.Restarts when the session was dialed.
	gen int

	leaseKV jetstream.KeyValue // cached lease bucket handle, nil until found; guarded by Conn.mu
}

// Conn is a connection to NATS bound to one replication-log stream. All methods are safe for concurrent use, except
// that PublishAsync must be called by one goroutine at a time for its ordering to mean anything.
//
// A Conn never gives up on NATS: it reconnects without limit whatever the error (authorization errors included), and
// if nats.go closes the connection anyway it dials a new one (see Health). Only Close ends it.
type Conn struct {
	sess      atomic.Pointer[session] // never nil after Connect; replaced only by supervise
	stream    string
	subject   string
	hbSubject string
	replicas  int
	// streamTags and mirrorTags are Config.StreamTags and Config.MirrorTags.
	streamTags, mirrorTags []string
	log                    *zap.Logger

	// dial makes a new session with the options of Connect.
	dial func() (*session, error)
	// inProcess is Config.InProcess.
	inProcess *Embedded
	// onMalformedHeartbeat is Config.OnMalformedHeartbeat.
	onMalformedHeartbeat func(error)
	// health records the connection's state for Health; kick wakes supervise when nats.go closed a connection.
	health health
	kick   chan struct{}
	// superviseInterval is how often supervise looks at the connection; tests make it shorter.
	superviseInterval time.Duration
	wg                sync.WaitGroup // supervise

	// purgeStepBytes is purgeStepBytes; tests make it smaller.
	purgeStepBytes uint64

	// pubOpts are the fixed per-publish options, built once so publishing does not allocate them.
	pubOpts []jetstream.PublishOpt

	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	children map[stopper]struct{} // nil once closed
}

// Connect connects to NATS with unlimited reconnects and RetryOnFailedConnect, so it returns even when NATS is down
// at start (or refuses the credentials); calls then fail with ErrUnavailable until the connection is up, and Health
// says why it is not. While disconnected nothing is buffered: publishes fail at once instead of being sent after a
// reconnect. ctx only bounds the setup.
func Connect(ctx context.Context, cfg Config) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("journal: connect: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("journal: connect: %w", err)
	}
	log := cfg.Logger.With(zap.String(fieldComponent, componentName), zap.String(fieldStream, cfg.Stream))
	c := &Conn{
		stream:            cfg.Stream,
		subject:           logSubject(cfg.Stream),
		hbSubject:         heartbeatSubject(cfg.Stream),
		replicas:          cfg.Replicas,
		streamTags:        slices.Clone(cfg.StreamTags),
		mirrorTags:        slices.Clone(cfg.MirrorTags),
		log:               log,
		kick:              make(chan struct{}, 1),
		superviseInterval: superviseInterval,
		purgeStepBytes:    purgeStepBytes,
		pubOpts: []jetstream.PublishOpt{
			// A no-responders retry would re-send an entry after later ones: let the caller decide instead.
			jetstream.WithRetryAttempts(0),
			jetstream.WithStallWait(stallWait),
		},
		closed:    make(chan struct{}),
		children:  make(map[stopper]struct{}),
		inProcess: cfg.InProcess,

		onMalformedHeartbeat: cfg.OnMalformedHeartbeat,
	}
	c.health.init(log, time.Now())
	opts := c.natsOptions(cfg)
	c.dial = func() (*session, error) {
		var gen int
		if cfg.InProcess != nil {
			gen = cfg.InProcess.Restarts()
		}
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, err
		}
		js, err := jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
			jetstream.WithPublishAsyncTimeout(ackTimeout),
			jetstream.WithDefaultTimeout(apiTimeout),
		)
		if err != nil {
			nc.Close()
			return nil, err
		}
		return &session{nc: nc, js: js, gen: gen}, nil
	}
	s, err := c.dial()
	if err != nil {
		return nil, wrapErr("connect", err)
	}
	c.sess.Store(s)
	c.wg.Add(1)
	go c.supervise()
	return c, nil
}

// natsOptions are the nats.go options of every session. The handlers feed c.health; they may run for a session
// that was already replaced, which is harmless: a replaced session is closed and reports nothing more of interest.
func (c *Conn) natsOptions(cfg Config) []nats.Option {
	var opts []nats.Option
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	return append(opts,
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		// By default nats.go closes the connection for good after the same authorization error twice in a row: a
		// server restarted for a few seconds with other credentials would then cut the node off until it restarts.
		nats.IgnoreAuthErrorAbort(),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitter),
		// Nothing is buffered while reconnecting: a publish then fails at once with ErrReconnectBufExceeded ("outbound
		// buffer limit exceeded"), which classify reads as ErrUnavailable. The JetStream ack futures of such publishes
		// are released by nats.go, so nothing is left pending.
		nats.ReconnectBufSize(-1),
		nats.Timeout(dialTimeout),
		// Notice a dead TCP connection (a partition, a peer that vanished) in seconds, not the default minutes.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(nc *nats.Conn) { c.health.up(serverAddr(nc), false) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.health.up(serverAddr(nc), true) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.health.down(err) }),
		// A failed reconnection attempt: dial errors only (refused, timeout, TLS); the server's refusals come through
		// the error handler (after the first connection) or are polled by supervise (before it).
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { c.health.attemptFailed(err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if classify(err) == ErrAuth {
				c.health.attemptFailed(err)
				return
			}
			c.log.Warn("nats async error", zap.Error(err))
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			if c.isClosed() {
				return
			}
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}),
	)
}

// session returns the current session. Callers use the one they loaded for a whole operation.
func (c *Conn) session() *session { return c.sess.Load() }

// conn is the current nats.go connection.
func (c *Conn) conn() *nats.Conn { return c.session().nc }

// jetStream is the JetStream context of the current connection.
func (c *Conn) jetStream() jetstream.JetStream { return c.session().js }

// Connected reports whether the connection is currently up. Health also says why it is not.
func (c *Conn) Connected() bool { return c.conn().IsConnected() }

// MaxPayload is the largest message (payload and headers) the server the connection is on accepts, in bytes: its
// max_payload, 1 MiB unless configured. A larger publish fails without being sent. 0 before the first connect.
func (c *Conn) MaxPayload() int64 { return c.conn().MaxPayload() }

// Close stops every subscription, heartbeat and pressure listener and lease renewer started on c (leases are not
// deleted: they expire after their TTL), waits for their goroutines, and closes the connection. Pending Ack.Wait calls
// return ErrClosed. Idempotent.
func (c *Conn) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.wg.Wait() // supervise: no session is swapped in nor child rebound after this
		c.mu.Lock()
		children := c.children
		c.children = nil
		c.mu.Unlock()
		for s := range children {
			s.stop()
		}
		c.conn().Close()
	})
}

// track registers s to be stopped by Close; it fails with ErrClosed after Close.
func (c *Conn) track(s stopper) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.children == nil {
		return ErrClosed
	}
	c.children[s] = struct{}{}
	return nil
}

// untrack forgets s (it stopped by itself).
func (c *Conn) untrack(s stopper) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.children != nil {
		delete(c.children, s)
	}
}

// isClosed reports whether Close was called.
func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}
