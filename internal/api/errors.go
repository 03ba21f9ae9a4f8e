package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/replikv/replikv/internal/apply"
	"go.uber.org/zap"
)

// Sentinel errors that the node's implementations return (wrapped or not) so the handler can choose the answer. They
// are compared with errors.Is.
var (
	// ErrNotLeader means this node must not take writes: it is a leader that found another live leader or lost the
	// write fence (state degraded). Answered 503 not_leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader means a follower knows no live leader to send a writer to. Answered 503 no_leader.
	ErrNoLeader = errors.New("no leader known")
	// ErrUnavailable means the node cannot serve the request right now (no store open, e.g. during a
	// re-bootstrap; the write pipeline is recovering). Answered 503 unavailable; the client may retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrOutcomeUnknown means a write was sent to the log but its outcome was not confirmed (the acknowledgement
	// timed out or the connection broke): it may or may not be committed. Answered 503 outcome_unknown; a client
	// that must know reads the key back (or retries a compare-and-set).
	ErrOutcomeUnknown = errors.New("write outcome unknown")
	// ErrDiskFull means the node's disk (its store, or the embedded log's) has no room for the write: nothing was
	// committed. Answered 507 disk_full; the node recovers by itself when space returns.
	ErrDiskFull = errors.New("disk full")
	// ErrNotReady means the node has not finished starting. Answered 503 unavailable, like ErrUnavailable.
	ErrNotReady = errors.New("not ready")
	// ErrSnapshotBusy means a snapshot is already being taken, so POST /v1/snapshots cannot start another one.
	// Answered 409 snapshot_busy; the client may retry once the running snapshot is listed.
	ErrSnapshotBusy = errors.New("snapshot in progress")
	// ErrFailoverOff means the node does not take over as leader (a follower with --failover off). Answered 409
	// failover_off.
	ErrFailoverOff = errors.New("failover is off on this node")
	// ErrNotEligible means the node may not take over as leader now: it is not ready (catching up, cut off from the
	// log, or more than --ready-lag behind). Answered 409 not_eligible.
	ErrNotEligible = errors.New("not eligible to lead")
	// ErrLeaderAlive means another node held the leader lease for as long as a promotion waited. Answered 409
	// leader_alive.
	ErrLeaderAlive = errors.New("another leader holds the lease")
	// ErrIdempotencyKeyReused means a write's Idempotency-Key was used before by a different request (another
	// operation, key, value or precondition). Answered 422 idempotency_key_reused; nothing was written.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused by a different request")
	// ErrNotFound is apply.ErrNotFound, re-exported so that View implementations can signal an absent key without
	// importing apply. Answered 404 not_found.
	ErrNotFound = apply.ErrNotFound
)

// Machine codes of error answers (the "code" field).
const (
	CodeInvalidKey         = "invalid_key"
	CodeInvalidRequest     = "invalid_request"
	CodeValueTooLarge      = "value_too_large"
	CodeTxnTooLarge        = "txn_too_large"
	CodeNotFound           = "not_found"
	CodePreconditionFailed = "precondition_failed"
	CodeUnauthorized       = "unauthorized"
	CodeForbidden          = "forbidden"
	CodeNotLeader          = "not_leader"
	CodeNoLeader           = "no_leader"
	CodeUnavailable        = "unavailable"
	CodeOutcomeUnknown     = "outcome_unknown"
	CodeDiskFull           = "disk_full"
	CodeTimeout            = "timeout"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeSnapshotBusy       = "snapshot_busy"
	CodeFailoverOff        = "failover_off"
	CodeNotEligible        = "not_eligible"
	CodeLeaderAlive        = "leader_alive"
	CodeInternal           = "internal"
	CodeIdempotencyReused  = "idempotency_key_reused"
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// writeError answers status with the error JSON.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

// writeFailure maps an error from the node (or a context error) to its answer. Unknown errors are logged and
// answered 500 internal without their text, which may hold details not meant for clients.
func (h *handler) writeFailure(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case errors.Is(err, apply.ErrInvalidKey):
		writeError(w, http.StatusBadRequest, CodeInvalidKey, msgInvalidKey)
	case errors.Is(err, apply.ErrValueTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, CodeValueTooLarge, msgValueTooLarge)
	case errors.Is(err, apply.ErrTxnTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, CodeTxnTooLarge, "transaction too large")
	case errors.Is(err, apply.ErrPrecondition):
		writeError(w, http.StatusPreconditionFailed, CodePreconditionFailed, "precondition failed")
	case errors.Is(err, apply.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, "key not found")
	case errors.Is(err, ErrIdempotencyKeyReused):
		writeError(w, http.StatusUnprocessableEntity, CodeIdempotencyReused,
			"this Idempotency-Key was used by a different request (operation, key, value or preconditions); nothing was written")
	case errors.Is(err, ErrNotLeader):
		writeError(w, http.StatusServiceUnavailable, CodeNotLeader, "this node is not the leader (fenced, or another leader holds the lease)")
	case errors.Is(err, ErrNoLeader):
		writeError(w, http.StatusServiceUnavailable, CodeNoLeader, "no leader is known")
	case errors.Is(err, ErrOutcomeUnknown):
		writeError(w, http.StatusServiceUnavailable, CodeOutcomeUnknown,
			"the write was sent to the log but not confirmed: it may or may not be committed")
	case errors.Is(err, ErrDiskFull):
		writeError(w, http.StatusInsufficientStorage, CodeDiskFull, "no space left on the node's disk; nothing was written")
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotReady):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "node unavailable, retry later")
	case errors.Is(err, ErrSnapshotBusy):
		writeError(w, http.StatusConflict, CodeSnapshotBusy, "a snapshot is already in progress")
	case errors.Is(err, ErrFailoverOff):
		writeError(w, http.StatusConflict, CodeFailoverOff, "failover is off on this node (--failover off)")
	case errors.Is(err, ErrNotEligible):
		writeError(w, http.StatusConflict, CodeNotEligible, "this node may not lead now: "+causeAfter(err, ErrNotEligible))
	case errors.Is(err, ErrLeaderAlive):
		writeError(w, http.StatusConflict, CodeLeaderAlive, "another node holds the leader lease: "+causeAfter(err, ErrLeaderAlive))
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, CodeTimeout, "timed out")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer, but the status still lands in metrics.
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "request canceled")
	default:
		h.log.Error("request failed", zap.String(fieldOp, op), zap.String(fieldMethod, r.Method), zap.Error(err))
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error")
	}
}

// causeAfter is the text of err after its sentinel's: the node's own explanation (the node's state or the lease's
// holder), which holds nothing secret.
func causeAfter(err, sentinel error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, sentinel.Error()+": "); i >= 0 {
		return msg[i+len(sentinel.Error())+2:]
	}
	return sentinel.Error()
}

// Human messages shared by several answers.
const (
	msgInvalidKey    = "key must be 1 to 1024 bytes of valid UTF-8 without NUL"
	msgValueTooLarge = "value longer than 524288 bytes"
)

// Log field names.
const (
	fieldOp     = "op"
	fieldMethod = "method"
	fieldAddr   = "addr"
)
