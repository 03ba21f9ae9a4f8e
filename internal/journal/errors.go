package journal

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrWrongLastSeq means the server rejected a publish because the stream's last sequence was not the expected
	// one (JetStream API error 10071, or 10164 on replicated streams): another writer exists, or an earlier publish
	// of the same pipeline failed.
	ErrWrongLastSeq = errors.New("wrong last sequence")
	// ErrUnavailable means NATS or JetStream could not be reached or did not answer in time (disconnected,
	// reconnecting, timeout, no responders). Retrying later may succeed.
	ErrUnavailable = errors.New("nats unavailable")
	// ErrNoStream means the log stream does not exist.
	ErrNoStream = errors.New("stream not found")
	// ErrStreamConfig means an existing stream's configuration is incompatible with the replication log.
	ErrStreamConfig = errors.New("incompatible stream config")
	// ErrLeaseHeld means another leader (a different id) holds a live lease.
	ErrLeaseHeld = errors.New("leader lease held by another node")
	// ErrLeaseLost means the lease's revision moved: another node took the lease.
	ErrLeaseLost = errors.New("leader lease lost")
	// ErrNoLeader means no leader lease exists (no bucket, no key, or the key expired).
	ErrNoLeader = errors.New("no leader")
	// ErrClosed means the Conn was closed. A call may also return it in the moment between nats.go closing a
	// connection by itself and the Conn replacing it (see Health.Redials): only Close ends a Conn.
	ErrClosed = errors.New("connection closed")
	// ErrMalformed means a value (heartbeat, lease record, argument) failed validation.
	ErrMalformed = errors.New("malformed")
	// ErrRejected means the server answered a publish with an error other than the ones above: the entry was not
	// stored (nor, in a pipeline chained by expected sequence, any entry published after it).
	ErrRejected = errors.New("refused by the server")
	// ErrAuth means the NATS server refused the connection's credentials (authorization violation, expired or
	// revoked credentials). Health reports it, together with ErrUnavailable: the Conn keeps retrying, and recovers
	// once the server accepts the credentials again.
	ErrAuth = errors.New("nats refused the credentials")
	// ErrNoEntry means the log holds no entry at a sequence: compacted away, or beyond its end.
	ErrNoEntry = errors.New("no such entry")
)

// classify maps a NATS or JetStream error onto one of the package sentinels, or returns nil when none applies.
// It is the single place where library errors become ours; codes are compared, never text.
func classify(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return ErrWrongLastSeq
		case jetstream.JSErrCodeStreamNotFound:
			return ErrNoStream
		case jetstream.JSErrCodeJetStreamNotEnabled:
			return ErrUnavailable
		}
		if apiErr.Code == 503 {
			return ErrUnavailable
		}
		if apiErr.Code != 0 {
			return ErrRejected
		}
	}
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired):
		return ErrAuth
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return ErrNoStream
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, jetstream.ErrJetStreamPublisherClosed):
		return ErrClosed
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, jetstream.ErrTooManyStalledMsgs),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, nats.ErrStaleConnection), errors.Is(err, nats.ErrNoServers):
		return ErrUnavailable
	}
	return nil
}

// wrapErr wraps err as "journal: <op>: <sentinel>: <cause>" so that errors.Is matches both the sentinel and the
// original cause. A cancelled context is passed through without a sentinel: it is the caller's decision, not an
// outage.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("journal: %s: %w", op, err)
	}
	if s := classify(err); s != nil {
		return fmt.Errorf("journal: %s: %w: %w", op, s, err)
	}
	return fmt.Errorf("journal: %s: %w", op, err)
}
