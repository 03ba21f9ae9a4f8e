package snapshots

import (
	"context"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
)

// pacer keeps the snapshot encoder to a share of one core, so that a snapshot taken on a busy leader leaves the
// write path its CPU. It works in slices: after every paceSlice of wall time spent encoding it sleeps long enough
// that encoding takes at most share of the elapsed time. A share outside (0, 1) turns pacing off.
//
// Work is measured in wall time, less the time the encoder spent blocked on the upload (waited): a slow disk or
// network must not be multiplied into long pauses. Wall time still over-counts the encoder's CPU when it is itself
// preempted, which only makes the pacer more polite.
type pacer struct {
	share   float64
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
	since   time.Time     // start of the current slice of work
	blocked time.Duration // time of the current slice spent waiting for the upload
	slept   time.Duration
}

// paceSlice is how long the encoder works before it may yield. Short slices keep the extra latency a write can see
// small (at most about one slice); long ones keep the timer cost negligible.
const paceSlice = 250 * time.Microsecond

func newPacer(share float64) *pacer {
	if !(share > 0 && share < 1) { // also NaN
		return nil
	}
	return &pacer{share: share, now: time.Now, sleep: ctxtime.Sleep}
}

// start begins the first slice.
func (p *pacer) start() {
	if p != nil {
		p.since = p.now()
	}
}

// tick is called between records (cheaply: the caller calls it every few records). When the current slice is used
// up it sleeps for the idle part of the duty cycle and starts the next slice.
func (p *pacer) tick(ctx context.Context) error {
	if p == nil {
		return nil
	}
	worked := p.now().Sub(p.since) - p.blocked
	if worked < paceSlice {
		return nil
	}
	idle := time.Duration(float64(worked) * (1 - p.share) / p.share)
	if err := p.sleep(ctx, idle); err != nil {
		return err
	}
	p.slept += idle
	p.since = p.now()
	p.blocked = 0
	return nil
}

// timeWrite runs write, a write to the upload, and counts the time it took as waiting rather than work.
func (p *pacer) timeWrite(write func() (int, error)) (int, error) {
	if p == nil {
		return write()
	}
	t0 := p.now()
	n, err := write()
	p.blocked += p.now().Sub(t0)
	return n, err
}
