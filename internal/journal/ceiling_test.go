package journal

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

const (
	benchBacklog = 500_000
	benchSize    = 128
)

func TestCeilings(t *testing.T) {
	e := startServer(t)
	ctx := testCtx(t)
	const n = 2000
	pub, err := PublishCeiling(ctx, e.ClientURL(), "CEIL", n, 64)
	if err != nil || pub <= 0 {
		t.Fatalf("PublishCeiling = %s, %v", pub, err)
	}
	c := connect(t, e.ClientURL(), "CEIL")
	info, err := c.Info(ctx)
	if err != nil || info.LastSeq != n {
		t.Fatalf("after PublishCeiling: %+v, %v", info, err)
	}
	if _, err := PublishCeiling(ctx, e.ClientURL(), "CEIL", 1, 64); err == nil {
		t.Fatal("PublishCeiling on a non-empty stream succeeded")
	}
	cons, err := ConsumeCeiling(ctx, e.ClientURL(), "CEIL", n)
	if err != nil || cons <= 0 {
		t.Fatalf("ConsumeCeiling = %s, %v", cons, err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := ConsumeCeiling(short, e.ClientURL(), "CEIL", n+1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ConsumeCeiling beyond the stream = %v, want deadline exceeded", err)
	}
}

// backlog starts a server holding a stream of benchBacklog entries of benchSize bytes.
func backlog(b *testing.B, stream string) *Embedded {
	b.Helper()
	e := startServer(b)
	if _, err := PublishCeiling(context.Background(), e.ClientURL(), stream, benchBacklog, benchSize); err != nil {
		b.Fatal(err)
	}
	return e
}

func reportRate(b *testing.B, msgs int, elapsed time.Duration) {
	b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPublishCeiling: bare PublishAsync pipelining with expected-last-seq on a fresh stream.
func BenchmarkPublishCeiling(b *testing.B) {
	e := startServer(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		d, err := PublishCeiling(context.Background(), e.ClientURL(), fmt.Sprintf("PUBCEIL%d", i), benchBacklog, benchSize)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	reportRate(b, b.N*benchBacklog, total)
}

// BenchmarkPublishAsync: the journal's publisher, one goroutine publishing and another waiting for acks in order.
// Each iteration also runs PublishCeiling right before, so x_ceiling compares the two under the same conditions.
func BenchmarkPublishAsync(b *testing.B) {
	e := startServer(b)
	data := make([]byte, benchSize)
	var total, ceiling time.Duration
	for i := 0; i < b.N; i++ {
		d, err := PublishCeiling(context.Background(), e.ClientURL(), fmt.Sprintf("PUBC%d", i), benchBacklog, benchSize)
		if err != nil {
			b.Fatal(err)
		}
		ceiling += d
		c := connectStream(b, e.ClientURL(), fmt.Sprintf("PUBJ%d", i))
		total += publishAll(b, c, data)
		c.Close()
	}
	reportRate(b, b.N*benchBacklog, total)
	b.ReportMetric(ceiling.Seconds()/total.Seconds(), "x_ceiling")
}

func publishAll(b *testing.B, c *Conn, data []byte) time.Duration {
	ctx := context.Background()
	acks := make(chan *Ack, maxPendingAcks)
	start := time.Now()
	go func() {
		defer close(acks)
		for s := range uint64(benchBacklog) {
			a, err := c.PublishAsync(ctx, data, s, "")
			if err != nil {
				b.Error(err)
				return
			}
			acks <- a
		}
	}()
	var n int
	for a := range acks {
		if _, err := a.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	elapsed := time.Since(start)
	if n != benchBacklog {
		b.Fatalf("acked %d", n)
	}
	return elapsed
}

// BenchmarkConsumeCeiling: a bare ordered consumer draining the backlog.
func BenchmarkConsumeCeiling(b *testing.B) {
	e := backlog(b, "CONS")
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		d, err := ConsumeCeiling(context.Background(), e.ClientURL(), "CONS", benchBacklog)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	reportRate(b, b.N*benchBacklog, total)
}

// BenchmarkSubscribe: the journal's Subscription draining the same backlog, receiving every Msg from C. Each
// iteration also runs ConsumeCeiling right before, so x_ceiling compares the two under the same conditions.
func BenchmarkSubscribe(b *testing.B) {
	e := backlog(b, "CONS")
	c := connect(b, e.ClientURL(), "CONS")
	b.ResetTimer()
	var total, ceiling time.Duration
	for i := 0; i < b.N; i++ {
		d, err := ConsumeCeiling(context.Background(), e.ClientURL(), "CONS", benchBacklog)
		if err != nil {
			b.Fatal(err)
		}
		ceiling += d
		start := time.Now()
		s, err := c.Subscribe(context.Background(), 1, 4096)
		if err != nil {
			b.Fatal(err)
		}
		for m := range s.C() {
			if m.Seq == benchBacklog {
				break
			}
		}
		total += time.Since(start)
		s.Stop()
	}
	reportRate(b, b.N*benchBacklog, total)
	b.ReportMetric(ceiling.Seconds()/total.Seconds(), "x_ceiling")
}
