package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/metrics"
	"go.uber.org/zap"
)

// Defaults and limits of the handler.
const (
	// DefaultReadTimeout is the longest wait of a strong or min_seq read without a timeout parameter.
	DefaultReadTimeout = 5 * time.Second
	// DefaultMaxReadTimeout is the largest timeout parameter a read may ask for.
	DefaultMaxReadTimeout = 5 * time.Minute
	// DefaultWriteTimeout bounds a write from the handler's side.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultBodyTimeout bounds the read of a request body once its headers arrived.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultBodyBuffer caps the bytes of request bodies held at once.
	DefaultBodyBuffer = 128 << 20
	// MaxTxnBody is the longest body of POST /v1/txn in bytes (smaller when BodyBuffer is): room for a transaction
	// entry of apply.MaxTxnLen bytes in JSON with base64 values, field names and escapes.
	MaxTxnBody = 8 << 20
	// DefaultListLimit is the page size of a list without a limit parameter.
	DefaultListLimit = 1000
	// MaxListLimit is the largest limit parameter of a list.
	MaxListLimit = 10000
	// HeaderSeq is the header every answer carries: the answering node's applied sequence.
	HeaderSeq = "Replikv-Seq"
	// HeaderLeader is the header that tells the client where the leader is, as the answering node knows it (see
	// LeaderHinter); absent when the node does not know.
	HeaderLeader = "Replikv-Leader"
	// HeaderServerTiming carries, on a successful write, how long the leader spent on it from having read the request's
	// headers to answering (W3C Server-Timing, "write;dur=<milliseconds>"): what the leader's own work and waits cost,
	// without the network and the client.
	HeaderServerTiming = "Server-Timing"
	// HeaderIdempotencyKey is the request header of PUT, DELETE and POST /v1/txn that makes a retry safe: 1 to
	// apply.MaxIdemKeyLen visible ASCII characters, chosen by the client, unique per write it means.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotentReplayed is "true" on the answer to a write whose Idempotency-Key an earlier request already
	// wrote: the answer is that write's result, and nothing was written again.
	HeaderIdempotentReplayed = "Idempotent-Replayed"
)

// Config is the handler's configuration. Node and exactly one write path (Writer on a leader, Redirector on a
// follower) are required; the rest is optional.
type Config struct {
	// Node serves status, reads and consistency waits. Required.
	Node Node
	// Writer is the leader's write path. When set, Redirector is ignored, unless Writer implements Leading and reports
	// that the node follows at the moment.
	Writer Writer
	// Redirector sends a follower's writers to the leader (307). Used when Writer is nil.
	Redirector Redirector
	// Txn is the leader's transaction path (POST /v1/txn). On a node with a Writer and no Txn, POST /v1/txn
	// answers 404; a follower redirects it with the other writes.
	Txn TxnWriter
	// Barrier, when set (on a leader), is passed by every read before it is answered, whatever its consistency
	// parameter: reads on the leader are linearizable. Nil answers eventual reads from the current state.
	Barrier ReadBarrier
	// Snapshots serves /v1/snapshots (leader only). Nil answers 404 "leader-only endpoint".
	Snapshots Snapshotter
	// Followers serves /v1/followers (leader only). Nil answers 404 "leader-only endpoint".
	Followers FollowerLister
	// Promoter serves POST /v1/promote (a follower that can take over as leader). Nil answers 404.
	Promoter Promoter
	// AuthToken, when not empty, is required as "Authorization: Bearer <token>" on every /v1/ request (ReadToken
	// will do for reads). It allows every request. It is never logged.
	AuthToken string
	// ReadToken, when not empty, is a second bearer token that allows only GET and HEAD requests under /v1/ (reads
	// of keys, lists, the digest, the status, the snapshot and follower lists); any other method answers 403
	// forbidden with it. It needs AuthToken and must differ from it. It is never logged.
	ReadToken string
	// Metrics receives read and write latencies and serves /metrics. Nil disables both (/metrics answers 404).
	Metrics *metrics.Metrics
	// Logger is the handler's logger; nil means zap.NewNop().
	Logger *zap.Logger
	// ReadTimeout is the wait of strong and min_seq reads without a timeout parameter. Zero means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// MaxReadTimeout is the largest accepted timeout parameter; larger ones answer 400. Zero means
	// DefaultMaxReadTimeout.
	MaxReadTimeout time.Duration
	// WriteTimeout bounds each call to Writer.Write; past it the answer is 504 outcome_unknown. It must exceed the leader's
	// --sync-timeout so that unconfirmed sync writes answer 202. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// BodyTimeout bounds the read of a write's body once its headers arrived; past it the answer is 408 timeout and
	// the connection is closed. Zero means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// BodyBuffer caps the bytes of write bodies held at once (reserved at the declared length, or the largest value
	// for a chunked body, from before the read until the write is answered); a write that does not fit answers 503
	// unavailable with Retry-After. Zero means DefaultBodyBuffer; it must hold one maximal value.
	BodyBuffer int64
}

// errConfig is wrapped by every configuration error of NewHandler.
var errConfig = errors.New("invalid config")

// withDefaults checks c and fills the zero fields with defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Node == nil {
		return c, fmt.Errorf("api: %w: Node is required", errConfig)
	}
	if c.Writer == nil && c.Redirector == nil {
		return c, fmt.Errorf("api: %w: Writer (leader) or Redirector (follower) is required", errConfig)
	}
	if _, ok := c.Writer.(Leading); ok && c.Redirector == nil {
		return c, fmt.Errorf("api: %w: a Writer that may follow (Leading) needs a Redirector", errConfig)
	}
	if c.ReadToken != "" && (c.AuthToken == "" || c.ReadToken == c.AuthToken) {
		return c, fmt.Errorf("api: %w: ReadToken needs an AuthToken that differs from it", errConfig)
	}
	if c.ReadTimeout < 0 || c.MaxReadTimeout < 0 || c.WriteTimeout < 0 {
		return c, fmt.Errorf("api: %w: negative timeout", errConfig)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxReadTimeout == 0 {
		c.MaxReadTimeout = DefaultMaxReadTimeout
	}
	if c.ReadTimeout > c.MaxReadTimeout {
		return c, fmt.Errorf("api: %w: ReadTimeout %s exceeds MaxReadTimeout %s", errConfig, c.ReadTimeout,
			c.MaxReadTimeout)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.BodyTimeout < 0 || c.BodyBuffer < 0 {
		return c, fmt.Errorf("api: %w: negative body timeout or buffer", errConfig)
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.BodyBuffer == 0 {
		c.BodyBuffer = DefaultBodyBuffer
	}
	if c.BodyBuffer < apply.MaxValueLen {
		return c, fmt.Errorf("api: %w: BodyBuffer %d cannot hold one value of %d bytes", errConfig, c.BodyBuffer,
			apply.MaxValueLen)
	}
	return c, nil
}
