package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

func TestHandler_Put(t *testing.T) {
	tests := []struct {
		name     string
		target   string
		body     io.Reader
		headers  []string
		res      WriteResult
		err      error
		status   int
		code     string
		wantCall bool
		wantCond apply.Cond
	}{
		{name: "OK", target: "/v1/kv/a", body: strings.NewReader("v"), res: WriteResult{Version: 7},
			status: http.StatusOK, wantCall: true},
		{name: "EmptyValue", target: "/v1/kv/a", body: http.NoBody, res: WriteResult{Version: 7},
			status: http.StatusOK, wantCall: true},
		{name: "MaxValue", target: "/v1/kv/a", body: bigBody(apply.MaxValueLen), res: WriteResult{Version: 7},
			status: http.StatusOK, wantCall: true},
		{name: "ChunkedMaxValue", target: "/v1/kv/a", body: io.MultiReader(bigBody(apply.MaxValueLen)),
			res: WriteResult{Version: 7}, status: http.StatusOK, wantCall: true},
		{name: "IfMatchQuoted", target: "/v1/kv/a", body: strings.NewReader("v"), headers: []string{"If-Match", `"5"`},
			res: WriteResult{Version: 7}, status: http.StatusOK, wantCall: true,
			wantCond: apply.Cond{IfMatch: 5, HasIfMatch: true}},
		{name: "IfMatchBare", target: "/v1/kv/a", body: strings.NewReader("v"), headers: []string{"If-Match", "5"},
			res: WriteResult{Version: 7}, status: http.StatusOK, wantCall: true,
			wantCond: apply.Cond{IfMatch: 5, HasIfMatch: true}},
		{name: "IfNoneMatch", target: "/v1/kv/a", body: strings.NewReader("v"), headers: []string{"If-None-Match", "*"},
			res: WriteResult{Version: 7}, status: http.StatusOK, wantCall: true, wantCond: apply.Cond{IfNoneMatch: true}},
		{name: "SyncConfirmed", target: "/v1/kv/a", body: strings.NewReader("v"),
			res: WriteResult{Version: 7, SyncRequired: true, Confirmed: true, Replicated: 2}, status: http.StatusOK,
			wantCall: true},
		{name: "SyncUnconfirmed", target: "/v1/kv/a", body: strings.NewReader("v"),
			res: WriteResult{Version: 7, SyncRequired: true, Replicated: 1}, status: http.StatusAccepted, wantCall: true},
		{name: "EmptyKey", target: "/v1/kv/", body: strings.NewReader("v"), status: http.StatusBadRequest,
			code: CodeInvalidKey},
		{name: "NULKey", target: "/v1/kv/a%00b", body: strings.NewReader("v"), status: http.StatusBadRequest,
			code: CodeInvalidKey},
		{name: "BadUTF8Key", target: "/v1/kv/a%FFb", body: strings.NewReader("v"), status: http.StatusBadRequest,
			code: CodeInvalidKey},
		{name: "LongKey", target: "/v1/kv/" + strings.Repeat("k", apply.MaxKeyLen+1), body: strings.NewReader("v"),
			status: http.StatusBadRequest, code: CodeInvalidKey},
		{name: "BadIfMatch", target: "/v1/kv/a", body: strings.NewReader("v"), headers: []string{"If-Match", `"x"`},
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "IfMatchStar", target: "/v1/kv/a", body: strings.NewReader("v"), headers: []string{"If-Match", "*"},
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BadIfNoneMatch", target: "/v1/kv/a", body: strings.NewReader("v"),
			headers: []string{"If-None-Match", `"3"`}, status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BothPreconditions", target: "/v1/kv/a", body: strings.NewReader("v"),
			headers: []string{"If-None-Match", "*", "If-Match", "3"}, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "TooLarge", target: "/v1/kv/a", body: bigBody(apply.MaxValueLen + 1),
			status: http.StatusRequestEntityTooLarge, code: CodeValueTooLarge},
		{name: "ChunkedTooLarge", target: "/v1/kv/a", body: io.MultiReader(bigBody(apply.MaxValueLen + 1)),
			status: http.StatusRequestEntityTooLarge, code: CodeValueTooLarge},
		{name: "PreconditionFailed", target: "/v1/kv/a", body: strings.NewReader("v"), headers: []string{"If-Match", "1"},
			err: apply.ErrPrecondition, status: http.StatusPreconditionFailed, code: CodePreconditionFailed,
			wantCall: true, wantCond: apply.Cond{IfMatch: 1, HasIfMatch: true}},
		{name: "NotLeader", target: "/v1/kv/a", body: strings.NewReader("v"), err: ErrNotLeader,
			status: http.StatusServiceUnavailable, code: CodeNotLeader, wantCall: true},
		{name: "Unavailable", target: "/v1/kv/a", body: strings.NewReader("v"), err: ErrUnavailable,
			status: http.StatusServiceUnavailable, code: CodeUnavailable, wantCall: true},
		{name: "OutcomeUnknown", target: "/v1/kv/a", body: strings.NewReader("v"),
			err:    fmt.Errorf("ack lost: %w: %w", ErrOutcomeUnknown, ErrUnavailable),
			status: http.StatusServiceUnavailable, code: CodeOutcomeUnknown, wantCall: true},
		{name: "DiskFull", target: "/v1/kv/a", body: strings.NewReader("v"), err: fmt.Errorf("x: %w", ErrDiskFull),
			status: http.StatusInsufficientStorage, code: CodeDiskFull, wantCall: true},
		{name: "Timeout", target: "/v1/kv/a", body: strings.NewReader("v"), err: context.DeadlineExceeded,
			status: http.StatusGatewayTimeout, code: CodeOutcomeUnknown, wantCall: true},
		{name: "QueueTimeout", target: "/v1/kv/a", body: strings.NewReader("v"),
			err:    fmt.Errorf("queue full: %w: %w", ErrUnavailable, context.DeadlineExceeded),
			status: http.StatusServiceUnavailable, code: CodeUnavailable, wantCall: true},
		{name: "Internal", target: "/v1/kv/a", body: strings.NewReader("v"), err: io.ErrUnexpectedEOF,
			status: http.StatusInternalServerError, code: CodeInternal, wantCall: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(3)
			w := &fakeWriter{res: tc.res, err: tc.err}
			rec := do(newLeader(t, node, w, nil), http.MethodPut, tc.target, tc.body, tc.headers...)
			checkAnswer(t, rec, tc.status, tc.code)
			calls := w.calls()
			if !tc.wantCall {
				if len(calls) != 0 {
					t.Fatalf("rejected request reached the writer: %+v", calls)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("writer calls = %d, want 1", len(calls))
			}
			if got := calls[0]; got.Op != apply.OpPut || string(got.Key) != "a" || got.Cond != tc.wantCond ||
				got.Value == nil {
				t.Errorf("request = op %v key %q cond %+v value nil %v", got.Op, got.Key, got.Cond, got.Value == nil)
			}
			if tc.code != "" {
				return
			}
			var body struct {
				Key        string `json:"key"`
				Version    uint64 `json:"version"`
				Replicated *int   `json:"replicated"`
			}
			decode(t, rec, &body)
			if body.Key != "a" || body.Version != 7 {
				t.Errorf("body = %+v, want key a version 7", body)
			}
			if got := rec.Header().Get("ETag"); got != `"7"` {
				t.Errorf("ETag = %q, want \"7\"", got)
			}
			if tc.res.SyncRequired != (body.Replicated != nil) {
				t.Fatalf("replicated present = %v, want %v", body.Replicated != nil, tc.res.SyncRequired)
			}
			if body.Replicated != nil && *body.Replicated != tc.res.Replicated {
				t.Errorf("replicated = %d, want %d", *body.Replicated, tc.res.Replicated)
			}
		})
	}
}

