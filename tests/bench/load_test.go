//go:build bench

package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replikv/replikv/internal/testutil/httpload"
)

// writer performs one write; each worker of a paced load owns one.
type writer interface {
	write(key string, value []byte) error
	// serverTiming is how long the server said it spent on the last write (0 if it does not say).
	serverTiming() time.Duration
	close()
}

// httpWriter writes to a replikv leader.
type httpWriter struct{ c *httpload.PutConn }

func (w httpWriter) write(key string, value []byte) error { return w.c.Put(key, value) }
func (w httpWriter) serverTiming() time.Duration          { return w.c.ServerTiming() }
func (w httpWriter) close()                               { w.c.Close() }

// sample is one write of a paced load: its scheduled time, its latency measured from that time, and how late the
// load generator issued it beyond that time and the end of the worker's previous write: the generator's own delay
// (scheduling, timers), which is part of lat but not the server's doing. A write queued behind a slow previous one
// is late too, but that wait is the server's and not counted here.
type sample struct {
	at   time.Time
	lat  time.Duration
	late time.Duration
	srv  time.Duration // how long the server said it spent on the write (Server-Timing); 0 if it did not say
}

// pacedLoad is an open-loop write load: each worker issues writes on a fixed schedule, and a write's latency counts
// from its scheduled time, so that a stall of the server shows in full instead of merely delaying later requests
// (no coordinated omission). It owns its workers; stop ends and joins them.
type pacedLoad struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	writers []writer
	samples [][]sample // one slice per worker, owned by it until stop
	errs    []error    // the first error of each worker
	// late is, per worker, whether it sent its latest write after the write's scheduled time (see onSchedule).
	late []atomic.Bool
}

// startLiveLoad dials -bench.livewriters writers with dial and starts the live write load over them: liveRate
// writes/s in all, with values of valueSize bytes. If a dial fails, it closes the writers dialled before.
func startLiveLoad(ctx context.Context, dial func(context.Context) (writer, error), prefix string,
	valueSize int) (*pacedLoad, error) {
	ws := make([]writer, 0, *flagLiveWriters)
	for range *flagLiveWriters {
		w, err := dial(ctx)
		if err != nil {
			for _, w := range ws {
				w.close()
			}
			return nil, err
		}
		ws = append(ws, w)
	}
	return startPacedLoad(ctx, ws, liveRate/float64(len(ws)), prefix, valueSize), nil
}

// startPacedLoad starts one worker per writer, each writing perSecond distinct keys (prefix-<worker>-<i>) per second
// with random values of valueSize bytes, the workers' schedules staggered evenly.
func startPacedLoad(ctx context.Context, ws []writer, perSecond float64, prefix string, valueSize int) *pacedLoad {
	ctx, cancel := context.WithCancel(ctx)
	p := &pacedLoad{cancel: cancel, writers: ws, samples: make([][]sample, len(ws)), errs: make([]error, len(ws)),
		late: make([]atomic.Bool, len(ws))}
	interval := time.Duration(float64(time.Second) / perSecond)
	begin := time.Now()
	for w := range ws {
		p.wg.Go(func() {
			next := begin.Add(time.Duration(w) * interval / time.Duration(len(ws)))
			vals := newValues(uint64(1000+w), valueSize)
			timer := time.NewTimer(0)
			defer timer.Stop()
			var prevEnd time.Time
			for i := 0; ; i++ {
				d := time.Until(next)
				p.late[w].Store(d <= 0)
				if d > 0 {
					timer.Reset(d)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				} else if ctx.Err() != nil {
					return
				}
				late := time.Since(later(next, prevEnd))
				err := ws[w].write(fmt.Sprintf("%s-%d-%d", prefix, w, i), vals.next())
				prevEnd = time.Now()
				if err != nil {
					if ctx.Err() == nil && p.errs[w] == nil {
						p.errs[w] = err
					}
					return
				}
				p.samples[w] = append(p.samples[w], sample{at: next, lat: prevEnd.Sub(next), late: late,
					srv: ws[w].serverTiming()})
				next = next.Add(interval)
			}
		})
	}
	return p
}

// onSchedule reports whether every worker sent its latest write at the write's scheduled time, not after it: false
// while the server is still working off writes that a stall held up.
func (p *pacedLoad) onSchedule() bool {
	for i := range p.late {
		if p.late[i].Load() {
			return false
		}
	}
	return true
}

// stop ends the load, waits for the workers, closes the writers, and returns every sample in schedule order and the
// first write error, if any. It may be called once.
func (p *pacedLoad) stop() ([]sample, error) {
	p.cancel()
	for _, w := range p.writers {
		w.close() // unblocks a write in progress
	}
	p.wg.Wait()
	var all []sample
	for _, s := range p.samples {
		all = append(all, s...)
	}
	slices.SortFunc(all, func(a, b sample) int { return a.at.Compare(b.at) })
	for _, err := range p.errs {
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// window is a time interval [from, to).
type window struct{ from, to time.Time }

func (w window) dur() time.Duration { return w.to.Sub(w.from) }

// latencies returns the latencies of the samples scheduled inside any of the windows.
func latencies(samples []sample, ws ...window) []time.Duration {
	return inAny(samples, ws, func(s sample) time.Duration { return s.lat })
}

// serverTimes returns what the server said it spent on the samples scheduled inside any of the windows, leaving out
// writes it said nothing of.
func serverTimes(samples []sample, ws ...window) []time.Duration {
	all := inAny(samples, ws, func(s sample) time.Duration { return s.srv })
	return slices.DeleteFunc(all, func(d time.Duration) bool { return d == 0 })
}

// lateness returns how late the load generator issued the samples scheduled inside any of the windows.
func lateness(samples []sample, ws ...window) []time.Duration {
	return inAny(samples, ws, func(s sample) time.Duration { return s.late })
}

// inAny returns field of each sample scheduled inside any of ws.
func inAny(samples []sample, ws []window, field func(sample) time.Duration) []time.Duration {
	var out []time.Duration
	for _, s := range samples {
		if inWindows(s.at, ws) {
			out = append(out, field(s))
		}
	}
	return out
}

// inWindows reports whether t is inside one of ws (each from inclusive, to exclusive).
func inWindows(t time.Time, ws []window) bool {
	for _, w := range ws {
		if !t.Before(w.from) && t.Before(w.to) {
			return true
		}
	}
	return false
}
