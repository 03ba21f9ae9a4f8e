package journal

import (
	"fmt"
	"time"
)

// maxPressureSize caps an encoded pressure report; anything larger is rejected without parsing.
const maxPressureSize = 1 << 10

// The bounds of a pressure report (see Pressure).
const (
	// MaxPressureWindow is the longest window a report may cover.
	MaxPressureWindow = time.Minute
	// MaxPressureP99 is the highest p99 a report may carry.
	MaxPressureP99 = time.Hour
)

// Pressure is what the leader periodically reports about its write load: how many writes it answered in the last
// window and the p99 of their latency. Followers that catch up pace their reads of the log against it.
//
// On the wire it is one JSON object: {"epoch":..,"writes":..,"p99_us":..,"window_ms":..,"sent_at":".."}, P99 in
// whole microseconds and Window in whole milliseconds.
type Pressure struct {
	// Epoch is the leader's lease epoch (Lease.Epoch), at least 1: reports of an older leader can be told apart.
	Epoch uint64
	// Writes is how many writes the leader answered in the window.
	Writes uint64
	// P99 is the p99 of those writes' latency: 0 when Writes is 0, at most MaxPressureP99. Encoding rounds it up to
	// a whole microsecond, so that a non-zero latency never reads as 0.
	P99 time.Duration
	// Window is the length of the window the report covers: 1 ms to MaxPressureWindow. Encoding rounds it to the
	// nearest millisecond.
	Window time.Duration
	// SentAt is when the leader sent the report (the zero time when unknown).
	SentAt time.Time
}

// pressureWire is Pressure as it is encoded.
type pressureWire struct {
	Epoch    uint64    `json:"epoch"`
	Writes   uint64    `json:"writes"`
	P99Us    uint64    `json:"p99_us"`
	WindowMs uint64    `json:"window_ms"`
	SentAt   time.Time `json:"sent_at"`
}

func (w pressureWire) validate() error {
	switch {
	case w.Epoch == 0:
		return fmt.Errorf("%w: epoch 0, want at least 1", ErrMalformed)
	case w.WindowMs < 1 || w.WindowMs > uint64(MaxPressureWindow/time.Millisecond):
		return fmt.Errorf("%w: window of %d ms, want 1..%d", ErrMalformed, w.WindowMs,
			MaxPressureWindow/time.Millisecond)
	case w.P99Us > uint64(MaxPressureP99/time.Microsecond):
		return fmt.Errorf("%w: p99 of %d us, more than %s", ErrMalformed, w.P99Us, MaxPressureP99)
	case w.Writes == 0 && w.P99Us != 0:
		return fmt.Errorf("%w: p99 of %d us without writes", ErrMalformed, w.P99Us)
	}
	return nil
}

func (w pressureWire) pressure() Pressure {
	return Pressure{
		Epoch:  w.Epoch,
		Writes: w.Writes,
		P99:    time.Duration(w.P99Us) * time.Microsecond,
		Window: time.Duration(w.WindowMs) * time.Millisecond,
		SentAt: w.SentAt,
	}
}

// wire converts p to its encoded form, rounding P99 up to a microsecond and Window to the nearest millisecond.
func (p Pressure) wire() (pressureWire, error) {
	// Checked before rounding, which could overflow: the bounds are far below what a Duration holds.
	if p.P99 < 0 || p.P99 > MaxPressureP99 {
		return pressureWire{}, fmt.Errorf("%w: p99 %s, want 0..%s", ErrMalformed, p.P99, MaxPressureP99)
	}
	if p.Window < 0 || p.Window > MaxPressureWindow {
		return pressureWire{}, fmt.Errorf("%w: window %s, want 1ms..%s", ErrMalformed, p.Window, MaxPressureWindow)
	}
	w := pressureWire{
		Epoch:    p.Epoch,
		Writes:   p.Writes,
		P99Us:    uint64((p.P99 + time.Microsecond - 1) / time.Microsecond),
		WindowMs: uint64(p.Window.Round(time.Millisecond) / time.Millisecond),
		SentAt:   p.SentAt,
	}
	return w, w.validate()
}

// EncodePressure validates p (an epoch of at least 1, a window of 1 ms to MaxPressureWindow, a p99 of at most
// MaxPressureP99 and 0 without writes) and encodes it as JSON, P99 rounded up to a whole microsecond and Window to
// the nearest millisecond. Errors wrap ErrMalformed.
func EncodePressure(p Pressure) ([]byte, error) {
	w, err := p.wire()
	if err != nil {
		return nil, fmt.Errorf("journal: encode pressure: %w", err)
	}
	return encodeJSON(w, maxPressureSize, "pressure")
}

// DecodePressure parses one pressure report strictly: at most 1 KiB, a single JSON object with no unknown fields and
// nothing after it, and the values EncodePressure accepts (an epoch of at least 1, a window of 1..60000 ms, a p99 of
// at most an hour and 0 without writes). Every failure wraps ErrMalformed.
func DecodePressure(b []byte) (Pressure, error) {
	w, err := decodeJSON[pressureWire](b, maxPressureSize, "pressure")
	if err != nil {
		return Pressure{}, err
	}
	if err := w.validate(); err != nil {
		return Pressure{}, fmt.Errorf("journal: decode pressure: %w", err)
	}
	return w.pressure(), nil
}

// PublishPressure sends p on replikv.<stream>.pressure over core NATS, without flushing or waiting: a report lost
// while disconnected is not sent again, the next one replaces it. Errors: ErrMalformed, ErrUnavailable
// (disconnected: the report is dropped), ErrClosed.
func (c *Conn) PublishPressure(p Pressure) error {
	b, err := EncodePressure(p)
	if err != nil {
		return err
	}
	if err := c.conn().Publish(pressureSubject(c.stream), b); err != nil {
		return wrapErr("publish pressure", err)
	}
	return nil
}

// SubscribePressure calls fn for each valid pressure report on replikv.<stream>.pressure; malformed ones are dropped
// and logged at debug level. fn runs on one goroutine at a time, must not block for long and must not call stop.
// stop unsubscribes and waits for a running fn; fn is not called after it returns. stop is idempotent, and
// Conn.Close calls it too. The subscription survives reconnections, and moves to the new connection when the Conn
// replaces one (see Health.Redials). Errors: ErrUnavailable, ErrClosed.
func (c *Conn) SubscribePressure(fn func(Pressure)) (stop func(), err error) {
	return subscribeCore(c, "subscribe pressure", pressureSubject(c.stream), "pressure reports", "pressure report",
		DecodePressure, fn, nil)
}
