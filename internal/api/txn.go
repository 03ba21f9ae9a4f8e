package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/replikv/replikv/internal/apply"
)

// POST /v1/txn takes a transaction in one of two encodings, chosen by the Content-Type (docs/api.md):
//
//   - JSON (any other Content-Type, or none): {"ops":[{"op":"put","key":"k","value":"text","if_match":7}, ...]},
//     a put's value as a string ("value") or in standard base64 ("value_b64");
//   - binary (Content-Type: application/x-replikv-txn): a version byte (1), then per operation a byte op (1 put,
//     2 delete), a byte precondition (0 none, 1 if_match followed by uvarint(version), 2 if_absent), uvarint(len(key))
//     key, and for a put uvarint(len(value)) value. Raw values, no escaping: the bulk-load path.
//
// Both describe the same request and go through the same checks.

// ContentTypeTxn is the media type of the binary transaction body.
const ContentTypeTxn = "application/x-replikv-txn"

// txnBinaryV1 is the first byte of a binary transaction body.
const txnBinaryV1 = 1

// Preconditions of an operation in the binary body.
const (
	txnCondNone     = 0
	txnCondIfMatch  = 1
	txnCondIfAbsent = 2
)

// txnBody is the JSON answer of a committed transaction. Replicated is present only when the leader syncs followers.
type txnBody struct {
	Version    uint64 `json:"version"`
	Ops        int    `json:"ops"`
	Replicated *int   `json:"replicated,omitempty"`
}

// txnErrorBody is the error JSON of a refused transaction: the fields of every error, plus, when one operation is
// to blame, its index, its key (unless the key itself is invalid) and the key's current version (when the key
// exists and the answer is a 412 or 404).
type txnErrorBody struct {
	Error   string  `json:"error"`
	Code    string  `json:"code"`
	Op      *int    `json:"op,omitempty"`
	Key     *string `json:"key,omitempty"`
	Version *uint64 `json:"version,omitempty"`
}

// txnError is a refused transaction: status, code and message, and the operation to blame when there is one (op >=
// 0; key nil when it must not be echoed; version set when hasVersion).
type txnError struct {
	status     int
	code       string
	msg        string
	op         int
	key        []byte
	version    uint64
	hasVersion bool
}

func (e *txnError) Error() string { return "api: txn: " + e.msg }

// txnBad returns a 400 invalid_request for the whole body.
func txnBad(format string, args ...any) *txnError {
	return &txnError{status: http.StatusBadRequest, code: CodeInvalidRequest, msg: fmt.Sprintf(format, args...), op: -1}
}

// txnOpBad returns a 400 of code for operation i, naming key (nil: not echoed).
func txnOpBad(i int, code string, key []byte, format string, args ...any) *txnError {
	return &txnError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf("ops[%d]: ", i) + fmt.Sprintf(format, args...),
		op: i, key: key}
}

// writeTxnError answers e.
func writeTxnError(w http.ResponseWriter, e *txnError) {
	b := txnErrorBody{Error: e.msg, Code: e.code}
	if e.op >= 0 {
		b.Op = &e.op
		if e.key != nil {
			k := string(e.key)
			b.Key = &k
		}
		if e.hasVersion {
			b.Version = &e.version
		}
	}
	writeJSON(w, e.status, b)
}

// serveTxn handles POST /v1/txn: reads and validates the whole body, then commits it through the TxnWriter on a
// leader or redirects on a follower (without reading the body). Nothing reaches the TxnWriter before the whole
// transaction has been validated.
func (h *handler) serveTxn(w *responseWriter, r *http.Request) {
	start := time.Now()
	defer h.observeWrite(apply.OpTxn, w, start)
	idemKey, err := parseIdemKey(r.Header)
	if err != nil {
		h.writeRequestError(w, err)
		return
	}
	if !h.leads() {
		h.redirect(w, r)
		return
	}
	if h.cfg.Txn == nil {
		writeError(w, http.StatusNotFound, CodeNotFound, "transactions are not served by this node")
		return
	}
	limit := min(int64(MaxTxnBody), h.cfg.BodyBuffer)
	if r.ContentLength > limit {
		writeTxnError(w, txnTooLarge("body of %d bytes, longer than %d", r.ContentLength, limit))
		return
	}
	release, ok := h.reserveBody(w, r, limit)
	if !ok {
		return
	}
	defer release()
	body, answered, err := h.readBodyInTime(w, r, func(w http.ResponseWriter, r *http.Request) ([]byte, error) {
		return readBody(w, r, limit)
	})
	switch {
	case answered:
		return
	case errors.Is(err, errBodyTooLarge):
		writeTxnError(w, txnTooLarge("body longer than %d bytes", limit))
		return
	case err != nil:
		h.writeRequestError(w, err)
		return
	}
	req, terr := parseTxn(r.Header.Get("Content-Type"), body)
	if terr != nil {
		writeTxnError(w, terr)
		return
	}
	req.IdemKey = idemKey
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.WriteTimeout)
	defer cancel()
	res, err := h.cfg.Txn.WriteTxn(ctx, req)
	if err != nil {
		if oe, ok := errors.AsType[*TxnOpError](err); ok {
			if e := opFailure(oe); e != nil {
				writeTxnError(w, e)
				return
			}
		}
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable) {
			writeError(w, http.StatusGatewayTimeout, CodeOutcomeUnknown,
				"the transaction was not confirmed in time: it may or may not be committed")
			return
		}
		h.writeFailure(w, r, apply.OpTxn.String(), err)
		return
	}
	answer := txnBody{Version: res.Version, Ops: len(req.Ops)}
	status := http.StatusOK
	if res.SyncRequired {
		answer.Replicated = &res.Replicated
		if !res.Confirmed {
			status = http.StatusAccepted
		}
	}
	setReplayed(w, res)
	w.Header().Set(HeaderServerTiming, serverTiming(time.Since(start)))
	writeJSON(w, status, answer)
}