// TestHandler_WriteServerTiming: a successful write says how long the leader spent on it (Server-Timing), a refused
// one does not.
func TestHandler_WriteServerTiming(t *testing.T) {
	const delay = 30 * time.Millisecond
	w := &fakeWriter{res: WriteResult{Version: 7}, delay: delay}
	rec := do(newLeader(t, newFakeNode(3), w, nil), http.MethodPut, "/v1/kv/a", strings.NewReader("v"))
	checkAnswer(t, rec, http.StatusOK, "")
	got := rec.Header().Get(HeaderServerTiming)
	ms, ok := strings.CutPrefix(got, "write;dur=")
	dur, err := strconv.ParseFloat(ms, 64)
	if !ok || err != nil || dur < float64(delay.Milliseconds()) || dur > float64(delay.Milliseconds())+5000 {
		t.Fatalf("%s = %q, want write;dur= at least %d ms", HeaderServerTiming, got, delay.Milliseconds())
	}
	rec = do(newLeader(t, newFakeNode(3), &fakeWriter{err: apply.ErrPrecondition}, nil), http.MethodDelete, "/v1/kv/a", nil)
	if got := rec.Header().Get(HeaderServerTiming); rec.Code == http.StatusOK || got != "" {
		t.Fatalf("a refused write: %d with %s %q, want no timing", rec.Code, HeaderServerTiming, got)
	}
}

