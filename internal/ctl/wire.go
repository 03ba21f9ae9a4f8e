package ctl

import (
	"encoding/json"
	"time"
)

// The client side of the HTTP API contract (docs/api.md). Decoding is lenient: unknown fields are ignored.

// API paths.
const (
	pathKV        = "/v1/kv"
	pathKVPrefix  = "/v1/kv/"
	pathDigest    = "/v1/digest"
	pathStatus    = "/v1/status"
	pathSnapshots = "/v1/snapshots"
	pathFollowers = "/v1/followers"
	pathTxn       = "/v1/txn"
)

// contentTypeTxn is the media type of the binary body of POST /v1/txn.
const contentTypeTxn = "application/x-replikv-txn"

// headerSeq is the header on every answer: the answering node's applied sequence.
const headerSeq = "Replikv-Seq"

// Roles and states of the status object.
const (
	roleLeader   = "leader"
	roleFollower = "follower"

	stateRestoring  = "restoring"
	stateCatchingUp = "catching_up"
	stateReady      = "ready"
)

// maxValueLen is the largest value the API takes (docs/api.md, "Conventions").
const maxValueLen = 524288

// Status is GET /v1/status.
type Status struct {
	Role        string   `json:"role"`
	ID          string   `json:"id"`
	State       string   `json:"state"`
	AppliedSeq  uint64   `json:"applied_seq"`
	LogLastSeq  uint64   `json:"log_last_seq"`
	Lag         uint64   `json:"lag"`
	SnapshotSeq uint64   `json:"snapshot_seq"`
	Progress    Progress `json:"progress"`
	Error       string   `json:"error,omitempty"`
	// LeaderURL is the leader's advertised URL (a follower knows it from the lease): a follower's URL is enough to
	// find the leader. Empty from older servers.
	LeaderURL string `json:"leader_url,omitempty"`
	// Epoch is the leader's term, higher at every takeover (0 from older servers, or when unknown).
	Epoch uint64 `json:"epoch,omitempty"`
}

// Progress is the status object's onboarding progress.
type Progress struct {
	BytesDone  int64  `json:"bytes_done,omitempty"`
	BytesTotal int64  `json:"bytes_total,omitempty"`
	TargetSeq  uint64 `json:"target_seq,omitempty"`
}

// FollowerInfo is one entry of GET /v1/followers.
type FollowerInfo struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	AppliedSeq uint64    `json:"applied_seq"`
	Lag        uint64    `json:"lag"`
	LastSeen   time.Time `json:"last_seen"`
	// URL is the follower's own API URL (its --advertise-url): status, verify and watch reach every follower from the
	// leader's list alone. Empty from older servers.
	URL string `json:"url,omitempty"`
}

// followersBody is GET /v1/followers.
type followersBody struct {
	Followers []FollowerInfo `json:"followers"`
}

// Digest is GET /v1/digest.
type Digest struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

// Manifest is the part of a snapshot manifest the CLI shows; the JSON output passes manifests on as they came.
type Manifest struct {
	Seq           uint64    `json:"seq"`
	Keys          uint64    `json:"keys"`
	Bytes         int64     `json:"bytes"`
	Digest        string    `json:"digest"`
	CreatedAt     time.Time `json:"created_at"`
	Leader        string    `json:"leader"`
	CheckpointSeq uint64    `json:"checkpoint_seq,omitempty"`
}

// snapshotsBody is GET /v1/snapshots, manifests newest first.
type snapshotsBody struct {
	Snapshots []json.RawMessage `json:"snapshots"`
}

// WriteResult is the body of a successful PUT or DELETE.
type WriteResult struct {
	Key        string `json:"key"`
	Version    uint64 `json:"version"`
	Replicated *int   `json:"replicated,omitempty"`
}

// TxnResult is the body of a committed transaction (POST /v1/txn): the version every key got and the number of
// operations. Replicated is present only when the leader syncs followers.
type TxnResult struct {
	Version    uint64 `json:"version"`
	Ops        int    `json:"ops"`
	Replicated *int   `json:"replicated,omitempty"`
}

// txnErrorBody is the error answer of POST /v1/txn: the API's error, and when one operation is to blame its index,
// its key (unless the key itself is invalid) and the key's current version (412, 404).
type txnErrorBody struct {
	Error   string  `json:"error"`
	Code    string  `json:"code"`
	Op      *int    `json:"op"`
	Key     *string `json:"key"`
	Version *uint64 `json:"version"`
}

// listPage is one page of GET /v1/kv. Value is the API's base64, kept as it came.
type listPage struct {
	Items []listItem `json:"items"`
	Next  string     `json:"next"`
	Seq   uint64     `json:"seq"`
}

type listItem struct {
	Key     string  `json:"key"`
	Version uint64  `json:"version"`
	Value   *string `json:"value,omitempty"`
}

// errorBody is the API's error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
