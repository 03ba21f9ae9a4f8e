package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/metrics"
)

// discardWriter is a reusable http.ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(status int)      { d.status = status }

// BenchmarkHandler_Put measures the handler alone on 128-byte PUTs against a NoopWriter, with metrics on: the
// "no-op PUT" baseline of the ingest benchmarks. Request parsing by net/http is not included.
func BenchmarkHandler_Put(b *testing.B) {
	h, err := NewHandler(Config{Node: newFakeNode(1), Writer: &NoopWriter{}, Metrics: metrics.New(RoleLeader)})
	if err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 128)
	urls := make([]*url.URL, 1024)
	for i := range urls {
		urls[i] = &url.URL{Path: "/v1/kv/bench-" + strconv.Itoa(i)}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{header: http.Header{}}
		body := bytes.NewReader(value)
		i := 0
		for pb.Next() {
			i++
			body.Reset(value)
			u := urls[i%len(urls)]
			r := &http.Request{Method: http.MethodPut, URL: u, RequestURI: u.Path, Header: http.Header{},
				Body: io.NopCloser(body), ContentLength: int64(len(value)), Proto: "HTTP/1.1", ProtoMajor: 1,
				ProtoMinor: 1}
			clear(w.header)
			h.ServeHTTP(w, r)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// BenchmarkHandler_Txn is BenchmarkHandler_Put for transactions of 100 puts of 128-byte values (keys of 16 bytes), in
// JSON with base64 values and in the binary body, against a NoopWriter: the handler's cost per key (keys/s) next to a
// PUT's.
func BenchmarkHandler_Txn(b *testing.B) {
	ops := make([]TxnOp, 100)
	for i := range ops {
		ops[i] = TxnOp{Op: apply.OpPut, Key: fmt.Appendf(nil, "bench/key/%06d", i), Value: bytes.Repeat([]byte("v"), 128)}
	}
	var js bytes.Buffer
	js.WriteString(`{"ops":[`)
	for i, o := range ops {
		if i > 0 {
			js.WriteByte(',')
		}
		fmt.Fprintf(&js, `{"op":"put","key":%q,"value_b64":%q}`, o.Key, base64.StdEncoding.EncodeToString(o.Value))
	}
	js.WriteString(`]}`)
	u := &url.URL{Path: "/v1/txn"}
	for _, enc := range []struct {
		name, ct string
		body     []byte
	}{
		{"JSON", "application/json", js.Bytes()},
		{"Binary", ContentTypeTxn, AppendTxnBinary(nil, ops)},
	} {
		b.Run(enc.name, func(b *testing.B) {
			h, err := NewHandler(Config{Node: newFakeNode(1), Writer: &NoopWriter{}, Txn: &NoopWriter{},
				Metrics: metrics.New(RoleLeader)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(enc.body)))
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{header: http.Header{}}
				body := bytes.NewReader(enc.body)
				for pb.Next() {
					body.Reset(enc.body)
					r := &http.Request{Method: http.MethodPost, URL: u, RequestURI: u.Path,
						Header: http.Header{"Content-Type": {enc.ct}}, Body: io.NopCloser(body),
						ContentLength: int64(len(enc.body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
					clear(w.header)
					h.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
					}
				}
			})
			b.ReportMetric(float64(b.N*len(ops))/b.Elapsed().Seconds(), "keys/s")
		})
	}
}