func TestHandler_PutValue(t *testing.T) {
	tests := []struct {
		name string
		body io.Reader
	}{
		{"Sized", strings.NewReader("hello\x00world")},
		{"Chunked", io.MultiReader(strings.NewReader("hello\x00world"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWriter{res: WriteResult{Version: 1}}
			rec := do(newLeader(t, newFakeNode(0), w, nil), http.MethodPut, "/v1/kv/a%2Fb%20c", tc.body)
			checkAnswer(t, rec, http.StatusOK, "")
			calls := w.calls()
			if len(calls) != 1 || string(calls[0].Key) != "a/b c" || string(calls[0].Value) != "hello\x00world" {
				t.Fatalf("calls = %+v, want key %q value %q", calls, "a/b c", "hello\x00world")
			}
		})
	}
}

// countingReader is a body of 2*MaxValueLen bytes that counts the bytes read from it.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= 2*apply.MaxValueLen {
		return 0, io.EOF
	}
	p = p[:min(len(p), 2*apply.MaxValueLen-c.n)]
	c.n += len(p)
	return len(p), nil
}

func TestHandler_PutReadsAtMostLimit(t *testing.T) {
	body := &countingReader{}
	w := &fakeWriter{}
	rec := do(newLeader(t, newFakeNode(0), w, nil), http.MethodPut, "/v1/kv/a", body)
	checkAnswer(t, rec, http.StatusRequestEntityTooLarge, CodeValueTooLarge)
	if body.n > apply.MaxValueLen+1 {
		t.Errorf("read %d bytes of the body, want at most %d", body.n, apply.MaxValueLen+1)
	}
	if len(w.calls()) != 0 {
		t.Error("an oversized value reached the writer")
	}
}

func TestHandler_PutWriteTimeout(t *testing.T) {
	w := &fakeWriter{block: true}
	h := newLeader(t, newFakeNode(0), w, func(c *Config) { c.WriteTimeout = 20 * time.Millisecond })
	rec := do(h, http.MethodPut, "/v1/kv/a", strings.NewReader("v"))
	checkAnswer(t, rec, http.StatusGatewayTimeout, CodeOutcomeUnknown)
}

func TestHandler_Delete(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		err     error
		status  int
		code    string
	}{
		{name: "OK", status: http.StatusOK},
		{name: "Absent", err: apply.ErrNotFound, status: http.StatusNotFound, code: CodeNotFound},
		{name: "PreconditionFailed", headers: []string{"If-Match", `"2"`}, err: apply.ErrPrecondition,
			status: http.StatusPreconditionFailed, code: CodePreconditionFailed},
		{name: "NotLeader", err: ErrNotLeader, status: http.StatusServiceUnavailable, code: CodeNotLeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWriter{res: WriteResult{Version: 9}, err: tc.err}
			rec := do(newLeader(t, newFakeNode(8), w, nil), http.MethodDelete, "/v1/kv/k", nil, tc.headers...)
			checkAnswer(t, rec, tc.status, tc.code)
			calls := w.calls()
			if len(calls) != 1 || calls[0].Op != apply.OpDelete || string(calls[0].Key) != "k" || calls[0].Value != nil {
				t.Fatalf("calls = %+v, want one delete of k", calls)
			}
			if tc.code != "" {
				return
			}
			var body writeBody
			decode(t, rec, &body)
			if body.Key != "k" || body.Version != 9 || body.Replicated != nil {
				t.Errorf("body = %+v, want key k version 9", body)
			}
		})
	}
}

