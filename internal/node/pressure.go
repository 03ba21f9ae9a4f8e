package node

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replikv/replikv/internal/journal"
)

const (
	// pressureEvery is how often a leader publishes its recent write latency (journal.Pressure) while it leads.
	pressureEvery = 250 * time.Millisecond
	// pressureStale is how old the last report may be before an adaptive pacer goes back to fixed pacing (the leader
	// is gone, or does not publish reports).
	pressureStale = 2 * time.Second
	// pressureBaseline is how many reports (10 s of them) the leader's baseline latency is the lowest p99 of.
	pressureBaseline = 40
	// pressureMinRise is the least rise of the leader's p99 over its baseline that an adaptive pacer yields to: below
	// it, doubling a p99 of a few hundred microseconds is noise, not load.
	pressureMinRise = time.Millisecond
	// latencyBuckets is the size of latencyWindow: quarter octaves from 1 µs, the last one open-ended (from about
	// 16.8 s).
	latencyBuckets = 97
)

// latencyWindow counts the leader's write latencies of the current report window, lock-free, in buckets of a
// quarter octave (about 19 %). take returns the window's count and p99 and starts the next window.
type latencyWindow struct {
	buckets [latencyBuckets]atomic.Uint64
}

// latencyBucket is the bucket of d: i holds [2^(i/4), 2^((i+1)/4)) µs, bucket 0 everything under 2^(1/4) µs.
func latencyBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	return min(int(4*math.Log2(us)), latencyBuckets-1)
}

// record counts one write that took d.
func (w *latencyWindow) record(d time.Duration) { w.buckets[latencyBucket(d)].Add(1) }

// take returns how many writes were recorded since the last take and their p99 (nearest rank, as the upper bound of
// its bucket; 0 without writes), and empties the window.
func (w *latencyWindow) take() (n uint64, p99 time.Duration) {
	var counts [latencyBuckets]uint64
	for i := range w.buckets {
		counts[i] = w.buckets[i].Swap(0)
		n += counts[i]
	}
	if n == 0 {
		return 0, 0
	}
	rank := n - n/100 // the ceil(0.99 n)-th latency
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return n, time.Duration(math.Exp2(float64(i+1)/4) * float64(time.Microsecond))
		}
	}
	return n, 0 // unreachable: seen reaches n
}

// leaderPressure holds the newest pressure report of the leader for a catch-up pacer: set by the report
// subscription's goroutine, read by the pacer's.
type leaderPressure struct {
	mu     sync.Mutex
	latest journal.Pressure
	at     time.Time // when it arrived, by the follower's clock (the leader's may differ)
	n      uint64    // reports taken so far
}

// observe takes report p, arrived at now. A report of an earlier epoch than the newest (a previous leader that does
// not know yet that it lost the lease) is ignored.
func (lp *leaderPressure) observe(p journal.Pressure, now time.Time) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.n > 0 && p.Epoch < lp.latest.Epoch {
		return
	}
	lp.latest, lp.at = p, now
	lp.n++
}

// get returns the newest report, when it arrived and how many reports were taken (0: none yet).
func (lp *leaderPressure) get() (journal.Pressure, time.Time, uint64) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.latest, lp.at, lp.n
}

// aimd is the adaptive part of a catch-up pacer: its rate grows by a quarter of the starting rate with every report
// in which the leader's write p99 stays within twice its baseline (the lowest p99 of the last pressureBaseline
// reports) or pressureMinRise of it, and halves, down to a quarter of the starting rate, with every report above. A
// report without writes means the leader is idle: nothing to yield to.
type aimd struct {
	start float64 // the starting rate, entries/s
	rate  float64
	idle  bool
	p99s  [pressureBaseline]time.Duration
	count int // reports in p99s
}

// maxAdaptiveRate caps the adaptive rate: far above what a follower applies, so in effect unpaced.
const maxAdaptiveRate = 1e7

func newAIMD(start float64) *aimd { return &aimd{start: start, rate: start} }

// adjust takes one report into account.
func (a *aimd) adjust(p journal.Pressure) {
	if p.Writes == 0 {
		a.idle = true
		return
	}
	a.idle = false
	a.p99s[a.count%pressureBaseline] = p.P99
	a.count++
	baseline := a.p99s[0]
	for _, d := range a.p99s[1:min(a.count, pressureBaseline)] {
		baseline = min(baseline, d)
	}
	if p.P99 > max(2*baseline, baseline+pressureMinRise) {
		a.rate = max(a.rate/2, a.start/4)
		return
	}
	a.rate = min(a.rate+a.start/4, maxAdaptiveRate)
}
