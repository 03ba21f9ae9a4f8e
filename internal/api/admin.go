package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// snapshotsBody is the JSON answer of GET /v1/snapshots.
type snapshotsBody struct {
	Snapshots []any `json:"snapshots"`
}

// followersBody is the JSON answer of GET /v1/followers.
type followersBody struct {
	Followers []FollowerInfo `json:"followers"`
}

// statusJSON is the status object as encoded. Its progress field shadows Status.Progress (a shallower field wins in
// encoding/json): it is always present, and holds the fields the contract names for the state even when they are 0
// (bytes_done and bytes_total while restoring, target_seq while catching up), plus any other non-zero one.
type statusJSON struct {
	Status
	Progress progressJSON `json:"progress"`
}

// progressJSON is Progress with presence decided per field.
type progressJSON struct {
	BytesDone  *int64  `json:"bytes_done,omitempty"`
	BytesTotal *int64  `json:"bytes_total,omitempty"`
	TargetSeq  *uint64 `json:"target_seq,omitempty"`
}

// statusBody returns s as it is encoded.
func statusBody(s Status) statusJSON {
	var p Progress
	if s.Progress != nil {
		p = *s.Progress
	}
	restoring, catchingUp := s.State == StateRestoring, s.State == StateCatchingUp
	var out progressJSON
	if restoring || p.BytesDone != 0 || p.BytesTotal != 0 {
		out.BytesDone, out.BytesTotal = &p.BytesDone, &p.BytesTotal
	}
	if catchingUp || p.TargetSeq != 0 {
		out.TargetSeq = &p.TargetSeq
	}
	return statusJSON{Status: s, Progress: out}
}

// serveReadyz answers 200 with the status object when the node is ready, else 503 with it.
func (h *handler) serveReadyz(w http.ResponseWriter) {
	s := h.node.Status()
	status := http.StatusServiceUnavailable
	if s.State == StateReady {
		status = http.StatusOK
	}
	writeJSON(w, status, statusBody(s))
}

// serveSnapshots answers POST (take a snapshot now, 201 with its manifest) and GET (the manifests, newest first).
func (h *handler) serveSnapshots(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		m, err := h.cfg.Snapshots.CreateSnapshot(r.Context())
		if err != nil {
			h.writeFailure(w, r, "create snapshot", err)
			return
		}
		writeJSON(w, http.StatusCreated, m)
		return
	}
	list, err := h.cfg.Snapshots.ListSnapshots(r.Context())
	if err != nil {
		h.writeFailure(w, r, "list snapshots", err)
		return
	}
	if list == nil {
		list = []any{}
	}
	writeJSON(w, http.StatusOK, snapshotsBody{Snapshots: list})
}

// serveFollowers answers GET /v1/followers, sorted by id.
func (h *handler) serveFollowers(w http.ResponseWriter) {
	fs := h.cfg.Followers.Followers()
	if fs == nil {
		fs = []FollowerInfo{}
	}
	slices.SortFunc(fs, func(a, b FollowerInfo) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, followersBody{Followers: fs})
}

// DefaultPromoteTimeout is how long POST /v1/promote waits without a timeout parameter for the lease to be free and
// the log replayed; MaxPromoteTimeout is the largest timeout parameter.
const (
	DefaultPromoteTimeout = 30 * time.Second
	MaxPromoteTimeout     = 10 * time.Minute
)

// servePromote answers POST /v1/promote: 200 with the status object once the node leads (its state tells whether it
// has replayed the log yet), 409 when it may not or cannot take the lease (see Promoter).
func (h *handler) servePromote(w http.ResponseWriter, r *http.Request) {
	timeout := DefaultPromoteTimeout
	for name := range r.URL.Query() {
		if name != "timeout" {
			writeError(w, http.StatusBadRequest, CodeInvalidRequest, "unknown parameter "+strconv.Quote(name))
			return
		}
	}
	if v, ok, err := single(r.URL.Query(), "timeout"); err != nil {
		h.writeRequestError(w, err)
		return
	} else if ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxPromoteTimeout {
			writeError(w, http.StatusBadRequest, CodeInvalidRequest,
				"timeout must be a duration above 0 and at most "+MaxPromoteTimeout.String())
			return
		}
		timeout = d
	}
	st, err := h.cfg.Promoter.Promote(r.Context(), timeout)
	if err != nil {
		h.writeFailure(w, r, "promote", err)
		return
	}
	writeJSON(w, http.StatusOK, statusBody(st))
}
