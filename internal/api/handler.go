package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Paths of the API.
const (
	pathKV        = "/v1/kv"
	pathKVPrefix  = "/v1/kv/"
	pathTxn       = "/v1/txn"
	pathDigest    = "/v1/digest"
	pathStatus    = "/v1/status"
	pathSnapshots = "/v1/snapshots"
	pathFollowers = "/v1/followers"
	pathPromote   = "/v1/promote"
	pathHealthz   = "/healthz"
	pathReadyz    = "/readyz"
	pathMetrics   = "/metrics"
	pathV1        = "/v1"
	pathV1Prefix  = "/v1/"
)

// Allow header values per endpoint.
const (
	allowRead      = "GET, HEAD"
	allowKey       = "GET, HEAD, PUT, DELETE"
	allowSnapshots = "GET, HEAD, POST"
	allowTxn       = "POST"
	allowPromote   = "POST"
)

// handler is the http.Handler of NewHandler. It holds no mutable state: requests run concurrently.
type handler struct {
	cfg       Config
	node      Node
	log       *zap.Logger
	tokenHash [sha256.Size]byte // SHA-256 of cfg.AuthToken, so the comparison does not leak its length
	readHash  [sha256.Size]byte // SHA-256 of cfg.ReadToken, likewise
	bodies    *byteBudget       // request body bytes held at once, at most cfg.BodyBuffer
}

// NewHandler returns the HTTP handler of a node, routing every path of the contract. It returns an error when cfg
// lacks Node or both Writer and Redirector, or has a negative or inconsistent timeout. The handler is safe for
// concurrent use and does not own any goroutine.
func NewHandler(cfg Config) (http.Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, node: cfg.Node, log: cfg.Logger.With(zap.String("component", "api")),
		bodies: &byteBudget{limit: cfg.BodyBuffer}}
	if cfg.AuthToken != "" {
		h.tokenHash = sha256.Sum256([]byte(cfg.AuthToken))
	}
	if cfg.ReadToken != "" {
		h.readHash = sha256.Sum256([]byte(cfg.ReadToken))
	}
	return h, nil
}

// ServeHTTP routes r. Routing is done on the escaped path, so that "%2F" inside a key is not a path separator.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w, node: h.node}
	h.route(rw, r)
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
}

func (h *handler) route(w *responseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case path == pathHealthz:
		if allowMethod(w, r, allowRead) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}
	case path == pathReadyz:
		if allowMethod(w, r, allowRead) {
			h.serveReadyz(w)
		}
	case path == pathMetrics:
		if h.cfg.Metrics == nil {
			writeError(w, http.StatusNotFound, CodeNotFound, "metrics are disabled")
		} else if allowMethod(w, r, allowRead) {
			h.cfg.Metrics.Handler().ServeHTTP(w, r)
		}
	case path == pathV1 || strings.HasPrefix(path, pathV1Prefix):
		switch h.access(r) {
		case accessNone:
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong bearer token")
			return
		case accessRead:
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, http.StatusForbidden, CodeForbidden, "the read token allows only GET and HEAD")
				return
			}
		}
		h.routeV1(w, r, path)
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint")
	}
}

func (h *handler) routeV1(w *responseWriter, r *http.Request, path string) {
	switch {
	case strings.HasPrefix(path, pathKVPrefix):
		h.serveKey(w, r, path[len(pathKVPrefix):])
	case path == pathKV:
		if allowMethod(w, r, allowRead) {
			h.serveList(w, r)
		}
	case path == pathTxn:
		if allowMethod(w, r, allowTxn) {
			h.serveTxn(w, r)
		}
	case path == pathDigest:
		if allowMethod(w, r, allowRead) {
			h.serveDigest(w, r)
		}
	case path == pathStatus:
		if allowMethod(w, r, allowRead) {
			writeJSON(w, http.StatusOK, statusBody(h.node.Status()))
		}
	case path == pathSnapshots:
		if h.cfg.Snapshots == nil || !h.leads() {
			writeError(w, http.StatusNotFound, CodeNotFound, "leader-only endpoint")
		} else if allowMethod(w, r, allowSnapshots) {
			h.serveSnapshots(w, r)
		}
	case path == pathPromote:
		if h.cfg.Promoter == nil {
			writeError(w, http.StatusNotFound, CodeNotFound, "this node is not promoted by request (a follower is)")
		} else if allowMethod(w, r, allowPromote) {
			h.servePromote(w, r)
		}
	case path == pathFollowers:
		if h.cfg.Followers == nil || !h.leads() {
			writeError(w, http.StatusNotFound, CodeNotFound, "leader-only endpoint")
		} else if allowMethod(w, r, allowRead) {
			h.serveFollowers(w)
		}
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint")
	}
}

// leads reports whether the node takes writes itself now: it has a Writer that is not a follower at the moment (see
// Leading).
func (h *handler) leads() bool {
	if h.cfg.Writer == nil {
		return false
	}
	if l, ok := h.cfg.Writer.(Leading); ok {
		return l.Leading()
	}
	return true
}

// access is what a request's bearer token allows under /v1/.
type access int

const (
	accessNone access = iota // no token, or a wrong one: 401
	accessRead               // the read token: GET and HEAD only, else 403
	accessAll                // the auth token, or no auth configured
)

// access reports what r's bearer token allows (everything when no token is configured). The scheme is
// case-insensitive; the token is compared with both configured tokens in constant time, whichever matches.
func (h *handler) access(r *http.Request) access {
	if h.cfg.AuthToken == "" {
		return accessAll
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return accessNone
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	// Both comparisons run whatever the first one found, so the time does not tell which token was close.
	all := subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
	read := subtle.ConstantTimeCompare(got[:], h.readHash[:]) == 1 && h.cfg.ReadToken != ""
	switch {
	case all:
		return accessAll
	case read:
		return accessRead
	}
	return accessNone
}

// allowMethod answers 405 with an Allow header and reports false unless r's method is in allow.
func allowMethod(w http.ResponseWriter, r *http.Request, allow string) bool {
	for m := range strings.SplitSeq(allow, ", ") {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" not allowed")
	return false
}

// writeJSON answers status with v encoded as JSON. An encoding failure is a programming error and answers 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "internal error", Code: CodeInternal})
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client may be gone; nothing to do about it
}

// setSeq sets the Replikv-Seq header.
func setSeq(h http.Header, seq uint64) {
	h[HeaderSeq] = []string{strconv.FormatUint(seq, 10)}
}

// responseWriter adds Replikv-Seq to every answer that has not set it, and records the status for metrics.
type responseWriter struct {
	http.ResponseWriter
	node        Node
	status      int
	wroteHeader bool
}

// WriteHeader sets Replikv-Seq (the node's applied sequence unless the handler set it) and sends the header.
func (w *responseWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	w.status = status
	if _, ok := w.Header()[HeaderSeq]; !ok {
		setSeq(w.Header(), w.node.Applied())
	}
	if h, ok := w.node.(LeaderHinter); ok {
		if u := h.LeaderHint(); u != "" {
			w.Header()[HeaderLeader] = []string{u}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write sends the header first when needed, as net/http does.
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}
