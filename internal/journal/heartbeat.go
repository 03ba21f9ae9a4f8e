package journal

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxHeartbeatSize caps an encoded heartbeat; anything larger is rejected without parsing.
const maxHeartbeatSize = 4 << 10

// ValidateNodeID checks a follower id, as --id and heartbeats carry it: 1..256 bytes of valid UTF-8, every character
// printable and none a space (so that it shows as one word in logs and in the leader's follower list). It returns an
// error wrapping ErrMalformed otherwise.
func ValidateNodeID(id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: id %q is not valid UTF-8", ErrMalformed, id)
	}
	if strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return fmt.Errorf("%w: id %q has a space or an unprintable character", ErrMalformed, id)
	}
	return nil
}

// The follower states a heartbeat may carry (the same words as the status object's state).
const (
	StateStarting   = "starting"
	StateRestoring  = "restoring"
	StateCatchingUp = "catching_up"
	StateReady      = "ready"
	StateDegraded   = "degraded"
	StateFailed     = "failed"
)

// Heartbeat is what a follower periodically reports to the leader: its state and how far it has applied the log.
type Heartbeat struct {
	// ID is the follower's id (see ValidateNodeID).
	ID string `json:"id"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Applied is the last log sequence the follower applied.
	Applied uint64 `json:"applied"`
	// Lag is how many log entries the follower is behind, as it last saw the log.
	Lag uint64 `json:"lag"`
	// SentAt is when the follower sent the heartbeat.
	SentAt time.Time `json:"sent_at"`
	// URL is the follower's API URL (its --advertise-url), empty when unknown: an http(s) URL without credentials, at
	// most MaxURLLen bytes.
	URL string `json:"url,omitempty"`
}

// MaxURLLen bounds a URL a heartbeat or the lease carries.
const MaxURLLen = 1024

// validateURL checks a heartbeat's URL (see Heartbeat.URL); empty is valid.
func validateURL(raw string) error {
	if raw == "" {
		return nil
	}
	if len(raw) > MaxURLLen {
		return fmt.Errorf("%w: url of %d bytes, more than %d", ErrMalformed, len(raw), MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: url is not an http(s) URL without credentials", ErrMalformed)
	}
	return nil
}

func (h Heartbeat) validate() error {
	if err := ValidateNodeID(h.ID); err != nil {
		return err
	}
	if err := validateURL(h.URL); err != nil {
		return err
	}
	switch h.State {
	case StateStarting, StateRestoring, StateCatchingUp, StateReady, StateDegraded, StateFailed:
		return nil
	}
	return fmt.Errorf("%w: unknown state %q", ErrMalformed, h.State)
}

// EncodeHeartbeat validates h (an id ValidateNodeID accepts, a known state) and encodes it as JSON. Errors wrap
// ErrMalformed.
func EncodeHeartbeat(h Heartbeat) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("journal: encode heartbeat: %w", err)
	}
	return encodeJSON(h, maxHeartbeatSize, "heartbeat")
}

// DecodeHeartbeat parses one heartbeat strictly: at most 4 KiB, a single JSON object with no unknown fields and
// nothing after it, an id ValidateNodeID accepts, a known state. Every failure wraps ErrMalformed.
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	h, err := decodeJSON[Heartbeat](b, maxHeartbeatSize, "heartbeat")
	if err != nil {
		return Heartbeat{}, err
	}
	if err := h.validate(); err != nil {
		return Heartbeat{}, fmt.Errorf("journal: decode heartbeat: %w", err)
	}
	return h, nil
}

// PublishHeartbeat sends h on replikv.<stream>.heartbeat over core NATS, without flushing or waiting: cheap enough
// to call after every apply batch. Errors: ErrMalformed, ErrUnavailable (disconnected: the heartbeat is dropped),
// ErrClosed.
func (c *Conn) PublishHeartbeat(h Heartbeat) error {
	b, err := EncodeHeartbeat(h)
	if err != nil {
		return err
	}
	if err := c.conn().Publish(c.hbSubject, b); err != nil {
		return wrapErr("publish heartbeat", err)
	}
	return nil
}

// SubscribeHeartbeats calls fn for each valid heartbeat on replikv.<stream>.heartbeat; malformed ones are dropped,
// logged at debug level and passed to Config.OnMalformedHeartbeat. fn runs on one goroutine at a time, must not
// block for long and must not call stop. stop unsubscribes and waits for a running fn (or OnMalformedHeartbeat);
// neither is called after it returns. stop is idempotent, and Conn.Close calls it too. The subscription survives
// reconnections, and moves to the new connection when the Conn replaces one (see Health.Redials). Errors:
// ErrUnavailable, ErrClosed.
func (c *Conn) SubscribeHeartbeats(fn func(Heartbeat)) (stop func(), err error) {
	return subscribeCore(c, "subscribe heartbeats", c.hbSubject, "heartbeats", "heartbeat", DecodeHeartbeat, fn,
		c.onMalformedHeartbeat)
}
