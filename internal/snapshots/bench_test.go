package snapshots

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"
)

// plainSize is the plaintext size of a genSource (header and trailer aside), for MB/s figures.
func plainSize(g *genSource) int64 {
	perKey := 1 + 1 + len("key/000000000000") + 2 + g.valueLen + 2
	return int64(g.n * perKey)
}

// peakHeap samples the heap in use until stop is called, and returns the peak in MiB.
func peakHeap() (stop func() float64) {
	var (
		wg   sync.WaitGroup
		peak uint64
		done = make(chan struct{})
	)
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(peak) / (1 << 20)
	}
}

// BenchmarkRepo_CreateRestore measures a full snapshot cycle through a file store: Create (encode, zstd, SHA-256,
// fsync) and Restore (download, verify, decode) into a sink that only counts. MB/s is plaintext; peak-heap-MiB shows
// memory stays bounded whatever the snapshot size (raise n to check with gigabytes).
func BenchmarkRepo_CreateRestore(b *testing.B) {
	for _, random := range []bool{false, true} {
		src := &genSource{seq: 1 << 30, n: 500_000, valueLen: 128, random: random}
		b.Run(fmt.Sprintf("Random=%v", random), func(b *testing.B) {
			store, err := Open("file://"+b.TempDir(), S3Config{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			if err := store.Init(ctx, true); err != nil {
				b.Fatal(err)
			}
			r := NewRepo(store, testStream, zap.NewNop())
			b.SetBytes(plainSize(src))
			var createTime, restoreTime time.Duration
			var m Manifest
			stop := peakHeap()
			for b.Loop() {
				if err := store.Delete(ctx, manifestKey(testStream, src.seq)); err != nil { // force a new upload
					b.Fatal(err)
				}
				t0 := time.Now()
				if m, err = r.Create(ctx, src, "bench"); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				var n int
				if err := r.Restore(ctx, m, funcSink(func([]byte, []byte, uint64) error { n++; return nil }), nil); err != nil {
					b.Fatal(err)
				}
				restoreTime += time.Since(t1)
				createTime += t1.Sub(t0)
				if n != src.n {
					b.Fatalf("restored %d keys, want %d", n, src.n)
				}
			}
			peak := stop()
			mb := float64(plainSize(src)) * float64(b.N) / (1 << 20)
			b.ReportMetric(mb/createTime.Seconds(), "create-MB/s")
			b.ReportMetric(mb/restoreTime.Seconds(), "restore-MB/s")
			b.ReportMetric(float64(plainSize(src))/float64(m.Bytes), "ratio")
			b.ReportMetric(peak, "peak-heap-MiB")
		})
	}
}

// BenchmarkZstdLevel compares the encoder levels Create could use on snapshot plaintext (compressible and random
// values); it backs the choice in newZstdWriter.
func BenchmarkZstdLevel(b *testing.B) {
	for _, random := range []bool{false, true} {
		src := &genSource{seq: 1 << 30, n: 200_000, valueLen: 128, random: random}
		var plain bytes.Buffer
		enc, err := NewEncoder(&plain, src.seq)
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Iterate(enc.Add); err != nil {
			b.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
		for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
			b.Run(fmt.Sprintf("Random=%v/%s", random, level), func(b *testing.B) {
				b.SetBytes(int64(plain.Len()))
				var out int64
				for b.Loop() {
					cw := &countWriter{}
					zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(2),
						zstd.WithWindowSize(zstdWindow))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(zw, bytes.NewReader(plain.Bytes())); err != nil {
						b.Fatal(err)
					}
					if err := zw.Close(); err != nil {
						b.Fatal(err)
					}
					out = cw.n
				}
				b.ReportMetric(float64(plain.Len())/float64(out), "ratio")
			})
		}
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
