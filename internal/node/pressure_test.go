package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/journal"
)

func TestLatencyWindow(t *testing.T) {
	var w latencyWindow
	if n, p99 := w.take(); n != 0 || p99 != 0 {
		t.Fatalf("empty window: %d writes, p99 %v; want 0, 0", n, p99)
	}
	// 990 writes of 100 µs and 10 of 10 ms: the p99 is the 990th, 100 µs.
	for range 990 {
		w.record(100 * time.Microsecond)
	}
	for range 10 {
		w.record(10 * time.Millisecond)
	}
	n, p99 := w.take()
	if n != 1000 || p99 < 100*time.Microsecond || p99 > 120*time.Microsecond {
		t.Fatalf("take = %d writes, p99 %v; want 1000, 100 µs (to a bucket, +19%%)", n, p99)
	}
	// Of 1,001 writes the p99 is the 991st: with 11 slow ones, a slow one.
	for range 990 {
		w.record(100 * time.Microsecond)
	}
	for range 11 {
		w.record(10 * time.Millisecond)
	}
	if n, p99 := w.take(); n != 1001 || p99 < 10*time.Millisecond || p99 > 12*time.Millisecond {
		t.Fatalf("take = %d writes, p99 %v; want 1001, 10 ms", n, p99)
	}
	if n, _ := w.take(); n != 0 {
		t.Fatalf("take did not empty the window: %d", n)
	}
	for _, d := range []time.Duration{0, time.Nanosecond, time.Hour} {
		w.record(d) // the first and the last bucket
	}
	if n, _ := w.take(); n != 3 {
		t.Fatalf("extreme latencies: %d counted, want 3", n)
	}
}

func TestCatchUpPacer_Adaptive(t *testing.T) {
	ctx := context.Background()
	const floor = 1000
	newPacer := func() (*catchUpPacer, *fakeClock, *leaderPressure) {
		clk := &fakeClock{now: time.Unix(1000, 0)}
		lp := &leaderPressure{}
		p := newCatchUpPacer(floor, 100).withPressure(lp)
		p.now = func() time.Time { return clk.now }
		p.sleep = clk.sleep
		return p, clk, lp
	}
	// read reads n entries of a log that grows at 10 entries/s while report gives the leader's report of each
	// pressureEvery of the fake clock, and returns how long it took.
	read := func(p *catchUpPacer, clk *fakeClock, lp *leaderPressure, n int, report func(i int) journal.Pressure) time.Duration {
		start, next, i := clk.now, clk.now, 0
		for seq := uint64(1); seq <= uint64(n); seq++ {
			for !clk.now.Before(next) {
				lp.observe(report(i), clk.now)
				i++
				next = next.Add(pressureEvery)
			}
			last := 1_000_000 + uint64(10*clk.now.Sub(start).Seconds())
			if err := p.Wait(ctx, seq, last-seq); err != nil {
				t.Fatal(err)
			}
		}
		return clk.now.Sub(start)
	}
	busy := func(p99 time.Duration) func(int) journal.Pressure {
		return func(int) journal.Pressure {
			return journal.Pressure{Epoch: 3, Writes: 500, P99: p99, Window: pressureEvery}
		}
	}

	t.Run("LowLatencySpeedsUp", func(t *testing.T) {
		// The leader's p99 stays at 1 ms: the rate grows by 250/s with every report, so 20,000 entries take far less
		// than the 20 s of fixed pacing.
		p, clk, lp := newPacer()
		if d := read(p, clk, lp, 20000, busy(time.Millisecond)); d > 7*time.Second {
			t.Fatalf("20,000 entries took %v at a steady leader latency; want well under the fixed 20 s", d)
		}
	})
	t.Run("RisingLatencySlowsDown", func(t *testing.T) {
		// The p99 is 1 ms for 4 reports, then 20 ms: the rate halves with every report down to a quarter of
		// --catchup-rate, so after the rise 500 entries take about 2 s.
		p, clk, lp := newPacer()
		report := func(i int) journal.Pressure {
			if i < 4 {
				return busy(time.Millisecond)(i)
			}
			return busy(20 * time.Millisecond)(i)
		}
		read(p, clk, lp, 3000, report) // the rise comes within these
		if p.adaptive.rate != floor/4 {
			t.Fatalf("rate after a rise of the leader's p99: %v, want %v", p.adaptive.rate, floor/4)
		}
		if d := read(p, clk, lp, 500, busy(20*time.Millisecond)); d < 1900*time.Millisecond {
			t.Fatalf("500 entries took %v while the leader's p99 stays high; want about 2 s (250/s)", d)
		}
	})
	t.Run("IdleLeaderIsNotPaced", func(t *testing.T) {
		p, clk, lp := newPacer()
		idle := func(int) journal.Pressure { return journal.Pressure{Epoch: 3, Window: pressureEvery} }
		if d := read(p, clk, lp, 10000, idle); d > time.Millisecond {
			t.Fatalf("10,000 entries took %v while the leader reports no writes; want no pacing", d)
		}
	})
	t.Run("StaleReportsPaceAsFixed", func(t *testing.T) {
		// One report of an idle leader, then none: after pressureStale the pacer paces at --catchup-rate.
		p, clk, lp := newPacer()
		lp.observe(journal.Pressure{Epoch: 3, Window: pressureEvery}, clk.now)
		clk.now = clk.now.Add(pressureStale + time.Millisecond)
		start := clk.now
		for seq := uint64(1); seq <= 2000; seq++ {
			last := 1_000_000 + uint64(10*clk.now.Sub(start).Seconds())
			if err := p.Wait(ctx, seq, last-seq); err != nil {
				t.Fatal(err)
			}
		}
		if d := clk.now.Sub(start); d < 1990*time.Millisecond || d > 2010*time.Millisecond {
			t.Fatalf("2,000 entries took %v without fresh reports; want 2 s (1,000/s)", d)
		}
	})
	t.Run("OlderEpochIgnored", func(t *testing.T) {
		var lp leaderPressure
		now := time.Unix(1000, 0)
		lp.observe(journal.Pressure{Epoch: 5, Writes: 1, P99: time.Millisecond}, now)
		lp.observe(journal.Pressure{Epoch: 4}, now)
		if got, _, n := lp.get(); got.Epoch != 5 || n != 1 {
			t.Fatalf("after a report of an older leader: epoch %d, %d reports; want 5, 1", got.Epoch, n)
		}
	})
}

