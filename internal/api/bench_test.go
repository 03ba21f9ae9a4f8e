package api

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

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
