package api

import (
	"context"
	"fmt"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

// Roles and states of the status object, as the contract spells them.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"

	StateStarting   = "starting"
	StateRestoring  = "restoring"
	StateCatchingUp = "catching_up"
	StateReady      = "ready"
	StateDegraded   = "degraded"
	StateFailed     = "failed"
)

// Progress is the onboarding progress of a node: BytesDone and BytesTotal while restoring, TargetSeq while catching
// up. The handler always emits the "progress" object, as {} when there is nothing to report, so clients can read it
// without checking for its presence; in the restoring state bytes_done and bytes_total are always present, in
// catching_up target_seq is, even when 0.
type Progress struct {
	BytesDone  int64  `json:"bytes_done,omitempty"`
	BytesTotal int64  `json:"bytes_total,omitempty"`
	TargetSeq  uint64 `json:"target_seq,omitempty"`
}

// Status is the status object of GET /v1/status and /readyz. State is one of the State* constants; /readyz answers
// 200 only when it is StateReady. Error is set in the degraded and failed states. A nil Progress is emitted as {} (see Progress).
type Status struct {
	Role        string    `json:"role"`
	ID          string    `json:"id"`
	State       string    `json:"state"`
	AppliedSeq  uint64    `json:"applied_seq"`
	LogLastSeq  uint64    `json:"log_last_seq"`
	Lag         uint64    `json:"lag"`
	SnapshotSeq uint64    `json:"snapshot_seq"`
	Progress    *Progress `json:"progress,omitempty"`
	Error       string    `json:"error,omitempty"`
	// LeaderURL is the leader's advertised URL: the leader's own, or the one a follower last read from the lease;
	// empty when unknown.
	LeaderURL string `json:"leader_url,omitempty"`
	// Epoch is the leader's term (journal.LeaderInfo.Epoch), higher at every takeover: on a leader, that of the lease
	// it holds; on a follower, the one it last read from the lease; 0 when unknown.
	Epoch uint64 `json:"epoch,omitempty"`
}

// LeaderHinter is optionally implemented by a Node: LeaderHint returns the URL of the leader as the node knows it
// without asking anyone (its own while it holds the lease, or the one a follower last read), or "" when it does not
// know. Every answer then carries it as Replikv-Leader.
type LeaderHinter interface {
	LeaderHint() string
}

// Item is one entry of a list page. Value is nil unless values were asked for.
type Item struct {
	Key     []byte
	Version uint64
	Value   []byte
}

// View is a consistent point-in-time view of the store: every method answers from the same state, at sequence Seq.
// A View is used by one request (one goroutine) and closed once; the handler always calls Close.
type View interface {
	// Seq is the applied sequence of the view; it is the Replikv-Seq of every read served from it.
	Seq() uint64
	// Get returns the value and version of key. The error wraps ErrNotFound (= apply.ErrNotFound) when the key is
	// absent. The returned slice may be retained by the caller until Close.
	Get(key []byte) (value []byte, version uint64, err error)
	// List returns at most limit items (limit >= 1) whose keys start with prefix and are strictly greater than
	// after (nil after = from the start), in byte order of the key; values only when values is true. next is the key
	// to pass as after for the following page, and is empty when no item follows.
	List(prefix, after []byte, limit int, values bool) (items []Item, next []byte, err error)
	// Digest returns the number of live keys and the state digest (lower-case hex SHA-256, see the contract).
	Digest() (keys uint64, digest string, err error)
	// Close releases the view. It is called exactly once.
	Close() error
}

// Node is what every role provides to the handler. All methods are safe for concurrent use.
type Node interface {
	// Status returns the current status object.
	Status() Status
	// Applied returns the last applied log sequence; it is the Replikv-Seq of answers not served from a view.
	Applied() uint64
	// View opens a point-in-time view of the store. It returns an error wrapping ErrUnavailable when no store is
	// open (e.g. in the middle of a re-bootstrap).
	View(ctx context.Context) (View, error)
	// WaitApplied blocks until the node has applied seq, and returns nil then. It returns ctx.Err() when ctx ends
	// first, and may return ErrUnavailable when the node can no longer get there (e.g. it failed).
	WaitApplied(ctx context.Context, seq uint64) error
	// StrongTarget returns the replication log's last sequence as of now: a follower asks NATS, a leader returns its
	// applied sequence. The handler retries failures with a backoff until the read's timeout, so an implementation
	// should fail (or honor ctx) rather than block past ctx.
	StrongTarget(ctx context.Context) (uint64, error)
}

// ReadBarrier makes the leader's reads linearizable. AwaitReadable(ctx, key) returns nil once the node's store holds
// every write to key that the log may have committed when it was called (acknowledged or not), so that a view
// opened afterwards misses no such write that any node has served or any client has been told; with a nil key, every
// write to any key (lists and digests). Linearizability is a property of each key on its own, so a read of one key
// waits only for writes of that key. It returns an error wrapping ErrNotLeader when this node must not answer reads
// as the leader (fenced, or another leader holds the lease), ErrUnavailable while it cannot tell yet (starting,
// replaying the log, resynchronising after a failed publish; the handler retries until the read's timeout), or
// ctx's error. Safe for concurrent use.
type ReadBarrier interface {
	AwaitReadable(ctx context.Context, key []byte) error
}

// WriteRequest is one validated write: Key passed apply.ValidateKey and Value (nil for a delete) is at most
// apply.MaxValueLen bytes. The Writer may retain Key and Value.
type WriteRequest struct {
	Op    apply.Op
	Key   []byte
	Value []byte
	Cond  apply.Cond
	// IdemKey is the request's Idempotency-Key (valid, see apply.ValidateIdemKey), nil without one.
	IdemKey []byte
}

