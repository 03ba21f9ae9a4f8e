package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

// fakeTxnWriter records the transactions it gets and answers with res/err.
type fakeTxnWriter struct {
	res WriteResult
	err error

	mu   sync.Mutex
	reqs []TxnRequest
}

func (w *fakeTxnWriter) WriteTxn(_ context.Context, req TxnRequest) (WriteResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reqs = append(w.reqs, req)
	return w.res, w.err
}

func (w *fakeTxnWriter) calls() []TxnRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]TxnRequest(nil), w.reqs...)
}

// newTxnLeader returns a leader handler whose transactions go to tw.
func newTxnLeader(t *testing.T, tw TxnWriter, mod func(*Config)) http.Handler {
	t.Helper()
	return newLeader(t, newFakeNode(3), &fakeWriter{}, func(c *Config) {
		c.Txn = tw
		if mod != nil {
			mod(c)
		}
	})
}

// txnJSON builds a JSON body of n puts of distinct keys with values of size bytes (base64).
func txnJSON(n, size int) string {
	var b strings.Builder
	b.WriteString(`{"ops":[`)
	v := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'v'}, size))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"op":"put","key":"k%04d","value_b64":%q}`, i, v)
	}
	b.WriteString(`]}`)
	return b.String()
}

// txnOps returns n puts of distinct keys with values of size bytes.
func txnOps(n, size int) []TxnOp {
	ops := make([]TxnOp, n)
	for i := range ops {
		ops[i] = TxnOp{Op: apply.OpPut, Key: fmt.Appendf(nil, "k%04d", i), Value: bytes.Repeat([]byte{'v'}, size)}
	}
	return ops
}

// sampleOps is the transaction of the "OK" cases, in both encodings.
var sampleOps = []TxnOp{
	{Op: apply.OpPut, Key: []byte("a"), Value: []byte("text \u00e9\n"), Cond: apply.Cond{IfMatch: 5, HasIfMatch: true}},
	{Op: apply.OpPut, Key: []byte("b/\u00e9"), Value: []byte{0, 1, 0xff}, Cond: apply.Cond{IfNoneMatch: true}},
	{Op: apply.OpDelete, Key: []byte("c"), Cond: apply.Cond{IfMatch: 0, HasIfMatch: true}},
	{Op: apply.OpPut, Key: []byte("d"), Value: []byte{}},
	{Op: apply.OpDelete, Key: []byte("e")},
}

const sampleJSON = `{"ops":[
	{"op":"put","key":"a","value":"text \u00e9\n","if_match":5},
	{"op":"put","key":"b/é","value_b64":"AAH/","if_absent":true},
	{"op":"delete","key":"c","if_match":0},
	{"op":"put","key":"d","value":""},
	{"op":"delete","key":"e","if_absent":false}
]}`

func sameOps(a, b []TxnOp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Op != b[i].Op || !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) ||
			a[i].Cond != b[i].Cond || (a[i].Op == apply.OpPut) != (a[i].Value != nil) {
			return false
		}
	}
	return true
}

func TestHandler_Txn(t *testing.T) {
	binaryCT := []string{"Content-Type", ContentTypeTxn}
	bin := func(ops []TxnOp) []byte { return AppendTxnBinary(nil, ops) }
	op := func(i int) *int { return &i }
	tests := []struct {
		name    string
		body    io.Reader
		headers []string
		res     WriteResult
		err     error
		status  int
		code    string
		op      *int   // the operation the error names
		key     string // its key in the error, "" = absent
		version uint64 // its version in the error, 0 = absent
		wantOps []TxnOp
	}{
		{name: "JSON", body: strings.NewReader(sampleJSON), res: WriteResult{Version: 7}, status: http.StatusOK,
			wantOps: sampleOps},
		{name: "JSONContentType", body: strings.NewReader(sampleJSON), headers: []string{"Content-Type", "application/json; charset=utf-8"},
			res: WriteResult{Version: 7}, status: http.StatusOK, wantOps: sampleOps},
		{name: "Binary", body: bytes.NewReader(bin(sampleOps)), headers: binaryCT, res: WriteResult{Version: 7},
			status: http.StatusOK, wantOps: sampleOps},
		{name: "BinaryParams", body: bytes.NewReader(bin(sampleOps)), headers: []string{"Content-Type", ContentTypeTxn + "; v=1"},
			res: WriteResult{Version: 7}, status: http.StatusOK, wantOps: sampleOps},
		{name: "Chunked", body: io.MultiReader(strings.NewReader(sampleJSON)), res: WriteResult{Version: 7},
			status: http.StatusOK, wantOps: sampleOps},
		{name: "MaxOps", body: strings.NewReader(txnJSON(apply.MaxTxnOps, 1)), res: WriteResult{Version: 7},
			status: http.StatusOK, wantOps: txnOps(apply.MaxTxnOps, 1)},
		{name: "MaxValue", body: bytes.NewReader(bin(txnOps(1, apply.MaxValueLen))), headers: binaryCT,
			res: WriteResult{Version: 7}, status: http.StatusOK, wantOps: txnOps(1, apply.MaxValueLen)},
		{name: "SyncConfirmed", body: strings.NewReader(sampleJSON), status: http.StatusOK, wantOps: sampleOps,
			res: WriteResult{Version: 7, SyncRequired: true, Confirmed: true, Replicated: 2}},
		{name: "SyncUnconfirmed", body: strings.NewReader(sampleJSON), status: http.StatusAccepted, wantOps: sampleOps,
			res: WriteResult{Version: 7, SyncRequired: true, Replicated: 1}},

		// Malformed bodies: 400, nothing reaches the writer.
		{name: "Empty", body: http.NoBody, status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "NotJSON", body: strings.NewReader("put a 1"), status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "TruncatedJSON", body: strings.NewReader(`{"ops":[{"op":"put"`), status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "TrailingJSON", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a"}]} {}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "NotUTF8", body: strings.NewReader("{\"ops\":[{\"op\":\"delete\",\"key\":\"a\xff\"}]}"),
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "UnknownField", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value":"1","if_mach":3}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "UnknownTopField", body: strings.NewReader(`{"ops":[],"atomic":true}`), status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "Array", body: strings.NewReader(`[{"op":"delete","key":"a"}]`), status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "OpsNotArray", body: strings.NewReader(`{"ops":{"op":"delete"}}`), status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "NoOps", body: strings.NewReader(`{}`), status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "EmptyOps", body: strings.NewReader(`{"ops":[]}`), status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "NullOps", body: strings.NewReader(`{"ops":null}`), status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "NoOp", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a"},{"key":"b"}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(1)},
		{name: "BadOp", body: strings.NewReader(`{"ops":[{"op":"get","key":"a"}]}`), status: http.StatusBadRequest,
			code: CodeInvalidRequest, op: op(0)},
		{name: "NoKey", body: strings.NewReader(`{"ops":[{"op":"delete"}]}`), status: http.StatusBadRequest,
			code: CodeInvalidRequest, op: op(0)},
		{name: "EmptyKey", body: strings.NewReader(`{"ops":[{"op":"delete","key":""}]}`), status: http.StatusBadRequest,
			code: CodeInvalidKey, op: op(0)},
		{name: "NULKey", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a"},{"op":"delete","key":"b\u0000"}]}`),
			status: http.StatusBadRequest, code: CodeInvalidKey, op: op(1)},
		{name: "LongKey", body: strings.NewReader(`{"ops":[{"op":"delete","key":"` + strings.Repeat("k", apply.MaxKeyLen+1) + `"}]}`),
			status: http.StatusBadRequest, code: CodeInvalidKey, op: op(0)},
		{name: "KeyNotString", body: strings.NewReader(`{"ops":[{"op":"delete","key":7}]}`), status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "PutNoValue", body: strings.NewReader(`{"ops":[{"op":"put","key":"a"}]}`), status: http.StatusBadRequest,
			code: CodeInvalidRequest, op: op(0)},
		{name: "PutNullValue", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value":null}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "PutBothValues", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value":"x","value_b64":"eA=="}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "DeleteWithValue", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a","value":""}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "BadBase64", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value_b64":"eA="}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "URLBase64", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value_b64":"-_8="}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "IfMatchNegative", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a","if_match":-1}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "IfMatchString", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a","if_match":"7"}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "IfMatchFraction", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a","if_match":7.5}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BothConds", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value":"","if_match":1,"if_absent":true}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "DeleteIfAbsent", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a","if_absent":true}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0), key: "a"},
		{name: "DuplicateKey", body: strings.NewReader(`{"ops":[{"op":"put","key":"a","value":"1"},{"op":"delete","key":"b"},{"op":"delete","key":"a"}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(2), key: "a"},
		{name: "DuplicateKeys", body: strings.NewReader(`{"ops":[{"op":"delete","key":"a"},{"op":"delete","key":"b"},{"op":"delete","key":"b"},{"op":"delete","key":"a"}]}`),
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(2), key: "b"},
		{name: "BinaryDuplicateKey", body: bytes.NewReader(bin([]TxnOp{{Op: apply.OpDelete, Key: []byte("a")},
			{Op: apply.OpPut, Key: []byte("a"), Value: []byte("x")}})), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(1), key: "a"},
		{name: "BinaryEmpty", body: http.NoBody, headers: binaryCT, status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BinaryNoOps", body: bytes.NewReader([]byte{1}), headers: binaryCT, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "BinaryVersion", body: bytes.NewReader([]byte{2, 2, 0, 1, 'a'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BinaryBadOp", body: bytes.NewReader([]byte{1, 3, 0, 1, 'a'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "BinaryBadCond", body: bytes.NewReader([]byte{1, 2, 3, 1, 'a'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "BinaryIfMatchNonCanonical", body: bytes.NewReader([]byte{1, 2, 1, 0x80, 0, 1, 'a'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "BinaryKeyTruncated", body: bytes.NewReader([]byte{1, 2, 0, 1, 'a', 2, 0, 5, 'b'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidKey, op: op(1)},
		{name: "BinaryKeyNonCanonical", body: bytes.NewReader([]byte{1, 2, 0, 0x81, 0, 'a'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidKey, op: op(0)},
		{name: "BinaryValueTruncated", body: bytes.NewReader([]byte{1, 1, 0, 1, 'a', 3, 'x'}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(0)},
		{name: "BinaryTrailingByte", body: bytes.NewReader([]byte{1, 2, 0, 1, 'a', 2}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidRequest, op: op(1)},
		{name: "BinaryBadUTF8Key", body: bytes.NewReader([]byte{1, 2, 0, 1, 0xff}), headers: binaryCT,
			status: http.StatusBadRequest, code: CodeInvalidKey, op: op(0)},

		// Limits: 413.
		{name: "TooManyOps", body: strings.NewReader(txnJSON(apply.MaxTxnOps+1, 1)), status: http.StatusRequestEntityTooLarge,
			code: CodeTxnTooLarge},
		{name: "BinaryTooManyOps", body: bytes.NewReader(bin(txnOps(apply.MaxTxnOps+1, 1))), headers: binaryCT,
			status: http.StatusRequestEntityTooLarge, code: CodeTxnTooLarge},
		{name: "EntryTooLarge", body: strings.NewReader(txnJSON(2, apply.MaxValueLen)), status: http.StatusRequestEntityTooLarge,
			code: CodeTxnTooLarge},
		{name: "BinaryEntryTooLarge", body: bytes.NewReader(bin(txnOps(2, apply.MaxValueLen))), headers: binaryCT,
			status: http.StatusRequestEntityTooLarge, code: CodeTxnTooLarge},
		{name: "ValueTooLarge", body: strings.NewReader(txnJSON(1, apply.MaxValueLen+1)), status: http.StatusRequestEntityTooLarge,
			code: CodeValueTooLarge, op: op(0), key: "k0000"},
		{name: "BinaryValueTooLarge", body: bytes.NewReader(bin(txnOps(1, apply.MaxValueLen+1))), headers: binaryCT,
			status: http.StatusRequestEntityTooLarge, code: CodeValueTooLarge, op: op(0)},
		{name: "BodyTooLarge", body: bigBody(MaxTxnBody + 1), status: http.StatusRequestEntityTooLarge, code: CodeTxnTooLarge},
		{name: "ChunkedBodyTooLarge", body: io.MultiReader(bigBody(MaxTxnBody + 1)), status: http.StatusRequestEntityTooLarge,
			code: CodeTxnTooLarge},

		// The writer's answers.
		{name: "PreconditionFailed", body: strings.NewReader(sampleJSON), status: http.StatusPreconditionFailed,
			code: CodePreconditionFailed, op: op(1), key: "b/\u00e9", version: 9, wantOps: sampleOps,
			err: &TxnOpError{Index: 1, Key: []byte("b/\u00e9"), Current: apply.Current{Version: 9, Exists: true},
				Err: fmt.Errorf("check: %w", apply.ErrPrecondition)}},
		{name: "PreconditionFailedAbsent", body: strings.NewReader(sampleJSON), status: http.StatusPreconditionFailed,
			code: CodePreconditionFailed, op: op(0), key: "a", wantOps: sampleOps,
			err: &TxnOpError{Index: 0, Key: []byte("a"), Err: apply.ErrPrecondition}},
		{name: "DeleteAbsent", body: strings.NewReader(sampleJSON), status: http.StatusNotFound, code: CodeNotFound,
			op: op(4), key: "e", wantOps: sampleOps,
			err: fmt.Errorf("node: %w", &TxnOpError{Index: 4, Key: []byte("e"), Err: apply.ErrNotFound})},
		{name: "NotLeader", body: strings.NewReader(sampleJSON), err: ErrNotLeader, status: http.StatusServiceUnavailable,
			code: CodeNotLeader, wantOps: sampleOps},
		{name: "Unavailable", body: strings.NewReader(sampleJSON), err: fmt.Errorf("x: %w", ErrUnavailable),
			status: http.StatusServiceUnavailable, code: CodeUnavailable, wantOps: sampleOps},
		{name: "OutcomeUnknown", body: strings.NewReader(sampleJSON),
			err:    fmt.Errorf("ack lost: %w: %w", ErrOutcomeUnknown, ErrUnavailable),
			status: http.StatusServiceUnavailable, code: CodeOutcomeUnknown, wantOps: sampleOps},
		{name: "Timeout", body: strings.NewReader(sampleJSON), err: context.DeadlineExceeded,
			status: http.StatusGatewayTimeout, code: CodeOutcomeUnknown, wantOps: sampleOps},
		{name: "DiskFull", body: strings.NewReader(sampleJSON), err: fmt.Errorf("x: %w", ErrDiskFull),
			status: http.StatusInsufficientStorage, code: CodeDiskFull, wantOps: sampleOps},
		{name: "Internal", body: strings.NewReader(sampleJSON), err: io.ErrUnexpectedEOF,
			status: http.StatusInternalServerError, code: CodeInternal, wantOps: sampleOps},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := &fakeTxnWriter{res: tc.res, err: tc.err}
			rec := do(newTxnLeader(t, tw, nil), http.MethodPost, "/v1/txn", tc.body, tc.headers...)
			checkAnswer(t, rec, tc.status, tc.code)
			calls := tw.calls()
			if tc.wantOps == nil {
				if len(calls) != 0 {
					t.Fatalf("a refused transaction reached the writer: %+v", calls)
				}
			} else if len(calls) != 1 || !sameOps(calls[0].Ops, tc.wantOps) {
				t.Fatalf("writer got %+v, want one call with %+v", calls, tc.wantOps)
			}
			if tc.code != "" {
				var e struct {
					Op      *int    `json:"op"`
					Key     *string `json:"key"`
					Version *uint64 `json:"version"`
				}
				decode(t, rec, &e)
				if (e.Op == nil) != (tc.op == nil) || e.Op != nil && *e.Op != *tc.op {
					t.Errorf("error names op %v, want %v (body %s)", e.Op, tc.op, rec.Body.String())
				}
				if got := ""; e.Key != nil && *e.Key != tc.key || e.Key == nil && tc.key != got {
					t.Errorf("error names key %v, want %q (body %s)", e.Key, tc.key, rec.Body.String())
				}
				if e.Version != nil && *e.Version != tc.version || e.Version == nil && tc.version != 0 {
					t.Errorf("error names version %v, want %d (body %s)", e.Version, tc.version, rec.Body.String())
				}
				return
			}
			var body struct {
				Version    uint64 `json:"version"`
				Ops        *int   `json:"ops"`
				Replicated *int   `json:"replicated"`
			}
			decode(t, rec, &body)
			if body.Version != tc.res.Version || body.Ops == nil || *body.Ops != len(tc.wantOps) {
				t.Errorf("body %s, want version %d and %d ops", rec.Body.String(), tc.res.Version, len(tc.wantOps))
			}
			if (body.Replicated != nil) != tc.res.SyncRequired {
				t.Errorf("replicated %v with sync required %v", body.Replicated, tc.res.SyncRequired)
			}
			if !strings.HasPrefix(rec.Header().Get(HeaderServerTiming), "write;dur=") {
				t.Errorf("Server-Timing = %q", rec.Header().Get(HeaderServerTiming))
			}
		})
	}
}

func TestHandler_TxnRouting(t *testing.T) {
	t.Run("MethodNotAllowed", func(t *testing.T) {
		rec := do(newTxnLeader(t, &fakeTxnWriter{}, nil), http.MethodGet, "/v1/txn", nil)
		checkAnswer(t, rec, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
		if rec.Header().Get("Allow") != "POST" {
			t.Fatalf("Allow = %q", rec.Header().Get("Allow"))
		}
	})
	t.Run("NoTxnWriter", func(t *testing.T) {
		rec := do(newLeader(t, newFakeNode(3), &fakeWriter{}, nil), http.MethodPost, "/v1/txn", strings.NewReader(sampleJSON))
		checkAnswer(t, rec, http.StatusNotFound, CodeNotFound)
	})
	t.Run("FollowerRedirects", func(t *testing.T) {
		body := &countingReader{}
		rec := do(newFollower(t, newFakeNode(3), fakeRedirector{url: "http://leader:8080/"}), http.MethodPost,
			"/v1/txn?x=1", body)
		checkAnswer(t, rec, http.StatusTemporaryRedirect, "")
		if loc := rec.Header().Get("Location"); loc != "http://leader:8080/v1/txn?x=1" {
			t.Fatalf("Location = %q", loc)
		}
		if body.n != 0 {
			t.Fatalf("a follower read %d bytes of the body it redirects", body.n)
		}
	})
	t.Run("FollowerNoLeader", func(t *testing.T) {
		rec := do(newFollower(t, newFakeNode(3), fakeRedirector{err: ErrNoLeader}), http.MethodPost, "/v1/txn",
			strings.NewReader(sampleJSON))
		checkAnswer(t, rec, http.StatusServiceUnavailable, CodeNoLeader)
	})
	t.Run("BodyBufferFull", func(t *testing.T) {
		tw := &fakeTxnWriter{}
		h := newTxnLeader(t, tw, func(c *Config) { c.BodyBuffer = apply.MaxValueLen })
		// A chunked body reserves the whole limit, which is the buffer: a second one cannot fit meanwhile, but one
		// alone can.
		rec := do(h, http.MethodPost, "/v1/txn", io.MultiReader(strings.NewReader(sampleJSON)))
		checkAnswer(t, rec, http.StatusOK, "")
		rec = do(h, http.MethodPost, "/v1/txn", bigBody(apply.MaxValueLen+1))
		checkAnswer(t, rec, http.StatusRequestEntityTooLarge, CodeTxnTooLarge)
	})
}

// TestHandler_TxnTokens: a transaction is a write: the read token gets 403, no token 401, on a follower too (before
// any redirect).
func TestHandler_TxnTokens(t *testing.T) {
	for _, tc := range []struct {
		name     string
		auth     string
		follower bool
		status   int
	}{
		{"Auth", "Bearer " + testAuthToken, false, http.StatusOK},
		{"Read", "Bearer " + testReadToken, false, http.StatusForbidden},
		{"None", "", false, http.StatusUnauthorized},
		{"Wrong", "Bearer nope", false, http.StatusUnauthorized},
		{"FollowerAuth", "Bearer " + testAuthToken, true, http.StatusTemporaryRedirect},
		{"FollowerRead", "Bearer " + testReadToken, true, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := &fakeTxnWriter{res: WriteResult{Version: 4}}
			var h http.Handler
			if tc.follower {
				var err error
				h, err = NewHandler(Config{Node: newFakeNode(3), Redirector: fakeRedirector{url: "http://leader"},
					AuthToken: testAuthToken, ReadToken: testReadToken})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				h = newTxnLeader(t, tw, withTokens)
			}
			var headers []string
			if tc.auth != "" {
				headers = []string{"Authorization", tc.auth}
			}
			rec := do(h, http.MethodPost, "/v1/txn", strings.NewReader(sampleJSON), headers...)
			checkAnswer(t, rec, tc.status, "")
			if tc.status != http.StatusOK && len(tw.calls()) != 0 {
				t.Fatal("a refused transaction reached the writer")
			}
		})
	}
}

// TestAppendTxnBinary pins the binary body's bytes (docs/api.md has the same example).
func TestAppendTxnBinary(t *testing.T) {
	got := AppendTxnBinary(nil, []TxnOp{
		{Op: apply.OpPut, Key: []byte("a"), Value: []byte("hi"), Cond: apply.Cond{IfNoneMatch: true}},
		{Op: apply.OpDelete, Key: []byte("b"), Cond: apply.Cond{IfMatch: 300, HasIfMatch: true}},
	})
	want := []byte{1, 1, 2, 1, 'a', 2, 'h', 'i', 2, 1, 0xac, 0x02, 1, 'b'}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendTxnBinary = % x, want % x", got, want)
	}
}

// FuzzParseTxn: any body in either encoding parses without panicking; an accepted one is a valid transaction
// (apply.ValidateTxn, once sorted), the binary encoding re-encodes to the same bytes, and the JSON one means what
// its binary re-encoding means.
func FuzzParseTxn(f *testing.F) {
	f.Add(false, []byte(sampleJSON))
	f.Add(true, AppendTxnBinary(nil, sampleOps))
	f.Add(false, []byte(`{"ops":[{"op":"delete","key":"a"},{"op":"delete","key":"a"}]}`))
	f.Add(false, []byte(`{"ops":[{"op":"put","key":"a","value_b64":"eA=="}]}`))
	f.Add(true, []byte{1, 2, 1, 0x80, 0, 1, 'a'})
	f.Add(true, []byte{1, 1, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, binary bool, body []byte) {
		ct := "application/json"
		if binary {
			ct = ContentTypeTxn
		}
		req, err := parseTxn(ct, body)
		if err != nil {
			if err.status != http.StatusBadRequest && err.status != http.StatusRequestEntityTooLarge || err.msg == "" {
				t.Fatalf("refused with %d %q", err.status, err.msg)
			}
			return
		}
		ops := make([]apply.TxnOp, len(req.Ops))
		for i, o := range req.Ops {
			ops[i] = apply.TxnOp{Op: o.Op, Key: o.Key, Value: o.Value}
			if o.Cond.HasIfMatch && o.Cond.IfNoneMatch || o.Op == apply.OpDelete && (o.Value != nil || o.Cond.IfNoneMatch) ||
				o.Op == apply.OpPut && o.Value == nil {
				t.Fatalf("op %d accepted as %+v", i, o)
			}
		}
		apply.SortTxnOps(ops)
		if err := apply.ValidateTxn(ops); err != nil {
			t.Fatalf("accepted an invalid transaction: %v", err)
		}
		enc := AppendTxnBinary(nil, req.Ops)
		if binary && !bytes.Equal(enc, body) {
			t.Fatalf("binary body % x re-encodes as % x", body, enc)
		}
		again, err := parseTxn(ContentTypeTxn, enc)
		if err != nil || !sameOps(again.Ops, req.Ops) {
			t.Fatalf("re-encoded body does not parse back: %v", err)
		}
	})
}

// BenchmarkParseTxn measures the parse of a transaction of 100 puts of 128-byte values (keys of 16 bytes) in each
// encoding: JSON with base64 values, JSON with string values, and the binary body.
func BenchmarkParseTxn(b *testing.B) {
	ops := make([]TxnOp, 100)
	for i := range ops {
		ops[i] = TxnOp{Op: apply.OpPut, Key: fmt.Appendf(nil, "bench/key/%06d", i), Value: bytes.Repeat([]byte{'v'}, 128)}
	}
	type opDoc struct {
		Op       string `json:"op"`
		Key      string `json:"key"`
		Value    string `json:"value,omitempty"`
		ValueB64 []byte `json:"value_b64,omitempty"`
	}
	jsonBody := func(b64 bool) []byte {
		docs := make([]opDoc, len(ops))
		for i, o := range ops {
			docs[i] = opDoc{Op: "put", Key: string(o.Key)}
			if b64 {
				docs[i].ValueB64 = o.Value
			} else {
				docs[i].Value = string(o.Value)
			}
		}
		out, err := json.Marshal(map[string]any{"ops": docs})
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	for _, enc := range []struct {
		name, ct string
		body     []byte
	}{
		{"JSONBase64", "application/json", jsonBody(true)},
		{"JSONString", "application/json", jsonBody(false)},
		{"Binary", ContentTypeTxn, AppendTxnBinary(nil, ops)},
	} {
		b.Run(enc.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc.body)))
			b.ReportAllocs()
			for b.Loop() {
				req, err := parseTxn(enc.ct, enc.body)
				if err != nil || len(req.Ops) != len(ops) {
					b.Fatalf("parse: %v", err)
				}
			}
			b.ReportMetric(float64(b.N*len(ops))/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
