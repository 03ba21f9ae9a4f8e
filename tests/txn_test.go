//go:build e2e

package tests

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
)

// txnDoc is the answer of POST /v1/txn: a committed transaction, or an error naming an operation.
type txnDoc struct {
	Version uint64  `json:"version"`
	Ops     int     `json:"ops"`
	Code    string  `json:"code"`
	Error   string  `json:"error"`
	Op      *int    `json:"op"`
	Key     *string `json:"key"`
}

// TestTxn_EndToEnd: POST /v1/txn through the real binaries: JSON and binary bodies commit every key at the entry's
// sequence; malformed bodies, a key named twice, too many operations or bytes, failed preconditions and a delete of
// an absent key change nothing and answer 400, 413, 412 and 404 naming the operation; the read token gets 403; a
// follower redirects the transaction to the leader with 307, and converges to the leader's digest.
func TestTxn_EndToEnd(t *testing.T) {
	t.Parallel()
	const readToken = "r3ad-t0ken"
	c := newCluster(t, clusterOpts{token: "txn-t0ken"})
	lc := c.startLeader("--read-token=" + readToken).api()
	fp := c.startFollower("f1", "--read-token="+readToken)
	fc := fp.api()
	base := lc.put(t, "txn/existing", []byte("v1"))
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	binCT := http.Header{"Content-Type": {api.ContentTypeTxn}}

	var s uint64
	t.Run("JSON", func(t *testing.T) {
		body := fmt.Sprintf(`{"ops":[
			{"op":"put","key":"txn/a","value":"A"},
			{"op":"put","key":"txn/b","value_b64":%q,"if_absent":true},
			{"op":"delete","key":"txn/existing","if_match":%d}]}`, base64.StdEncoding.EncodeToString([]byte{0, 0xff}), base.Version)
		d := decode[txnDoc](t, lc.must(t, http.MethodPost, "/v1/txn", []byte(body), jsonCT, http.StatusOK))
		if d.Ops != 3 || d.Version != base.Version+1 {
			t.Fatalf("txn: %+v, want 3 ops at version %d", d, base.Version+1)
		}
		s = d.Version
		for key, want := range map[string]string{"txn/a": "A", "txn/b": "\x00\xff"} {
			r := lc.must(t, http.MethodGet, kvPath(key), nil, nil, http.StatusOK)
			if string(r.Body) != want || r.Header.Get("ETag") != strconv.Quote(strconv.FormatUint(s, 10)) {
				t.Fatalf("GET %s: %s, ETag %s; want %q at %d", key, r, r.Header.Get("ETag"), want, s)
			}
		}
		lc.must(t, http.MethodGet, kvPath("txn/existing"), nil, nil, http.StatusNotFound)
	})
	t.Run("Binary", func(t *testing.T) {
		ops := make([]api.TxnOp, 200)
		for i := range ops {
			ops[i] = api.TxnOp{Op: apply.OpPut, Key: fmt.Appendf(nil, "txn/bulk/%03d", i), Value: []byte("raw\n" + strconv.Itoa(i))}
		}
		ops = append(ops, api.TxnOp{Op: apply.OpPut, Key: []byte("txn/a"), Value: []byte("A2"),
			Cond: apply.Cond{IfMatch: s, HasIfMatch: true}})
		d := decode[txnDoc](t, lc.must(t, http.MethodPost, "/v1/txn", api.AppendTxnBinary(nil, ops), binCT, http.StatusOK))
		if d.Ops != len(ops) || d.Version != s+1 {
			t.Fatalf("binary txn: %+v, want %d ops at %d", d, len(ops), s+1)
		}
		items, _ := lc.list(t, "txn/bulk/")
		if len(items) != 200 || items[7].Version != s+1 || string(items[7].Value) != "raw\n7" {
			t.Fatalf("list after the binary txn: %d items, item 7 %+v", len(items), items[min(7, len(items)-1)])
		}
	})

	applied := func() int64 { return lc.call(t, http.MethodGet, "/v1/status", nil, nil).seqHeader() }
	refused := []struct {
		name   string
		body   []byte
		hdr    http.Header
		status int
		code   string
		op     int // -1: no operation named
		key    string
	}{
		{"Malformed", []byte(`{"ops":[{"op":"put","key":"txn/x","value":"1"}`), jsonCT, http.StatusBadRequest, "invalid_request", -1, ""},
		{"UnknownField", []byte(`{"ops":[{"op":"put","key":"txn/x","value":"1","if_matches":1}]}`), jsonCT,
			http.StatusBadRequest, "invalid_request", -1, ""},
		{"EmptyOps", []byte(`{"ops":[]}`), jsonCT, http.StatusBadRequest, "invalid_request", -1, ""},
		{"BadOp", []byte(`{"ops":[{"op":"incr","key":"txn/x"}]}`), jsonCT, http.StatusBadRequest, "invalid_request", 0, ""},
		{"BadBase64", []byte(`{"ops":[{"op":"put","key":"txn/x","value_b64":"!!"}]}`), jsonCT, http.StatusBadRequest,
			"invalid_request", 0, ""},
		{"BadKey", []byte(`{"ops":[{"op":"delete","key":"txn/a"},{"op":"delete","key":""}]}`), jsonCT,
			http.StatusBadRequest, "invalid_key", 1, ""},
		{"DuplicateKey", []byte(`{"ops":[{"op":"put","key":"txn/x","value":"1"},{"op":"put","key":"txn/x","value":"2"}]}`),
			jsonCT, http.StatusBadRequest, "invalid_request", 1, "txn/x"},
		{"BinaryTruncated", []byte{1, 1, 0, 5, 't'}, binCT, http.StatusBadRequest, "invalid_key", 0, ""},
		{"TooManyOps", api.AppendTxnBinary(nil, bulkOps(apply.MaxTxnOps+1, 1)), binCT, http.StatusRequestEntityTooLarge,
			"txn_too_large", -1, ""},
		{"TooManyBytes", api.AppendTxnBinary(nil, bulkOps(2, apply.MaxValueLen)), binCT, http.StatusRequestEntityTooLarge,
			"txn_too_large", -1, ""},
		{"ValueTooLarge", api.AppendTxnBinary(nil, bulkOps(1, apply.MaxValueLen+1)), binCT,
			http.StatusRequestEntityTooLarge, "value_too_large", 0, ""},
		{"PreconditionFailed", []byte(`{"ops":[{"op":"put","key":"txn/x","value":"1"},{"op":"put","key":"txn/a","value":"2","if_match":1}]}`),
			jsonCT, http.StatusPreconditionFailed, "precondition_failed", 1, "txn/a"},
		{"IfAbsentExists", []byte(`{"ops":[{"op":"put","key":"txn/b","value":"2","if_absent":true}]}`), jsonCT,
			http.StatusPreconditionFailed, "precondition_failed", 0, "txn/b"},
		{"DeleteAbsent", []byte(`{"ops":[{"op":"put","key":"txn/x","value":"1"},{"op":"delete","key":"txn/never"}]}`),
			jsonCT, http.StatusNotFound, "not_found", 1, "txn/never"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := applied()
			r := lc.must(t, http.MethodPost, "/v1/txn", tc.body, tc.hdr, tc.status)
			d := decode[txnDoc](t, r)
			if d.Code != tc.code || d.Error == "" {
				t.Fatalf("answer %s, want code %s", r, tc.code)
			}
			if (d.Op == nil) != (tc.op < 0) || d.Op != nil && *d.Op != tc.op {
				t.Fatalf("answer %s names op %v, want %d", r, d.Op, tc.op)
			}
			if tc.key != "" && (d.Key == nil || *d.Key != tc.key) {
				t.Fatalf("answer %s names key %v, want %q", r, d.Key, tc.key)
			}
			if after := applied(); after != before {
				t.Fatalf("applied seq moved from %d to %d: a refused transaction wrote", before, after)
			}
		})
	}
	lc.must(t, http.MethodGet, kvPath("txn/x"), nil, nil, http.StatusNotFound)

	t.Run("Tokens", func(t *testing.T) {
		body := []byte(`{"ops":[{"op":"put","key":"txn/tok","value":"1"}]}`)
		for _, cl := range []*client{lc, fc} {
			read := &client{base: cl.base, token: readToken, hc: cl.hc}
			read.must(t, http.MethodPost, "/v1/txn", body, nil, http.StatusForbidden)
			none := &client{base: cl.base, hc: cl.hc}
			none.must(t, http.MethodPost, "/v1/txn", body, http.Header{"Authorization": {"Bearer wrong"}}, http.StatusUnauthorized)
		}
	})

	t.Run("FollowerRedirect", func(t *testing.T) {
		fc.waitReady(t)
		body := []byte(`{"ops":[{"op":"put","key":"txn/via-follower","value":"f"},{"op":"delete","key":"txn/a"}]}`)
		r := fc.must(t, http.MethodPost, "/v1/txn?x=1", body, jsonCT, http.StatusTemporaryRedirect)
		loc, err := url.Parse(r.Header.Get("Location"))
		if err != nil || loc.Scheme+"://"+loc.Host != lc.base || loc.RequestURI() != "/v1/txn?x=1" {
			t.Fatalf("Location %q (%v), want %s/v1/txn?x=1", r.Header.Get("Location"), err, lc.base)
		}
		// The client repeats the POST, body and all, at the Location (what curl -L and net/http do for a 307).
		d := decode[txnDoc](t, lc.must(t, http.MethodPost, loc.RequestURI(), body, jsonCT, http.StatusOK))
		rr := fc.must(t, http.MethodGet, kvPath("txn/via-follower")+"?min_seq="+strconv.FormatUint(d.Version, 10), nil,
			nil, http.StatusOK)
		if string(rr.Body) != "f" || rr.Header.Get("ETag") != strconv.Quote(strconv.FormatUint(d.Version, 10)) {
			t.Fatalf("follower read of the transaction's key: %s ETag %s", rr, rr.Header.Get("ETag"))
		}
		fc.must(t, http.MethodGet, kvPath("txn/a")+"?min_seq="+strconv.FormatUint(d.Version, 10), nil, nil,
			http.StatusNotFound)
		waitDigestEqual(t, lc, fc)
	})
}

// bulkOps is n puts of distinct keys with values of size bytes.
func bulkOps(n, size int) []api.TxnOp {
	ops := make([]api.TxnOp, n)
	for i := range ops {
		ops[i] = api.TxnOp{Op: apply.OpPut, Key: fmt.Appendf(nil, "txn/limit/%04d", i), Value: make([]byte, size)}
	}
	return ops
}
