package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ack is the pending result of one PublishAsync. Wait may be called from a goroutine other than the publisher's
// (the intended use: one goroutine publishes, another awaits the acks in order).
type Ack struct {
	c   *Conn
	paf jetstream.PubAckFuture
}

// PublishAsync sends one log entry without waiting for its ack. The entry carries
// Nats-Expected-Last-Sequence = expectedLast, so the server appends it only if the stream's last sequence is exactly
// expectedLast (0 = empty stream): one writer can pipeline thousands of entries and is still fenced against a second
// writer (but a stale pipeline is refused only until one of its expected sequences happens to match the log: after
// the first failure, treat every later entry of the same pipeline as possibly stored). msgID, when not empty, is sent
// as Nats-Msg-Id: within the stream's duplicate window (1 second) the server acks a re-send of the same id with the
// original sequence instead of storing it again. The server checks the expected sequence first, so the re-send must
// expect the current last sequence to be recognised as a duplicate.
//
// At most 4096 publishes are in flight; when that many are pending, PublishAsync backs off until a slot frees or
// ctx is done. It fails at once with ErrUnavailable while disconnected (nothing is buffered for later), ErrClosed
// after Close. Calls must come from one goroutine at a time, in log order. data must not be modified until the ack.
func (c *Conn) PublishAsync(ctx context.Context, data []byte, expectedLast uint64, msgID string) (*Ack, error) {
	return c.PublishChained(ctx, data, expectedLast, "", msgID)
}

// PublishChained is PublishAsync that also sends Nats-Expected-Last-Msg-Id = prevMsgID when it is not empty. A
// pipeline chains each entry to the Msg-Id of the one it published before: once any entry of the pipeline is
// refused, every later one is refused too (its predecessor is not the log's last message), so a stale pipeline can
// never get its tail into the log even when a later expected sequence happens to line up. The first entry of a
// chain passes an empty prevMsgID and relies on the expected sequence alone.
func (c *Conn) PublishChained(ctx context.Context, data []byte, expectedLast uint64, prevMsgID, msgID string) (*Ack, error) {
	if c.isClosed() {
		return nil, fmt.Errorf("journal: publish: %w", ErrClosed)
	}
	if !c.conn().IsConnected() {
		return nil, fmt.Errorf("journal: publish: %w: not connected", ErrUnavailable)
	}
	h := nats.Header{jetstream.ExpectedLastSeqHeader: []string{strconv.FormatUint(expectedLast, 10)}}
	if msgID != "" {
		h[jetstream.MsgIDHeader] = []string{msgID}
	}
	if prevMsgID != "" {
		h[jetstream.ExpectedLastMsgIDHeader] = []string{prevMsgID}
	}
	msg := &nats.Msg{Subject: c.subject, Data: data, Header: h}
	for {
		paf, err := c.jetStream().PublishMsgAsync(msg, c.pubOpts...)
		if err == nil {
			return &Ack{c: c, paf: paf}, nil
		}
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return nil, wrapErr("publish", err)
		}
		// Too many acks pending: each attempt already waited stallWait for a slot, so just recheck ctx.
		if err := ctx.Err(); err != nil {
			return nil, wrapErr("publish", err)
		}
		if c.isClosed() {
			return nil, fmt.Errorf("journal: publish: %w", ErrClosed)
		}
	}
}

// Wait blocks until the server acknowledged the entry and returns the stream sequence assigned to it (for a
// duplicate Msg-Id: the sequence of the original, which may be lower than expectedLast+1). Errors: ErrWrongLastSeq
// (another writer exists, or an earlier entry of the pipeline failed), ErrUnavailable (no ack within 5 s,
// disconnected, no responders), ErrClosed, the wrapped ctx error, or another wrapped error. An error other than
// ErrWrongLastSeq does not say whether the entry was stored: read the log to find out.
func (a *Ack) Wait(ctx context.Context) (uint64, error) {
	// Fast path: the ack is usually in already when the committer gets to it.
	select {
	case pa := <-a.paf.Ok():
		return pa.Sequence, nil
	case err := <-a.paf.Err():
		return 0, wrapErr("publish ack", err)
	default:
	}
	select {
	case pa := <-a.paf.Ok():
		return pa.Sequence, nil
	case err := <-a.paf.Err():
		return 0, wrapErr("publish ack", err)
	case <-ctx.Done():
		return 0, wrapErr("publish ack", ctx.Err())
	case <-a.c.closed:
		return 0, fmt.Errorf("journal: publish ack: %w", ErrClosed)
	}
}
