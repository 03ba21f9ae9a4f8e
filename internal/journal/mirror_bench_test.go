package journal

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
)

// BenchmarkPublishP99_CatchUpReaders measures what catch-up reads cost the log's writer: a publisher at 2,000
// entries/s (pipelined as the leader does, see startPublisher; latency counted from each entry's scheduled time)
// against three unpaced subscriptions reading a 300,000-entry backlog, from the log itself (Log) or
// from its catch-up mirror (Mirror). x_vs_idle is the publish p99 while they read over the p99 of 10 s idle windows
// before and after, median of the rounds.
func BenchmarkPublishP99_CatchUpReaders(b *testing.B) {
	const (
		backlog = 300_000
		readers = 3
	)
	for _, mirror := range []bool{false, true} {
		name := "Log"
		if mirror {
			name = "Mirror"
		}
		b.Run(name, func(b *testing.B) {
			c := backlogConn(b, "P99", backlog, benchSize)
			ctx := b.Context()
			var opts []SubscribeOption
			if mirror {
				if err := c.EnsureCatchUpMirror(ctx); err != nil {
					b.Fatal(err)
				}
				opts = append(opts, FromCatchUpMirror())
				waitMirrorFor(b, c, backlog, time.Minute)
			}
			var ratios []float64
			for b.Loop() {
				p := startPublisher(b, c)
				idleA := sleepWindow(ctx, 2*time.Second, 10*time.Second)
				t1 := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, readers)
				for i := range readers {
					wg.Go(func() { errs[i] = drain(ctx, c, backlog, opts...) })
				}
				wg.Wait()
				t2 := time.Now()
				idleB := sleepWindow(ctx, 0, 10*time.Second)
				samples, err := p.stop()
				if err != nil {
					b.Fatal(err)
				}
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				idle := latenciesIn(samples, idleA, idleB)
				busy := latenciesIn(samples, [2]time.Time{t1, t2})
				i99, b99 := p99(idle), p99(busy)
				ratios = append(ratios, float64(b99)/float64(i99))
				b.Logf("%s: reads took %v; publish p99 %v while reading, %v idle", name, t2.Sub(t1).Round(time.Millisecond), b99, i99)
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "x_vs_idle")
		})
	}
}

// backlogConn starts an embedded server whose stream holds n entries of size bytes (written with the raw publish
// ceiling) and returns a Conn to it.
func backlogConn(b *testing.B, stream string, n, size int) *Conn {
	b.Helper()
	e := startServer(b)
	if _, err := PublishCeiling(context.Background(), e.ClientURL(), stream, n, size); err != nil {
		b.Fatal(err)
	}
	return connect(b, e.ClientURL(), stream)
}

// drain reads entries 1..n with a subscription.
func drain(ctx context.Context, c *Conn, n uint64, opts ...SubscribeOption) error {
	sub, err := c.Subscribe(ctx, 1, 0, opts...)
	if err != nil {
		return err
	}
	defer sub.Stop()
	for {
		select {
		case m, ok := <-sub.C():
			if !ok {
				return sub.Err()
			}
			if m.Seq >= n {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type pubSample struct {
	at  time.Time
	lat time.Duration
}

// publisher publishes entries at 2,000/s as the leader's pipeline does: one goroutine sends each entry at its
// scheduled time with the expected last sequence, without waiting for acks, and another awaits the acks in order.
type publisher struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	samples []pubSample
	err     error
	stopErr func() error // the sender's error, read after wg.Wait
}

// startPublisher starts a publisher at the log's current end; it stops with the benchmark's context or stop.
func startPublisher(b *testing.B, c *Conn) *publisher {
	b.Helper()
	info, err := c.Info(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	last := info.LastSeq
	ctx, cancel := context.WithCancel(b.Context())
	p := &publisher{cancel: cancel}
	type pending struct {
		at  time.Time
		ack *Ack
	}
	acks := make(chan pending, maxPendingAcks)
	data := make([]byte, benchSize)
	var sendErr error
	p.wg.Go(func() {
		defer close(acks)
		t0 := time.Now()
		for i := 0; ; i++ {
			at := t0.Add(time.Duration(i) * 500 * time.Microsecond)
			if d := time.Until(at); d > 0 {
				_ = ctxtime.Sleep(ctx, d) // a stop is seen below
			}
			if ctx.Err() != nil {
				return
			}
			a, err := c.PublishAsync(ctx, data, last, "")
			if err != nil {
				if ctx.Err() == nil {
					sendErr = err
				}
				return
			}
			last++
			acks <- pending{at, a}
		}
	})
	p.wg.Go(func() {
		for pa := range acks {
			if _, err := pa.ack.Wait(context.Background()); err != nil {
				if p.err == nil {
					p.err = err
				}
				continue
			}
			p.samples = append(p.samples, pubSample{pa.at, time.Since(pa.at)})
		}
	})
	p.stopErr = func() error { return sendErr }
	return p
}

func (p *publisher) stop() ([]pubSample, error) {
	p.cancel()
	p.wg.Wait()
	if err := p.stopErr(); err != nil {
		return nil, err
	}
	return p.samples, p.err
}

// sleepWindow waits settle, then returns the window of the next d (cut short if ctx ends).
func sleepWindow(ctx context.Context, settle, d time.Duration) [2]time.Time {
	_ = ctxtime.Sleep(ctx, settle)
	from := time.Now()
	_ = ctxtime.Sleep(ctx, d)
	return [2]time.Time{from, time.Now()}
}

func latenciesIn(samples []pubSample, ws ...[2]time.Time) []time.Duration {
	var out []time.Duration
	for _, s := range samples {
		for _, w := range ws {
			if !s.at.Before(w[0]) && s.at.Before(w[1]) {
				out = append(out, s.lat)
				break
			}
		}
	}
	return out
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[(len(s)-1)*99/100]
}