// failingReader fails the test when read.
type failingReader struct{ t *testing.T }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("the body of a redirected write was read")
	return 0, io.EOF
}

func TestHandler_Redirect(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		target   string
		headers  []string
		redir    fakeRedirector
		status   int
		code     string
		location string
	}{
		{name: "Put", method: http.MethodPut, target: "/v1/kv/a%2Fb?x=1&y=%20", redir: fakeRedirector{url: "http://l:8080"},
			status: http.StatusTemporaryRedirect, location: "http://l:8080/v1/kv/a%2Fb?x=1&y=%20"},
		{name: "DeleteTrailingSlash", method: http.MethodDelete, target: "/v1/kv/k",
			redir: fakeRedirector{url: "http://l:8080/"}, status: http.StatusTemporaryRedirect,
			location: "http://l:8080/v1/kv/k"},
		{name: "NoLeader", method: http.MethodPut, target: "/v1/kv/a", redir: fakeRedirector{err: ErrNoLeader},
			status: http.StatusServiceUnavailable, code: CodeNoLeader},
		{name: "EmptyURL", method: http.MethodPut, target: "/v1/kv/a", redir: fakeRedirector{},
			status: http.StatusServiceUnavailable, code: CodeNoLeader},
		{name: "LookupFailed", method: http.MethodPut, target: "/v1/kv/a", redir: fakeRedirector{err: io.ErrClosedPipe},
			status: http.StatusServiceUnavailable, code: CodeUnavailable},
		{name: "BadKey", method: http.MethodPut, target: "/v1/kv/", redir: fakeRedirector{url: "http://l:8080"},
			status: http.StatusBadRequest, code: CodeInvalidKey},
		{name: "BadPrecondition", method: http.MethodPut, target: "/v1/kv/a", headers: []string{"If-None-Match", "x"},
			redir: fakeRedirector{url: "http://l:8080"}, status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BadIdempotencyKey", method: http.MethodDelete, target: "/v1/kv/a",
			headers: []string{HeaderIdempotencyKey, "a b"}, redir: fakeRedirector{url: "http://l:8080"},
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "TxnBadIdempotencyKey", method: http.MethodPost, target: "/v1/txn",
			headers: []string{HeaderIdempotencyKey, ""}, redir: fakeRedirector{url: "http://l:8080"},
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "TxnIdempotencyKey", method: http.MethodPost, target: "/v1/txn",
			headers: []string{HeaderIdempotencyKey, "k-1"}, redir: fakeRedirector{url: "http://l:8080"},
			status: http.StatusTemporaryRedirect, location: "http://l:8080/v1/txn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newFollower(t, newFakeNode(5), tc.redir)
			rec := do(h, tc.method, tc.target, failingReader{t}, tc.headers...)
			checkAnswer(t, rec, tc.status, tc.code)
			if got := rec.Header().Get("Location"); got != tc.location {
				t.Errorf("Location = %q, want %q", got, tc.location)
			}
			if got := rec.Header().Get(HeaderSeq); got != "5" {
				t.Errorf("%s = %q, want 5", HeaderSeq, got)
			}
		})
	}
}

