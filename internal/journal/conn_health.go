package journal

import (
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

const (
	// superviseInterval is how often a Conn looks at its connection: it polls the reason of a failing connection
	// (nats.go reports some refusals through no callback) and notices a connection closed for good should the
	// ClosedHandler's kick be missed.
	superviseInterval = 250 * time.Millisecond
	// redialMaxBackoff caps the pause between two failed dials of a new connection.
	redialMaxBackoff = 5 * time.Second
	// failureLogEvery is how often a connection that keeps failing with the same error is logged again.
	failureLogEvery = 30 * time.Second
)

// errNotConnected is the cause reported by Health before anything more precise is known.
var errNotConnected = errors.New("not connected")

// Health is a snapshot of a Conn's connection to NATS, for readiness checks and status reports.
type Health struct {
	// Connected is true while the connection is up: calls can reach NATS.
	Connected bool
	// Since is when the connection last went up or down; the time of Connect if it never did.
	Since time.Time
	// Err is nil while Connected. Otherwise it says why the connection is down, from the last failure seen: it
	// wraps ErrUnavailable, also ErrAuth when the server refused the credentials, and the nats.go cause. It never
	// contains the URL or a credential, so it can be shown as it is (in status.error, in a log). After Close it
	// wraps ErrClosed.
	Err error
	// Attempts is the number of failed connection attempts seen since the connection went down; 0 while Connected.
	Attempts int
	// Redials is how many times nats.go closed the connection for good and the Conn dialled a new one.
	Redials int
}

// Health reports the state of the connection. The Conn keeps reconnecting by itself whatever Err says (wrong
// credentials included) until Close, and recovers within about a second of NATS accepting it again. Safe for
// concurrent use; cheap enough to call on every readiness probe.
func (c *Conn) Health() Health {
	connected := c.Connected()
	h := c.health.snapshot()
	h.Connected = connected
	if c.isClosed() {
		h.Connected, h.Err = false, fmt.Errorf("journal: nats: %w", ErrClosed)
	} else if connected {
		h.Err, h.Attempts = nil, 0
	} else if h.Err == nil {
		h.Err = fmt.Errorf("journal: nats: %w: %w", ErrUnavailable, errNotConnected)
	}
	return h
}

// health records the connection's state from nats.go's callbacks and from supervise, and logs its changes: a
// failure once when it first appears or changes, then at most every failureLogEvery while it persists.
type health struct {
	log *zap.Logger

	mu        sync.Mutex
	connected bool      // as last reported
	since     time.Time // when connected last changed
	err       error     // why down (already wrapped for Health); nil while up
	attempts  int       // failed attempts since down
	redials   int
	logged    string    // failureKey of the failure last logged
	loggedAt  time.Time // when it was
}

func (h *health) init(log *zap.Logger, now time.Time) {
	h.log = log
	h.since = now
}

func (h *health) snapshot() Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Health{Connected: h.connected, Since: h.since, Err: h.err, Attempts: h.attempts, Redials: h.redials}
}

// up records a (re)connection. server must be redacted (no credentials).
func (h *health) up(server string, reconnected bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	fields := []zap.Field{zap.String("server", server)}
	if reconnected && !h.connected {
		fields = append(fields, zap.Duration("down_for", now.Sub(h.since)), zap.Int("failed_attempts", h.attempts))
	}
	if reconnected {
		h.log.Info("nats reconnected", fields...)
	} else {
		h.log.Info("nats connected", fields...)
	}
	h.connected, h.since, h.err, h.attempts, h.logged = true, now, nil, 0, ""
}

// down records a disconnection; err is nil when it was our own Close.
func (h *health) down(err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log.Warn("nats disconnected, reconnecting", zap.Error(err))
	if h.connected {
		h.connected, h.since = false, time.Now()
	}
	h.err, h.logged, h.loggedAt = wrapHealthErr(err), failureKey(err), time.Now()
}

// attemptFailed records a failed connection attempt (a dial error, a refusal by the server).
func (h *health) attemptFailed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	h.failed(err)
}

// polled records the error nats.go holds for a connection that is not up, if it tells something new. Unlike
// attemptFailed it does not count an attempt: the same error is seen on every poll.
func (h *health) polled(err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil && errors.Is(h.err, err) {
		return
	}
	h.failed(err)
}

