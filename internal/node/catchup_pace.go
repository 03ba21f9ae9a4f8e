package node

import (
	"context"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
)

// catchUpPacer paces a follower's reads of the log while it is catching up, so that followers onboarding at once do
// not take the log server away from the leader's writes: catch-up reads and the leader's appends are served by the
// same stream in the same server, one after the other. It implements journal.Pacer.
//
// While more than slack entries are pending and the log grows (the leader takes writes) it lets entries through at
// rate entries/s, raised to twice the log's own growth when the log grows faster, so a follower always catches up.
// It does not pace at all within slack of the end (caught up), nor after a whole measuring window in which the log
// did not grow: with no writes there is nothing to yield to, and the follower reads as fast as it can until the log
// grows again (noticed within a window). Unused time earns no credit: after a pause the rate starts over instead of
// bursting.
//
// An adaptive pacer (withPressure) paces against the leader's own write latency instead, as long as the leader's
// pressure reports arrive (the newest at most pressureStale old): at a rate that aimd raises while the leader's p99
// stays near its baseline and halves when it rises, never below twice the log's growth, and unpaced while the leader
// reports no writes. Without reports it paces as above.
type catchUpPacer struct {
	floor float64 // entries/s while catching up
	slack uint64
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	next     time.Time // when the next paced entry is due
	growthAt time.Time // start of the current growth measurement
	growthN  uint64    // the log's last sequence at growthAt
	growth   float64   // the log's growth in entries/s, as last measured
	idle     bool      // the last whole window saw the log not grow

	pressure *leaderPressure // the leader's reports; nil for fixed pacing
	adaptive *aimd
	seen     uint64 // the reports adaptive has taken into account

	// onRate, when set, is told the rate Wait paces at (-1: unpaced) whenever it changes.
	onRate   func(float64)
	lastRate float64
}

const (
	// pacerMinSleep batches short waits into one timer; pacerGrowthWindow is the log growth's measuring window.
	pacerMinSleep     = time.Millisecond
	pacerGrowthWindow = 500 * time.Millisecond
)

// newCatchUpPacer returns a pacer at rate entries/s, or nil (unpaced) for rate <= 0.
func newCatchUpPacer(rate float64, slack uint64) *catchUpPacer {
	if rate <= 0 {
		return nil
	}
	return &catchUpPacer{floor: rate, slack: slack, now: time.Now, sleep: ctxtime.Sleep}
}

// withPressure makes p adaptive: it paces against the reports lp receives (see catchUpPacer).
func (p *catchUpPacer) withPressure(lp *leaderPressure) *catchUpPacer {
	p.pressure, p.adaptive = lp, newAIMD(p.floor)
	return p
}

// rate returns the rate to read at now, or unpaced.
func (p *catchUpPacer) rate(now time.Time) (rate float64, unpaced bool) {
	if p.pressure != nil {
		rep, at, n := p.pressure.get()
		if n > 0 && now.Sub(at) <= pressureStale {
			if n != p.seen {
				p.seen = n
				p.adaptive.adjust(rep)
			}
			if p.adaptive.idle || p.idle {
				return 0, true
			}
			return max(p.adaptive.rate, 2*p.growth), false
		}
	}
	if p.idle {
		return 0, true
	}
	return max(p.floor, 2*p.growth), false
}

// Wait implements journal.Pacer.
func (p *catchUpPacer) Wait(ctx context.Context, seq, pending uint64) error {
	now := p.now()
	p.observe(now, seq+pending)
	rate, unpaced := p.rate(now)
	unpaced = unpaced || pending <= p.slack
	if p.onRate != nil {
		shown := rate
		if unpaced {
			shown = -1
		}
		if shown != p.lastRate {
			p.lastRate = shown
			p.onRate(shown)
		}
	}
	if unpaced {
		p.next = time.Time{}
		return nil
	}
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(time.Second) / rate))
	if d := p.next.Sub(now); d >= pacerMinSleep {
		return p.sleep(ctx, d)
	}
	return nil
}

// observe measures the log's growth from its last sequence (seq + pending of the entry being delivered).
func (p *catchUpPacer) observe(now time.Time, last uint64) {
	if p.growthAt.IsZero() || last < p.growthN { // first entry, or the stream was reset
		p.growthAt, p.growthN = now, last
		return
	}
	if dt := now.Sub(p.growthAt); dt >= pacerGrowthWindow {
		p.growth = float64(last-p.growthN) / dt.Seconds()
		p.idle = last == p.growthN
		p.growthAt, p.growthN = now, last
	}
}
