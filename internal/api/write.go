package api

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"go.uber.org/zap"
)

// writeBody is the JSON answer of a successful write. Replicated is present only when the leader syncs followers.
type writeBody struct {
	Key        string `json:"key"`
	Version    uint64 `json:"version"`
	Replicated *int   `json:"replicated,omitempty"`
}

// serveKey handles /v1/kv/{key} for every method.
func (h *handler) serveKey(w *responseWriter, r *http.Request, escapedKey string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.serveGet(w, r, escapedKey)
	case http.MethodPut:
		h.serveWrite(w, r, apply.OpPut, escapedKey)
	case http.MethodDelete:
		h.serveWrite(w, r, apply.OpDelete, escapedKey)
	default:
		allowMethod(w, r, allowKey)
	}
}

// serveWrite handles PUT and DELETE: validates the key and preconditions, then writes on a leader or redirects on a
// follower. Nothing reaches the Writer before the whole request has been validated.
func (h *handler) serveWrite(w *responseWriter, r *http.Request, op apply.Op, escapedKey string) {
	start := time.Now()
	defer h.observeWrite(op, w, start)

	key, err := parseKey(escapedKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidKey, msgInvalidKey)
		return
	}
	cond, err := parseCond(r.Header)
	if err != nil {
		h.writeRequestError(w, err)
		return
	}
	idemKey, err := parseIdemKey(r.Header)
	if err != nil {
		h.writeRequestError(w, err)
		return
	}
	if !h.leads() {
		h.redirect(w, r)
		return
	}
	var value []byte
	if op == apply.OpPut {
		if r.ContentLength > apply.MaxValueLen {
			writeError(w, http.StatusRequestEntityTooLarge, CodeValueTooLarge, msgValueTooLarge)
			return
		}
		release, ok := h.reserveBody(w, r, apply.MaxValueLen)
		if !ok {
			return
		}
		defer release()
		var answered bool
		if value, answered, err = h.readBodyInTime(w, r, readValue); answered {
			return
		}
		if err != nil {
			h.writeRequestError(w, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.WriteTimeout)
	defer cancel()
	res, err := h.cfg.Writer.Write(ctx, WriteRequest{Op: op, Key: key, Value: value, Cond: cond, IdemKey: idemKey})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable) {
			// The write may be in the log already: say so, as for a lost acknowledgement.
			writeError(w, http.StatusGatewayTimeout, CodeOutcomeUnknown,
				"the write was not confirmed in time: it may or may not be committed")
			return
		}
		h.writeFailure(w, r, op.String(), err)
		return
	}
	body := writeBody{Key: string(key), Version: res.Version}
	status := http.StatusOK
	if res.SyncRequired {
		body.Replicated = &res.Replicated
		if !res.Confirmed {
			status = http.StatusAccepted
		}
	}
	if op == apply.OpPut {
		w.Header().Set("ETag", etag(res.Version))
	}
	setReplayed(w, res)
	w.Header().Set(HeaderServerTiming, serverTiming(time.Since(start)))
	writeJSON(w, status, body)
}

// setReplayed marks the answer to a write an earlier request with the same Idempotency-Key made.
func setReplayed(w http.ResponseWriter, res WriteResult) {
	if res.Replayed {
		w.Header().Set(HeaderIdempotentReplayed, "true")
	}
}

// serverTiming formats the Server-Timing value of a write that took d inside the leader: "write;dur=<ms>", in
// milliseconds with microsecond precision.
func serverTiming(d time.Duration) string {
	return "write;dur=" + strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64)
}

// redirect answers a follower's write with 307 to the same path and query on the leader. The body is never read.
func (h *handler) redirect(w http.ResponseWriter, r *http.Request) {
	base, err := h.cfg.Redirector.LeaderURL(r.Context())
	if err == nil && base == "" {
		err = ErrNoLeader
	}
	if err != nil {
		if !errors.Is(err, ErrNoLeader) && !errors.Is(err, context.Canceled) {
			h.log.Warn("leader lookup failed", zap.Error(err))
			err = ErrUnavailable
		}
		h.writeFailure(w, r, "redirect", err)
		return
	}
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") { // absolute-form request target: rebuild path and query
		target = r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
	}
	w.Header().Set("Location", strings.TrimRight(base, "/")+target)
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// readValue reads the request body as a value: at most apply.MaxValueLen bytes, never reading more than one byte
// past the limit. A declared or actual length above the limit returns apply.ErrValueTooLarge.
// reserveBody reserves the bytes of r's body (its Content-Length, or limit when unknown) in the body budget before it
// is read, so that slow or many bodies cannot pin unbounded memory. Over budget it answers 503 with Retry-After and
// returns false. release gives the bytes back.
func (h *handler) reserveBody(w *responseWriter, r *http.Request, limit int64) (release func(), ok bool) {
	n := r.ContentLength
	if n < 0 {
		n = limit
	}
	if !h.bodies.take(n) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "too many request bodies in flight, retry later")
		return nil, false
	}
	return func() { h.bodies.give(n) }, true
}

// readBodyInTime reads r's body with read under the body read deadline (Config.BodyTimeout). A body that does not
// arrive in time is answered 408, closing the connection, and answered is true; other errors are the caller's to
// answer.
func (h *handler) readBodyInTime(w *responseWriter, r *http.Request,
	read func(http.ResponseWriter, *http.Request) ([]byte, error)) (body []byte, answered bool, err error) {
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.SetReadDeadline(time.Now().Add(h.cfg.BodyTimeout)) // a writer that does not support it keeps no deadline
	body, err = read(w.ResponseWriter, r)
	_ = rc.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, CodeTimeout, "request body not received in time")
		return nil, true, err
	}
	return body, false, err
}

func readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	buf, err := readBody(w, r, apply.MaxValueLen)
	switch {
	case errors.Is(err, errBodyTooLarge):
		return nil, apply.ErrValueTooLarge
	case err != nil:
		return nil, err
	case buf == nil:
		buf = []byte{} // an empty value, not an absent one
	}
	return buf, nil
}

// writeRequestError answers a parse failure: 400 invalid_request with the parser's message, 413 for a value over
// the limit.
func (h *handler) writeRequestError(w http.ResponseWriter, err error) {
	if errors.Is(err, apply.ErrValueTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, CodeValueTooLarge, msgValueTooLarge)
		return
	}
	if re, ok := errors.AsType[*requestError](err); ok {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, re.msg)
		return
	}
	writeError(w, http.StatusBadRequest, CodeInvalidRequest, "bad request")
}

// etag formats a version as the ETag header value.
func etag(version uint64) string {
	return `"` + strconv.FormatUint(version, 10) + `"`
}

// observeWrite records a write's latency by operation and status.
func (h *handler) observeWrite(op apply.Op, w *responseWriter, start time.Time) {
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.WriteDuration.WithLabelValues(op.String(), strconv.Itoa(w.status)).
			Observe(time.Since(start).Seconds())
	}
}

// byteBudget counts bytes held at once against a limit. Safe for concurrent use.
type byteBudget struct {
	mu    sync.Mutex
	limit int64
	held  int64
}

// take reserves n bytes if they fit under the limit, and reports whether they did; give returns them.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > b.limit {
		return false
	}
	b.held += n
	return true
}

func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.held -= n
	b.mu.Unlock()
}

// inUse returns the bytes held now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