// failed records err as why the connection is down and logs it if it is new, or at most every failureLogEvery.
// h.mu is held.
func (h *health) failed(err error) {
	h.err = wrapHealthErr(err)
	now := time.Now()
	if key := failureKey(err); key != h.logged || now.Sub(h.loggedAt) >= failureLogEvery {
		h.log.Warn("nats connection failing, retrying", zap.Error(err), zap.Int("failed_attempts", h.attempts),
			zap.Duration("down_for", now.Sub(h.since)))
		h.logged, h.loggedAt = key, now
	}
}

// closedForGood records that nats.go closed the connection by itself (cause is its last error, maybe nil).
func (h *health) closedForGood(cause error) {
	if cause == nil {
		cause = errors.New("nats: connection closed by the client library")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log.Error("nats connection closed for good by the client library, dialling a new one", zap.Error(cause))
	if h.connected {
		h.connected, h.since = false, time.Now()
	}
	h.err, h.logged, h.loggedAt = wrapHealthErr(cause), failureKey(cause), time.Now()
}

// redialed records that a new connection replaced the closed one.
func (h *health) redialed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.redials++
	h.log.Warn("nats connection replaced", zap.Int("redials", h.redials))
}

// failureKey tells failures apart for logging only: by sentinel when classify knows the error (nats.go reports the
// same refusal as ErrAuthorization from one path and as the server's own words from another), else by text. It
// never decides anything but whether to log again.
func failureKey(err error) string {
	if s := classify(err); s != nil {
		return s.Error()
	}
	return err.Error()
}

// serverAddr is the server nc is connected to, as scheme://host:port: without the user and password of the URL.
func serverAddr(nc *nats.Conn) string {
	u, err := url.Parse(nc.ConnectedUrlRedacted())
	if err != nil {
		return nc.ConnectedAddr()
	}
	u.User = nil
	return u.String()
}

// wrapHealthErr is cause as Health reports it: ErrUnavailable, ErrAuth for a refusal of the credentials, the cause.
func wrapHealthErr(cause error) error {
	if classify(cause) == ErrAuth {
		return fmt.Errorf("journal: nats: %w: %w: %w", ErrUnavailable, ErrAuth, cause)
	}
	return fmt.Errorf("journal: nats: %w: %w", ErrUnavailable, cause)
}

// supervise is the Conn's own goroutine. It polls why a connection that is down is failing, and replaces a
// connection that nats.go closed for good. With MaxReconnects(-1) and IgnoreAuthErrorAbort nats.go still does that
// when the server sends an error it does not know (its processErr closes the connection for any -ERR other than
// stale connection, too many connections, unknown protocol, permissions, max subscriptions and authorization: e.g.
// "Maximum Payload Violation" after the server's limit was lowered, "Invalid Subject") or "maximum control line
// exceeded". A closed nats.go connection never reconnects, so without this the Conn would stay dead.
func (c *Conn) supervise() {
	defer c.wg.Done()
	tick := time.NewTicker(c.superviseInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-c.kick:
		case <-tick.C:
		}
		s := c.session()
		switch {
		case s.nc.IsClosed():
			c.health.closedForGood(s.nc.LastError())
			c.redial()
		case c.inProcess != nil && c.inProcess.Restarts() != s.gen:
			// A reconnection to an in-process server that restarted can come back with requests that are never
			// answered; a new connection has no such state.
			c.log.Info("the embedded nats server restarted; dialing a new connection to it")
			s.nc.Close()
			c.redial()
		case !s.nc.IsConnected():
			c.health.polled(s.nc.LastError())
		}
	}
}

// redial dials a new session to replace the current one, which is closed, with capped exponential backoff until it
// succeeds or c closes; then it moves the children that live on the connection over to the new session. A dial
// with RetryOnFailedConnect succeeds as soon as the options are valid, even with NATS down: the new connection
// then keeps reconnecting by itself. Only a bad option (an unreadable credentials file) makes it fail.
func (c *Conn) redial() {
	backoff := reconnectWait
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		s, err := c.dial()
		if err == nil {
			if c.isClosed() {
				s.nc.Close()
				return
			}
			c.sess.Store(s)
			c.health.redialed()
			c.rebindChildren()
			return
		}
		c.health.attemptFailed(err)
		timer.Reset(backoff)
		select {
		case <-c.closed:
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, redialMaxBackoff)
	}
}

// rebindChildren moves the children that live on the connection over to the current session.
func (c *Conn) rebindChildren() {
	c.mu.Lock()
	var rs []rebinder
	for s := range c.children {
		if r, ok := s.(rebinder); ok {
			rs = append(rs, r)
		}
	}
	c.mu.Unlock()
	for _, r := range rs {
		r.rebind()
	}
}
