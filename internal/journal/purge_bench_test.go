package journal

import (
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/replikv/replikv/internal/ctxtime"
)

var purgeEntries = flag.Int("purge.entries", 1_000_000, "BenchmarkPurgeStall: log entries purged")

// BenchmarkPurgeStall measures what log compaction costs the log's writer: a publisher at 2,000 entries/s (as in
// BenchmarkPublishP99_CatchUpReaders) while -purge.entries entries of 200 bytes are purged, by the server in one
// request (OneRequest, what replikv did before, and the least server work) or by Conn.Purge in steps (Steps). Before
// the purge it waits for the server to drop the blocks' subject state (after 2 idle minutes), as it has in a leader's
// log by the time a snapshot is compacted. Reported: the longest publish (max-ms) and the p99 while purging, the
// idle p99 of the minute before, and how long the purge took; Steps also reports its longest publish over
// OneRequest's (max_vs_one_request). Run with -benchtime 1x; each case takes 2.5 minutes.
func BenchmarkPurgeStall(b *testing.B) {
	var oneRequestMax time.Duration
	for _, name := range []string{"OneRequest", "Steps"} {
		b.Run(name, func(b *testing.B) {
			n := uint64(*purgeEntries)
			c := backlogConn(b, "PG", int(n), 200)
			ctx := b.Context()
			keep := n - 1000
			for b.Loop() {
				p := startPublisher(b, c)
				idle := sleepWindow(ctx, 70*time.Second, 60*time.Second)
				t1 := time.Now()
				var err error
				if name == "OneRequest" {
					var s jetstream.Stream
					if s, err = c.jetStream().Stream(ctx, "PG"); err == nil {
						err = s.Purge(ctx, jetstream.WithPurgeSequence(keep))
					}
				} else {
					_, err = c.Purge(ctx, keep)
				}
				t2 := time.Now()
				_ = ctxtime.Sleep(ctx, time.Second)
				samples, perr := p.stop()
				if err != nil || perr != nil {
					b.Fatal(err, perr)
				}
				// A publish stalled by the purge is sent before t2 and answered after it.
				busy := latenciesIn(samples, [2]time.Time{t1, t2})
				if len(busy) == 0 {
					b.Fatal("no publish while purging")
				}
				idleLat := latenciesIn(samples, idle)
				b.ReportMetric(float64(slices.Max(busy))/1e6, "max-ms")
				if name == "OneRequest" {
					oneRequestMax = slices.Max(busy)
				} else if oneRequestMax > 0 {
					b.ReportMetric(float64(slices.Max(busy))/float64(oneRequestMax), "max_vs_one_request")
				}
				b.ReportMetric(float64(p99(busy))/1e6, "p99-ms")
				b.ReportMetric(float64(p99(idleLat))/1e6, "idle-p99-ms")
				b.ReportMetric(t2.Sub(t1).Seconds()*1e3, "purge-ms")
				b.Logf("%s: purged %d entries in %v; publishes while purging: max %v, p99 %v (%d); idle p99 %v",
					name, keep-1, t2.Sub(t1).Round(time.Millisecond), slices.Max(busy), p99(busy), len(busy), p99(idleLat))
			}
		})
	}
}