func TestAIMD(t *testing.T) {
	a := newAIMD(1000)
	report := func(p99 time.Duration) journal.Pressure {
		return journal.Pressure{Epoch: 1, Writes: 10, P99: p99, Window: pressureEvery}
	}
	for range 4 {
		a.adjust(report(2 * time.Millisecond))
	}
	if a.rate != 2000 {
		t.Fatalf("after 4 calm reports: %v, want 2000 (+250 each)", a.rate)
	}
	a.adjust(report(2500 * time.Microsecond)) // within baseline + 1 ms
	if a.rate != 2250 {
		t.Fatalf("after a small rise: %v, want 2250", a.rate)
	}
	a.adjust(report(5 * time.Millisecond)) // over twice the baseline of 2 ms
	if a.rate != 1125 {
		t.Fatalf("after a rise over twice the baseline: %v, want 1125", a.rate)
	}
	for range 5 {
		a.adjust(report(5 * time.Millisecond))
	}
	if a.rate != 250 {
		t.Fatalf("after more high reports: %v, want the floor of 250", a.rate)
	}
	// The baseline forgets after pressureBaseline reports: a leader whose latency stays at 5 ms is the new normal.
	for range pressureBaseline {
		a.adjust(report(5 * time.Millisecond))
	}
	before := a.rate
	a.adjust(report(5 * time.Millisecond))
	if a.rate <= before {
		t.Fatalf("a latency steady for %d reports still slows the pacer: %v after %v", pressureBaseline, a.rate, before)
	}
	a.adjust(journal.Pressure{Epoch: 1, Window: pressureEvery})
	if !a.idle {
		t.Fatal("a report without writes did not mark the leader idle")
	}
}

// The leader reports its write latency every pressureEvery while it leads: the writes of the window and their p99,
// with its epoch, and no writes while it takes none.
func TestLeader_PublishesPressure(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	st := waitState(t, url, stateReady, 20*time.Second)
	jc := connectJournal(t, l.NATSURL())
	reports := make(chan journal.Pressure, 1024)
	stop, err := jc.SubscribePressure(func(p journal.Pressure) {
		select {
		case reports <- p:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	next := func() journal.Pressure {
		t.Helper()
		select {
		case p := <-reports:
			if p.Epoch != st.Epoch || p.Window != pressureEvery {
				t.Fatalf("report %+v: want epoch %d, window %v", p, st.Epoch, pressureEvery)
			}
			return p
		case <-time.After(10 * pressureEvery):
			t.Fatal("no pressure report for 10 report windows")
		}
		return journal.Pressure{}
	}
	if p := next(); p.Writes != 0 || p.P99 != 0 {
		t.Fatalf("report of an idle leader: %+v, want no writes", p)
	}
	for i := range 20 {
		put(t, url, fmt.Sprintf("k%d", i), "v")
	}
	var writes uint64
	for deadline := time.Now().Add(5 * time.Second); writes < 20 && time.Now().Before(deadline); {
		p := next()
		if p.Writes > 0 && (p.P99 <= 0 || p.P99 > 30*time.Second) {
			t.Fatalf("report %+v: a p99 that no write of this test took", p)
		}
		writes += p.Writes
	}
	if writes != 20 {
		t.Fatalf("reports counted %d writes, want the 20 made", writes)
	}
}