// WriteResult is the outcome of a committed write. Version is the log sequence of the write. When SyncRequired
// (the leader runs with --sync-followers K > 0), Replicated is the number of ready followers that confirmed it and
// Confirmed whether that reached K before the sync timeout; the answer is then 202 when !Confirmed, else 200.
type WriteResult struct {
	Version uint64
	// Replayed says that an earlier request with the same Idempotency-Key made this write: Version is its result,
	// and nothing was written again.
	Replayed     bool
	Replicated   int
	SyncRequired bool
	Confirmed    bool
}

// Writer is the leader's write path. Write returns only once the write is committed (in the log and applied
// locally) or has failed. Errors, compared with errors.Is: apply.ErrPrecondition (412), apply.ErrNotFound (404, delete
// of an absent key), ErrNotLeader (503 not_leader: not committed), ErrUnavailable (503 unavailable: certainly not
// committed, nothing was sent to the log), ErrOutcomeUnknown (503 outcome_unknown: sent to the log and not
// confirmed, it may or may not be committed), ErrDiskFull (507 disk_full: not committed), ErrIdempotencyKeyReused
// (422: the request's IdemKey belongs to another request), ctx's deadline (504 outcome_unknown). ErrOutcomeUnknown is checked before ErrUnavailable, so an error may wrap both. A 412 or 404 is
// decided only on state that reads can see. With an IdemKey that an earlier, identical request of the retention
// period wrote, Write returns that write's result (Replayed) and writes nothing. Safe for concurrent use.
type Writer interface {
	Write(ctx context.Context, req WriteRequest) (WriteResult, error)
}

// TxnOp is one validated operation of a transaction: a put of Value (possibly empty) or a delete (Value nil) of Key,
// with the operation's own preconditions (If-Match or If-None-Match: *, as a single write's).
type TxnOp struct {
	Op    apply.Op
	Key   []byte
	Value []byte
	Cond  apply.Cond
}

// TxnRequest is one validated transaction (POST /v1/txn): 1 to apply.MaxTxnOps puts and deletes in the order the
// client gave them, every key valid and named once, every value at most apply.MaxValueLen bytes, and an entry of at
// most apply.MaxTxnLen bytes (apply.TxnLen). The TxnWriter may retain the slices.
type TxnRequest struct {
	Ops []TxnOp
	// IdemKey is the request's Idempotency-Key, as WriteRequest.IdemKey.
	IdemKey []byte
}

// TxnWriter is the leader's transaction path. WriteTxn checks every operation's preconditions as the same single
// write would be checked (a delete of an absent key fails too), and then commits all the operations as one log
// entry, every key getting the entry's sequence as its version (WriteResult.Version), or commits none. It returns
// only once the transaction is committed (in the log and applied locally, atomically: no read sees part of it) or
// has failed. Errors are Writer.Write's, except that a failed check is a *TxnOpError naming the first operation (in
// request order) that failed, and is decided only on state that reads can see. Safe for concurrent use.
type TxnWriter interface {
	WriteTxn(ctx context.Context, req TxnRequest) (WriteResult, error)
}

// TxnOpError is why a transaction was refused by one of its operations: Err wraps apply.ErrPrecondition (412) or
// apply.ErrNotFound (404, a delete of an absent key). Index is the operation's position in TxnRequest.Ops (from 0),
// Key its key, and Current the key's state the check saw.
type TxnOpError struct {
	Index   int
	Key     []byte
	Current apply.Current
	Err     error
}

func (e *TxnOpError) Error() string {
	return fmt.Sprintf("api: txn op %d: %v", e.Index, e.Err)
}

func (e *TxnOpError) Unwrap() error { return e.Err }

// Redirector is the follower's write path. LeaderURL returns the leader's advertised base URL (scheme, host and
// port, no path), or an error wrapping ErrNoLeader when no live leader is known. Safe for concurrent use.
type Redirector interface {
	LeaderURL(ctx context.Context) (string, error)
}

// Snapshotter is the leader's snapshot control. The manifests it returns are encoded as JSON as they are. Errors:
// ErrSnapshotBusy (409), ErrNotLeader (503 not_leader), ErrUnavailable (503). Safe for concurrent use.
type Snapshotter interface {
	// CreateSnapshot takes a snapshot now and returns its manifest once it is stored.
	CreateSnapshot(ctx context.Context) (any, error)
	// ListSnapshots returns the manifests of the stored snapshots, newest first.
	ListSnapshots(ctx context.Context) ([]any, error)
}

// FollowerInfo is one follower as the leader last heard of it. LastSeen is encoded in RFC 3339.
type FollowerInfo struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	AppliedSeq uint64    `json:"applied_seq"`
	Lag        uint64    `json:"lag"`
	LastSeen   time.Time `json:"last_seen"`
	// URL is the follower's API URL as it advertises it; empty when it did not say.
	URL string `json:"url,omitempty"`
}

// FollowerLister is the leader's view of its followers. Followers returns a slice the caller may keep and reorder;
// the handler sorts it by ID. Safe for concurrent use.
type FollowerLister interface {
	Followers() []FollowerInfo
}

// Leading is implemented by a Writer whose node changes role (a follower that can be promoted to leader): while
// Leading reports false, the handler treats the node as a follower (writes are redirected, leader-only endpoints
// answer 404), and the configuration must have a Redirector too.
type Leading interface {
	Leading() bool
}

// Promoter is a node that can be asked to take over as leader (POST /v1/promote). Promote returns once the node
// leads (the status it then has: ready, or still replaying the log when timeout ran out first), or with
// ErrFailoverOff, ErrNotEligible or ErrLeaderAlive (the lease stayed held for timeout; the node goes on following).
// A node that leads already returns its status.
type Promoter interface {
	Promote(ctx context.Context, timeout time.Duration) (Status, error)
}