func TestHandler_RedirectAbsoluteForm(t *testing.T) {
	h := newFollower(t, newFakeNode(5), fakeRedirector{url: "http://l:8080"})
	r, err := http.NewRequest(http.MethodPut, "http://f:8081/v1/kv/a%2Fb?q=1", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	r.RequestURI = "http://f:8081/v1/kv/a%2Fb?q=1"
	rec := newRecorder()
	h.ServeHTTP(rec, r)
	if got, want := rec.Header().Get("Location"), "http://l:8080/v1/kv/a%2Fb?q=1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}

// TestHandler_IdempotencyKey: the header reaches the Writer (PUT, DELETE) and the TxnWriter, a replayed write is
// marked, a reused key is 422, and a malformed or repeated header is refused before anything is written.
func TestHandler_IdempotencyKey(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		body    string
		headers []string
		res     WriteResult
		err     error
		status  int
		code    string
		wantKey string // "" = the writer is not called
	}{
		{name: "Put", method: http.MethodPut, target: "/v1/kv/a", body: "v", headers: []string{HeaderIdempotencyKey, "k-1"},
			res: WriteResult{Version: 7}, status: http.StatusOK, wantKey: "k-1"},
		{name: "PutReplayed", method: http.MethodPut, target: "/v1/kv/a", body: "v",
			headers: []string{HeaderIdempotencyKey, "k-1"}, res: WriteResult{Version: 7, Replayed: true},
			status: http.StatusOK, wantKey: "k-1"},
		{name: "Delete", method: http.MethodDelete, target: "/v1/kv/a", headers: []string{HeaderIdempotencyKey, "~!z"},
			res: WriteResult{Version: 7, Replayed: true}, status: http.StatusOK, wantKey: "~!z"},
		{name: "MaxLength", method: http.MethodPut, target: "/v1/kv/a", body: "v",
			headers: []string{HeaderIdempotencyKey, strings.Repeat("k", apply.MaxIdemKeyLen)},
			res:     WriteResult{Version: 7}, status: http.StatusOK, wantKey: strings.Repeat("k", apply.MaxIdemKeyLen)},
		{name: "Txn", method: http.MethodPost, target: "/v1/txn", body: `{"ops":[{"op":"put","key":"a","value":"v"}]}`,
			headers: []string{HeaderIdempotencyKey, "t-1"}, res: WriteResult{Version: 7, Replayed: true},
			status: http.StatusOK, wantKey: "t-1"},
		{name: "Reused", method: http.MethodPut, target: "/v1/kv/a", body: "v",
			headers: []string{HeaderIdempotencyKey, "k-1"}, err: fmt.Errorf("x: %w", ErrIdempotencyKeyReused),
			status: http.StatusUnprocessableEntity, code: CodeIdempotencyReused, wantKey: "k-1"},
		{name: "TooLong", method: http.MethodPut, target: "/v1/kv/a", body: "v",
			headers: []string{HeaderIdempotencyKey, strings.Repeat("k", apply.MaxIdemKeyLen+1)},
			status:  http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "Empty", method: http.MethodPut, target: "/v1/kv/a", body: "v", headers: []string{HeaderIdempotencyKey, ""},
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "NotASCII", method: http.MethodPut, target: "/v1/kv/a", body: "v",
			headers: []string{HeaderIdempotencyKey, "cl\u00e9"}, status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "Twice", method: http.MethodPut, target: "/v1/kv/a", body: "v",
			headers: []string{HeaderIdempotencyKey, "a", HeaderIdempotencyKey, "b"}, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "TxnTwice", method: http.MethodPost, target: "/v1/txn", body: `{"ops":[{"op":"put","key":"a","value":"v"}]}`,
			headers: []string{HeaderIdempotencyKey, "a", HeaderIdempotencyKey, "b"}, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWriter{res: tc.res, err: tc.err}
			tw := &fakeTxnWriter{res: tc.res, err: tc.err}
			h := newLeader(t, newFakeNode(3), w, func(c *Config) { c.Txn = tw })
			rec := do(h, tc.method, tc.target, strings.NewReader(tc.body), tc.headers...)
			checkAnswer(t, rec, tc.status, tc.code)
			var keys []string
			for _, r := range w.calls() {
				keys = append(keys, string(r.IdemKey))
			}
			tw.mu.Lock()
			for _, r := range tw.reqs {
				keys = append(keys, string(r.IdemKey))
			}
			tw.mu.Unlock()
			switch {
			case tc.wantKey == "" && len(keys) != 0:
				t.Fatalf("a refused request reached the writer with %q", keys)
			case tc.wantKey != "" && (len(keys) != 1 || keys[0] != tc.wantKey):
				t.Fatalf("writer got idempotency keys %q, want [%q]", keys, tc.wantKey)
			}
			want := ""
			if tc.res.Replayed && tc.err == nil {
				want = "true"
			}
			if got := rec.Header().Get(HeaderIdempotentReplayed); got != want {
				t.Errorf("%s = %q, want %q", HeaderIdempotentReplayed, got, want)
			}
		})
	}
}
