package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

// requestError is a malformed request; its message is shown to the client in a 400 invalid_request answer.
type requestError struct{ msg string }

func (e *requestError) Error() string { return "api: bad request: " + e.msg }

// badRequest returns a *requestError with a formatted message.
func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// parseKey percent-decodes the escaped path rest after "/v1/kv/" and validates the key. Errors wrap
// apply.ErrInvalidKey.
func parseKey(escaped string) ([]byte, error) {
	k, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, fmt.Errorf("api: parse key: %w: bad percent-encoding", apply.ErrInvalidKey)
	}
	key := []byte(k)
	if err := apply.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("api: parse key: %w", err)
	}
	return key, nil
}

// parseCond reads If-Match and If-None-Match. If-Match takes one version, quoted ("7") or not (7); If-None-Match
// takes only "*". "If-Match: *", weak or several tags, and both headers together are rejected (*requestError):
// apply.Cond cannot express them and silently ignoring a precondition would be worse.
func parseCond(h http.Header) (apply.Cond, error) {
	var c apply.Cond
	if vals := h.Values("If-Match"); len(vals) > 0 {
		if len(vals) > 1 {
			return c, badRequest("several If-Match headers")
		}
		v, err := parseVersionTag(vals[0])
		if err != nil {
			return c, err
		}
		c.IfMatch, c.HasIfMatch = v, true
	}
	if vals := h.Values("If-None-Match"); len(vals) > 0 {
		if len(vals) > 1 || strings.TrimSpace(vals[0]) != "*" {
			return c, badRequest(`If-None-Match takes only "*"`)
		}
		c.IfNoneMatch = true
	}
	if c.HasIfMatch && c.IfNoneMatch {
		return c, badRequest("If-Match and If-None-Match exclude each other")
	}
	return c, nil
}

// parseIdemKey reads Idempotency-Key: nil when absent; one value of 1 to apply.MaxIdemKeyLen visible ASCII
// characters, else a *requestError.
func parseIdemKey(h http.Header) ([]byte, error) {
	vals := h.Values(HeaderIdempotencyKey)
	switch {
	case len(vals) == 0:
		return nil, nil
	case len(vals) > 1:
		return nil, badRequest("several Idempotency-Key headers")
	}
	k := []byte(vals[0])
	if err := apply.ValidateIdemKey(k); err != nil {
		return nil, badRequest("Idempotency-Key must be 1 to %d visible ASCII characters", apply.MaxIdemKeyLen)
	}
	return k, nil
}

// parseVersionTag parses an If-Match value: a decimal version, optionally in double quotes.
func parseVersionTag(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "*" {
		return 0, badRequest(`If-Match: * is not supported; use a version`)
	}
	if s == "" || s[0] < '0' || s[0] > '9' { // ParseUint accepts neither signs nor spaces, but say why
		return 0, badRequest("If-Match must be a version such as \"7\"")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("If-Match must be a version such as \"7\"")
	}
	return v, nil
}

// readOptions are the consistency parameters of a read.
type readOptions struct {
	strong  bool
	minSeq  uint64
	timeout time.Duration
}

// waits reports whether the read must wait before it is answered.
func (o readOptions) waits() bool {
	return o.strong || o.minSeq > 0
}

// listOptions are the parameters of a list.
type listOptions struct {
	prefix, after []byte
	limit         int
	values        bool
}

// parseQuery parses a raw query strictly: a bad escape is an error (url.URL.Query would drop the pair).
func parseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	return q, nil
}

// single returns the only value of name, "" when absent; a repeated parameter is an error.
func single(q url.Values, name string) (string, bool, error) {
	vals, ok := q[name]
	if !ok {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, badRequest("parameter %s given more than once", name)
	}
	return vals[0], true, nil
}

// parseReadOptions reads consistency, min_seq and timeout. def is the timeout without a timeout parameter; larger
// than max, zero or negative timeouts are rejected.
func parseReadOptions(q url.Values, def, maxTimeout time.Duration) (readOptions, error) {
	o := readOptions{timeout: def}
	if v, ok, err := single(q, "consistency"); err != nil {
		return o, err
	} else if ok {
		switch v {
		case "eventual":
		case "strong":
			o.strong = true
		default:
			return o, badRequest("consistency must be eventual or strong")
		}
	}
	if v, ok, err := single(q, "min_seq"); err != nil {
		return o, err
	} else if ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, badRequest("min_seq must be a sequence number")
		}
		o.minSeq = n
	}
	if v, ok, err := single(q, "timeout"); err != nil {
		return o, err
	} else if ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxTimeout {
			return o, badRequest("timeout must be a duration above 0 and at most %s", maxTimeout)
		}
		o.timeout = d
	}
	return o, nil
}

// parseListOptions reads prefix, after, limit and values. prefix and after longer than a key can be are rejected.
func parseListOptions(q url.Values) (listOptions, error) {
	o := listOptions{limit: DefaultListLimit}
	for _, p := range []struct {
		name string
		dst  *[]byte
	}{{"prefix", &o.prefix}, {"after", &o.after}} {
		v, ok, err := single(q, p.name)
		if err != nil {
			return o, err
		}
		if len(v) > apply.MaxKeyLen {
			return o, badRequest("%s longer than %d bytes", p.name, apply.MaxKeyLen)
		}
		if ok && v != "" {
			*p.dst = []byte(v)
		}
	}
	if v, ok, err := single(q, "limit"); err != nil {
		return o, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			return o, badRequest("limit must be between 1 and %d", MaxListLimit)
		}
		o.limit = n
	}
	if v, ok, err := single(q, "values"); err != nil {
		return o, err
	} else if ok {
		switch v {
		case "true":
			o.values = true
		case "false":
		default:
			return o, badRequest("values must be true or false")
		}
	}
	return o, nil
}