// opFailure is the answer to a transaction an operation's check refused: 412 or 404 naming the operation, its key
// and the key's version; nil when oe wraps neither sentinel.
func opFailure(oe *TxnOpError) *txnError {
	e := &txnError{op: oe.Index, key: oe.Key, version: oe.Current.Version, hasVersion: oe.Current.Exists}
	switch {
	case errors.Is(oe, apply.ErrPrecondition):
		e.status, e.code = http.StatusPreconditionFailed, CodePreconditionFailed
		if oe.Current.Exists {
			e.msg = fmt.Sprintf("ops[%d]: precondition failed: the key is at version %d", oe.Index, oe.Current.Version)
		} else {
			e.msg = fmt.Sprintf("ops[%d]: precondition failed: the key does not exist", oe.Index)
		}
	case errors.Is(oe, apply.ErrNotFound):
		e.status, e.code = http.StatusNotFound, CodeNotFound
		e.msg = fmt.Sprintf("ops[%d]: delete of a key that does not exist", oe.Index)
	default:
		return nil
	}
	return e
}

// txnTooLarge returns a 413 txn_too_large.
func txnTooLarge(format string, args ...any) *txnError {
	return &txnError{status: http.StatusRequestEntityTooLarge, code: CodeTxnTooLarge, msg: fmt.Sprintf(format, args...),
		op: -1}
}

// errBodyTooLarge is readBody's error for a body over its limit.
var errBodyTooLarge = errors.New("request body too large")

// readBody reads r's whole body, at most limit bytes, never reading more than one byte past the limit. A longer
// body returns errBodyTooLarge, a body cut short or unreadable a *requestError, an expired read deadline
// os.ErrDeadlineExceeded.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errBodyTooLarge
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, err
			}
			return nil, badRequest("request body shorter than its Content-Length")
		}
		return buf, nil
	}
	buf, err := io.ReadAll(body)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, err
	case err != nil:
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errBodyTooLarge
		}
		return nil, badRequest("cannot read request body")
	}
	return buf, nil
}

// parseTxn parses and validates a transaction body of the given Content-Type: the binary encoding for
// ContentTypeTxn, JSON for anything else (curl -d sends a form type).
func parseTxn(contentType string, body []byte) (TxnRequest, *txnError) {
	var (
		req TxnRequest
		err *txnError
	)
	if mt, _, perr := mime.ParseMediaType(contentType); perr == nil && mt == ContentTypeTxn {
		req, err = parseTxnBinary(body)
	} else {
		req, err = parseTxnJSON(body)
	}
	if err != nil {
		return TxnRequest{}, err
	}
	if err := checkTxn(req.Ops); err != nil {
		return TxnRequest{}, err
	}
	return req, nil
}

