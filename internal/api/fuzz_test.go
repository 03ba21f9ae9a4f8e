package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

// FuzzParseKey checks that key parsing never panics, accepts only valid keys, and round-trips through escaping.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "a%2Fb", "a/b", "%", "%zz", "%00", "%C3%A9", "%C3", "..", "a+b%20c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		key, err := parseKey(escaped)
		if err != nil {
			if !errors.Is(err, apply.ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		if err := apply.ValidateKey(key); err != nil {
			t.Fatalf("accepted invalid key %q: %v", key, err)
		}
		again, err := parseKey(url.PathEscape(string(key)))
		if err != nil || string(again) != string(key) {
			t.Fatalf("round trip of %q gave %q, %v", key, again, err)
		}
	})
}

// FuzzParseQuery checks that query parsing never panics and keeps its results within bounds.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "consistency=strong&min_seq=3&timeout=1s", "limit=10&values=true&prefix=a&after=b",
		"timeout=-1s", "limit=99999999999999999999", "min_seq=18446744073709551616", "a=%zz", "x;y", "values&limit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			return
		}
		ro, err := parseReadOptions(q, DefaultReadTimeout, DefaultMaxReadTimeout)
		if err == nil && (ro.timeout <= 0 || ro.timeout > DefaultMaxReadTimeout) {
			t.Fatalf("timeout %s out of bounds", ro.timeout)
		}
		lo, err := parseListOptions(q)
		if err == nil && (lo.limit < 1 || lo.limit > MaxListLimit || len(lo.prefix) > apply.MaxKeyLen ||
			len(lo.after) > apply.MaxKeyLen) {
			t.Fatalf("list options %+v out of bounds", lo)
		}
	})
}

// FuzzParseCond checks that precondition parsing never panics and never yields both conditions.
func FuzzParseCond(f *testing.F) {
	for _, s := range [][2]string{{`"1"`, ""}, {"", "*"}, {"*", ""}, {`W/"1"`, ""}, {`"`, ""}, {"1", "*"}, {"", `"x"`}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ifMatch, ifNoneMatch string) {
		h := http.Header{}
		if ifMatch != "" {
			h.Set("If-Match", ifMatch)
		}
		if ifNoneMatch != "" {
			h.Set("If-None-Match", ifNoneMatch)
		}
		c, err := parseCond(h)
		if err != nil {
			if _, ok := errors.AsType[*requestError](err); !ok {
				t.Fatalf("error %v is not a request error", err)
			}
			return
		}
		if c.HasIfMatch && c.IfNoneMatch {
			t.Fatal("both conditions accepted")
		}
		if !c.HasIfMatch && c.IfMatch != 0 {
			t.Fatal("IfMatch set without HasIfMatch")
		}
	})
}

// FuzzHandler_Request sends arbitrary requests through the whole handler: it never panics, always answers with
// Replikv-Seq and a status of the contract, and passes only valid keys and values to the Writer and only valid
// transactions to the TxnWriter.
func FuzzHandler_Request(f *testing.F) {
	f.Add("PUT", "/v1/kv/a%2Fb?x=1", `"3"`, []byte("v"))
	f.Add("GET", "/v1/kv?prefix=a&limit=2&values=true&consistency=strong&timeout=1ms", "", []byte(nil))
	f.Add("DELETE", "/v1/kv/%00", "*", []byte(nil))
	f.Add("GET", "/v1/digest?min_seq=99&timeout=1ms", "", []byte(nil))
	f.Add("POST", "/v1/snapshots", "", []byte("{}"))
	f.Add("GET", "/v1/digest?min_seq=99&timeout=20s", "", []byte(nil))
	f.Add("GET", "/v1/kv/a?consistency=strong&min_seq=99", "", []byte(nil))
	f.Add("POST", "/v1/txn", "", []byte(sampleJSON))
	f.Add("POST", "/v1/txn?x", "", []byte(`{"ops":[{"op":"delete","key":"a"},{"op":"delete","key":"a"}]}`))
	allowed := map[int]bool{200: true, 201: true, 202: true, 400: true, 404: true, 405: true, 412: true, 413: true,
		503: true, 504: true}
	f.Fuzz(func(t *testing.T, method, target, ifMatch string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !validMethod(method) {
			return
		}
		node := newFakeNode(3)
		node.put("a", "1", 1)
		node.strongSeq = 3
		w := &fakeWriter{res: WriteResult{Version: 4}}
		tw := &fakeTxnWriter{res: WriteResult{Version: 4}}
		h, err := NewHandler(Config{Node: node, Writer: w, Txn: tw, Snapshots: fakeSnapshots{}, Followers: fakeFollowers{}})
		if err != nil {
			t.Fatal(err)
		}
		r := &http.Request{Method: method, URL: u, RequestURI: target, Header: http.Header{},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Host: "x"}
		if ifMatch != "" {
			r.Header.Set("If-Match", ifMatch)
		}
		// A fuzzed timeout= or min_seq= may ask the handler to wait for seconds; the client's deadline bounds every
		// wait, so that the fuzzer never takes a slow input for a hung worker.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		r = r.WithContext(ctx)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if !allowed[rec.Code] || rec.Header().Get(HeaderSeq) == "" {
			t.Fatalf("%s %q: status %d, seq %q", method, target, rec.Code, rec.Header().Get(HeaderSeq))
		}
		for _, req := range w.calls() {
			if apply.ValidateKey(req.Key) != nil || apply.ValidateValue(req.Value) != nil {
				t.Fatalf("writer got invalid request %q", req.Key)
			}
		}
		for _, req := range tw.calls() {
			ops := make([]apply.TxnOp, len(req.Ops))
			for i, o := range req.Ops {
				ops[i] = apply.TxnOp{Op: o.Op, Key: o.Key, Value: o.Value}
			}
			apply.SortTxnOps(ops)
			if err := apply.ValidateTxn(ops); err != nil {
				t.Fatalf("txn writer got an invalid transaction: %v", err)
			}
		}
	})
}

// validMethod reports whether m is an HTTP token, as net/http requires of a method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range []byte(m) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// FuzzParseIdemKey: an accepted Idempotency-Key is exactly the header's value and a valid key; a refused one is a
// *requestError (400), never a panic.
func FuzzParseIdemKey(f *testing.F) {
	for _, s := range []string{"k-1", "", " ", "a b", "é", strings.Repeat("k", apply.MaxIdemKeyLen+1), "~!\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set(HeaderIdempotencyKey, v)
		k, err := parseIdemKey(h)
		if err != nil {
			if _, ok := errors.AsType[*requestError](err); !ok {
				t.Fatalf("error %v is not a request error", err)
			}
			return
		}
		if string(k) != v || apply.ValidateIdemKey(k) != nil {
			t.Fatalf("accepted %q as %q", v, k)
		}
	})
}
