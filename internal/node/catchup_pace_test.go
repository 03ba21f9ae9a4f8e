package node

import (
	"context"
	"testing"
	"time"
)

// fakeClock drives a catchUpPacer: sleeping advances the clock.
type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

func TestCatchUpPacer(t *testing.T) {
	if p := newCatchUpPacer(0, 100); p != nil {
		t.Fatalf("rate 0 gives %+v, want nil (unpaced)", p)
	}
	ctx := context.Background()
	newPacer := func(rate float64, slack uint64) (*catchUpPacer, *fakeClock) {
		clk := &fakeClock{now: time.Unix(1000, 0)}
		p := newCatchUpPacer(rate, slack)
		p.now = func() time.Time { return clk.now }
		p.sleep = clk.sleep
		return p, clk
	}

	t.Run("PacesTheBacklog", func(t *testing.T) {
		// The leader takes a few writes (10/s): the backlog is read at the configured 1,000/s.
		p, clk := newPacer(1000, 100)
		start := clk.now
		for seq := uint64(1); seq <= 5000; seq++ {
			last := 10000 + uint64(10*clk.now.Sub(start).Seconds())
			if err := p.Wait(ctx, seq, last-seq); err != nil {
				t.Fatal(err)
			}
		}
		// 5,000 entries at 1,000/s: about 5 s, never faster.
		if d := clk.now.Sub(start); d < 4990*time.Millisecond || d > 5010*time.Millisecond {
			t.Fatalf("5,000 entries took %v, want about 5s", d)
		}
	})

	t.Run("IdleLogIsNotPaced", func(t *testing.T) {
		// Nobody writes: after one measuring window of no growth the backlog is read unpaced, and pacing comes back
		// within a window of the log growing again.
		p, clk := newPacer(1000, 100)
		start := clk.now
		seq := uint64(0)
		for ; seq < 5000; seq++ {
			if err := p.Wait(ctx, seq+1, 10000-seq-1); err != nil {
				t.Fatal(err)
			}
		}
		// The first window (0.5 s, 500 entries) is paced: the pacer cannot know yet that the log is idle.
		if d := clk.now.Sub(start); d > 600*time.Millisecond {
			t.Fatalf("5,000 entries of an idle log took %v, want about 0.5s", d)
		}
		resumed, sleptBefore := clk.now, clk.slept
		for ; seq < 8000; seq++ {
			clk.now = clk.now.Add(500 * time.Microsecond) // applying takes time: 2,000 entries/s unpaced
			last := 10000 + uint64(100*clk.now.Sub(resumed).Seconds()) + 1
			if err := p.Wait(ctx, seq+1, last-seq-1); err != nil {
				t.Fatal(err)
			}
		}
		// With writes again the pacer notices within a window (0.5 s, 1,000 entries) and reads at 1,000/s instead of
		// 2,000/s: the other 2,000 entries wait about 0.5 ms each.
		if slept := clk.slept - sleptBefore; slept < 800*time.Millisecond {
			t.Fatalf("3,000 entries of a growing log slept %v, want about 1s", slept)
		}
	})

	t.Run("CaughtUpIsNotPaced", func(t *testing.T) {
		p, clk := newPacer(1000, 100)
		for seq := uint64(1); seq <= 5000; seq++ {
			if err := p.Wait(ctx, seq, 100); err != nil { // within the slack
				t.Fatal(err)
			}
		}
		if clk.slept != 0 {
			t.Fatalf("slept %v within the ready lag", clk.slept)
		}
	})

	t.Run("KeepsUpWithAFastLog", func(t *testing.T) {
		// The log grows by 3,000 entries/s, faster than the configured 1,000: the pacer must read at about twice
		// the growth, or the follower would never catch up.
		p, clk := newPacer(1000, 100)
		start := clk.now
		seq, last := uint64(0), uint64(20000)
		for seq < last-100 {
			seq++
			last = 20000 + uint64(3000*clk.now.Sub(start).Seconds())
			if err := p.Wait(ctx, seq, last-seq); err != nil {
				t.Fatal(err)
			}
			if clk.now.Sub(start) > time.Minute {
				t.Fatalf("not caught up after a minute: at %d of %d", seq, last)
			}
		}
		// Reading at ~6,000/s against a growth of 3,000/s, 20,000 entries of backlog take about 7 s.
		if d := clk.now.Sub(start); d > 12*time.Second {
			t.Fatalf("caught up after %v, want well under 12s", d)
		}
	})

	t.Run("NoCreditForIdleTime", func(t *testing.T) {
		p, clk := newPacer(1000, 0)
		start := clk.now
		if err := p.Wait(ctx, 1, 5000); err != nil {
			t.Fatal(err)
		}
		clk.now = clk.now.Add(10 * time.Second) // nothing arrived for a while; the log grew meanwhile
		before := clk.slept
		for seq := uint64(2); seq <= 101; seq++ {
			last := 5001 + uint64(10*clk.now.Sub(start).Seconds())
			if err := p.Wait(ctx, seq, last-seq); err != nil {
				t.Fatal(err)
			}
		}
		if got := clk.slept - before; got < 95*time.Millisecond {
			t.Fatalf("100 entries after an idle spell slept %v, want about 100ms (no burst)", got)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		p := newCatchUpPacer(1, 0)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = p.Wait(cctx, 1, 10) // the first entry is due at once
		if err := p.Wait(cctx, 2, 10); err == nil {
			t.Fatal("Wait with a cancelled context returned nil, want its error")
		}
	})
}