// checkTxn applies the rules both encodings share once every operation is parsed: the count, no key twice, the
// entry's size.
func checkTxn(ops []TxnOp) *txnError {
	if len(ops) == 0 {
		return txnBad("a transaction needs 1 to %d operations", apply.MaxTxnOps)
	}
	// Sort the positions by key (stable: equal keys stay in request order), so that a repeated key is next to its
	// first use; name the earliest repeat in request order.
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return bytes.Compare(ops[a].Key, ops[b].Key) })
	first, repeat := -1, -1
	for k := 1; k < len(order); k++ {
		// Within a run of equal keys the positions increase, so only a run's first pair can hold the earliest repeat.
		if i, j := order[k-1], order[k]; (repeat < 0 || j < repeat) && bytes.Equal(ops[i].Key, ops[j].Key) {
			first, repeat = i, j
		}
	}
	if repeat >= 0 {
		return txnOpBad(repeat, CodeInvalidRequest, ops[repeat].Key,
			"key already written by ops[%d]: a transaction names each key once", first)
	}
	aops := make([]apply.TxnOp, len(ops))
	for i, o := range ops {
		aops[i] = apply.TxnOp{Op: o.Op, Key: o.Key, Value: o.Value}
	}
	if n := apply.TxnLen(aops); n > apply.MaxTxnLen {
		return txnTooLarge("a log entry of %d bytes, longer than %d (keys and values plus up to 6 bytes per operation)",
			n, apply.MaxTxnLen)
	}
	return nil
}

// checkTxnOp checks what can be checked of operation i alone: its key, its value's size, and that its preconditions
// can hold.
func checkTxnOp(i int, o TxnOp) *txnError {
	if err := apply.ValidateKey(o.Key); err != nil {
		return txnOpBad(i, CodeInvalidKey, nil, "%s", msgInvalidKey)
	}
	if len(o.Value) > apply.MaxValueLen {
		return &txnError{status: http.StatusRequestEntityTooLarge, code: CodeValueTooLarge,
			msg: fmt.Sprintf("ops[%d]: %s", i, msgValueTooLarge), op: i, key: o.Key}
	}
	if o.Op == apply.OpDelete && o.Cond.IfNoneMatch {
		return txnOpBad(i, CodeInvalidRequest, o.Key, "if_absent on a delete can never hold")
	}
	return nil
}

// txnDoc is the JSON body.
type txnDoc struct {
	Ops []txnOpDoc `json:"ops"`
}

// txnOpDoc is one operation of the JSON body. Pointers tell an absent field from a zero one.
type txnOpDoc struct {
	Op       string  `json:"op"`
	Key      *string `json:"key"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64"`
	IfMatch  *uint64 `json:"if_match"`
	IfAbsent bool    `json:"if_absent"`
}

// parseTxnJSON parses the JSON body strictly: valid UTF-8, one object, no unknown field, nothing after it.
func parseTxnJSON(body []byte) (TxnRequest, *txnError) {
	if !utf8.Valid(body) {
		return TxnRequest{}, txnBad("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var doc txnDoc
	if err := dec.Decode(&doc); err != nil {
		return TxnRequest{}, jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return TxnRequest{}, txnBad("body holds more than one JSON value")
	}
	if len(doc.Ops) > apply.MaxTxnOps {
		return TxnRequest{}, txnTooLarge("%d operations, more than %d", len(doc.Ops), apply.MaxTxnOps)
	}
	req := TxnRequest{Ops: make([]TxnOp, len(doc.Ops))}
	for i, d := range doc.Ops {
		o := &req.Ops[i]
		if d.Key == nil {
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "key is missing")
		}
		o.Key = []byte(*d.Key)
		switch d.Op {
		case "put":
			o.Op = apply.OpPut
			switch {
			case d.Value != nil && d.ValueB64 != nil:
				return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "a put takes value or value_b64, not both")
			case d.Value != nil:
				o.Value = []byte(*d.Value)
			case d.ValueB64 != nil:
				v, err := base64.StdEncoding.DecodeString(*d.ValueB64)
				if err != nil {
					return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "value_b64 is not standard base64 (with padding)")
				}
				o.Value = v
			default:
				return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "a put needs value or value_b64")
			}
		case "delete":
			o.Op = apply.OpDelete
			if d.Value != nil || d.ValueB64 != nil {
				return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "a delete takes no value")
			}
		case "":
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, `op is missing: "put" or "delete"`)
		default:
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, `op must be "put" or "delete"`)
		}
		if d.IfMatch != nil && d.IfAbsent {
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "if_match and if_absent exclude each other")
		}
		if d.IfMatch != nil {
			o.Cond = apply.Cond{IfMatch: *d.IfMatch, HasIfMatch: true}
		}
		o.Cond.IfNoneMatch = d.IfAbsent
		if err := checkTxnOp(i, *o); err != nil {
			return TxnRequest{}, err
		}
	}
	return req, nil
}

