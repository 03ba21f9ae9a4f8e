package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// coreSub delivers the messages of one core NATS subject, decoded, to a callback until stopped: the subscriptions of
// SubscribeHeartbeats and SubscribePressure.
type coreSub struct {
	c       *Conn
	subject string
	// what names the messages in logs, plural ("heartbeats").
	what   string
	handle nats.MsgHandler

	mu      sync.RWMutex // held for reading while a callback runs, so stop can wait for it; guards sub and stopped
	sub     *nats.Subscription
	stopped bool
	once    sync.Once
}

// subscribeCore subscribes to subject on c and calls fn with each message that decode accepts. A message decode
// refuses is dropped, logged at debug level as "dropped malformed <item>" and passed to onMalformed when that is not
// nil. fn and onMalformed run on one goroutine at a time (nats.go's for the subscription), never after stop returned.
// op names the operation in errors ("subscribe heartbeats"), what the messages in logs ("heartbeats"), item one of
// them ("heartbeat"). The subscription is tracked by c: Close stops it, and it moves to a connection that replaces
// the current one (rebind).
func subscribeCore[T any](c *Conn, op, subject, what, item string, decode func([]byte) (T, error), fn func(T),
	onMalformed func(error)) (stop func(), err error) {
	if c.isClosed() {
		return nil, fmt.Errorf("journal: %s: %w", op, ErrClosed)
	}
	cs := &coreSub{c: c, subject: subject, what: what}
	cs.handle = func(m *nats.Msg) {
		v, err := decode(m.Data)
		if err != nil {
			c.log.Debug("dropped malformed "+item, zap.Int("bytes", len(m.Data)), zap.Error(err))
			if onMalformed != nil {
				cs.mu.RLock()
				defer cs.mu.RUnlock()
				if !cs.stopped {
					onMalformed(err)
				}
			}
			return
		}
		cs.mu.RLock()
		defer cs.mu.RUnlock()
		if !cs.stopped {
			fn(v)
		}
	}
	sub, err := c.conn().Subscribe(subject, cs.handle)
	if err != nil {
		return nil, wrapErr(op, err)
	}
	cs.sub = sub
	if err := c.track(cs); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("journal: %s: %w", op, err)
	}
	return func() {
		cs.stop()
		c.untrack(cs)
	}, nil
}

func (cs *coreSub) stop() {
	cs.once.Do(func() {
		cs.mu.Lock()
		cs.stopped = true
		sub := cs.sub
		cs.mu.Unlock()
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			cs.c.log.Debug("unsubscribe "+cs.what, zap.Error(err))
		}
	})
}

// rebind subscribes again on the Conn's current connection, which replaced the one cs.sub was made on.
func (cs *coreSub) rebind() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.stopped {
		return
	}
	sub, err := cs.c.conn().Subscribe(cs.subject, cs.handle)
	if err != nil {
		// The new connection closed at once too: the next replacement rebinds again.
		cs.c.log.Warn(cs.what+" subscription not moved to the new nats connection", zap.Error(err))
		return
	}
	_ = cs.sub.Unsubscribe() // the old connection is closed: this only releases it
	cs.sub = sub
}

// encodeJSON encodes v, a message of kind what of at most limit bytes, as JSON. Errors wrap ErrMalformed.
func encodeJSON(v any, limit int, what string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("journal: encode %s: %w: %w", what, ErrMalformed, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("journal: encode %s: %w: %d bytes", what, ErrMalformed, len(b))
	}
	return b, nil
}

// decodeJSON parses b strictly as one T, a message of kind what: at most limit bytes, a single JSON object with no
// unknown fields and nothing after it. Every failure wraps ErrMalformed; the caller validates the values.
func decodeJSON[T any](b []byte, limit int, what string) (T, error) {
	var v T
	if len(b) > limit {
		return v, fmt.Errorf("journal: decode %s: %w: %d bytes", what, ErrMalformed, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("journal: decode %s: %w: %w", what, ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, fmt.Errorf("journal: decode %s: %w: trailing data", what, ErrMalformed)
	}
	return v, nil
}