// jsonProblem turns a decoding error into a 400 that says what is wrong without Go type names.
func jsonProblem(err error) *txnError {
	if errors.Is(err, io.EOF) {
		return txnBad(`empty body: want {"ops":[...]}`)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		want := "a different type"
		switch te.Type.Kind() {
		case reflect.Uint64:
			want = "a version: a whole number from 0 to 18446744073709551615"
		case reflect.String:
			want = "a string"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice:
			want = "an array"
		case reflect.Struct:
			want = "an object"
		}
		field := te.Field
		if field == "" {
			field = "the body"
		}
		return txnBad("%s must be %s", field, want)
	}
	return txnBad("body is not a JSON transaction: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// parseTxnBinary parses the binary body (see ContentTypeTxn). Keys and values alias body.
func parseTxnBinary(body []byte) (TxnRequest, *txnError) {
	if len(body) == 0 || body[0] != txnBinaryV1 {
		return TxnRequest{}, txnBad("binary transaction must start with version byte %d", txnBinaryV1)
	}
	rest := body[1:]
	var req TxnRequest
	// Each operation takes at least 4 bytes (op, precondition, key length, one key byte): bound the first allocation.
	req.Ops = make([]TxnOp, 0, min(len(rest)/4, 64))
	for i := 0; len(rest) > 0; i++ {
		if i == apply.MaxTxnOps {
			return TxnRequest{}, txnTooLarge("more than %d operations", apply.MaxTxnOps)
		}
		if len(rest) < 2 {
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "truncated")
		}
		o := TxnOp{Op: apply.Op(rest[0])}
		cond := rest[1]
		rest = rest[2:]
		if o.Op != apply.OpPut && o.Op != apply.OpDelete {
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "op byte %d: want 1 (put) or 2 (delete)", o.Op)
		}
		switch cond {
		case txnCondNone:
		case txnCondIfMatch:
			v, n := binary.Uvarint(rest)
			if n <= 0 || n > 1 && rest[n-1] == 0 {
				return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "bad if_match version")
			}
			o.Cond, rest = apply.Cond{IfMatch: v, HasIfMatch: true}, rest[n:]
		case txnCondIfAbsent:
			o.Cond.IfNoneMatch = true
		default:
			return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "precondition byte %d: want 0, 1 or 2", cond)
		}
		var ok bool
		if o.Key, rest, ok = binaryField(rest, apply.MaxKeyLen); !ok {
			return TxnRequest{}, txnOpBad(i, CodeInvalidKey, nil, "bad or truncated key")
		}
		if o.Op == apply.OpPut {
			if o.Value, rest, ok = binaryField(rest, apply.MaxValueLen); !ok {
				if errValueLen(rest) {
					return TxnRequest{}, &txnError{status: http.StatusRequestEntityTooLarge, code: CodeValueTooLarge,
						msg: fmt.Sprintf("ops[%d]: %s", i, msgValueTooLarge), op: i}
				}
				return TxnRequest{}, txnOpBad(i, CodeInvalidRequest, nil, "bad or truncated value")
			}
		}
		if err := checkTxnOp(i, o); err != nil {
			return TxnRequest{}, err
		}
		req.Ops = append(req.Ops, o)
	}
	return req, nil
}

// binaryField reads uvarint(len) and that many bytes, at most limit, from b: the field (capacity = length) and the
// rest. ok is false for a non-minimal or truncated length, a length over limit, or a field past the end.
func binaryField(b []byte, limit int) (field, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || w > 1 && b[w-1] == 0 || n > uint64(limit) || n > uint64(len(b)-w) {
		return nil, b, false
	}
	end := w + int(n)
	return b[w:end:end], b[end:], true
}

// errValueLen reports whether b starts with a well-formed length over apply.MaxValueLen: a value too large rather
// than a malformed body.
func errValueLen(b []byte) bool {
	n, w := binary.Uvarint(b)
	return w > 0 && n > apply.MaxValueLen
}

// AppendTxnBinary appends the binary body (ContentTypeTxn) of a transaction of ops to dst and returns the extended
// slice: what a Go client sends to POST /v1/txn for the bulk-load path. It does not validate ops; the server does.
// A delete's Value is not written; a Cond with both HasIfMatch and IfNoneMatch is written as if_match.
func AppendTxnBinary(dst []byte, ops []TxnOp) []byte {
	dst = append(dst, txnBinaryV1)
	for _, o := range ops {
		dst = append(dst, byte(o.Op))
		switch {
		case o.Cond.HasIfMatch:
			dst = append(dst, txnCondIfMatch)
			dst = binary.AppendUvarint(dst, o.Cond.IfMatch)
		case o.Cond.IfNoneMatch:
			dst = append(dst, txnCondIfAbsent)
		default:
			dst = append(dst, txnCondNone)
		}
		dst = binary.AppendUvarint(dst, uint64(len(o.Key)))
		dst = append(dst, o.Key...)
		if o.Op != apply.OpDelete {
			dst = binary.AppendUvarint(dst, uint64(len(o.Value)))
			dst = append(dst, o.Value...)
		}
	}
	return dst
}
