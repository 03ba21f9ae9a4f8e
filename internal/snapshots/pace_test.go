package snapshots

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
)

func TestPacer(t *testing.T) {
	for _, share := range []float64{0, -1, 1, 2, math.NaN()} {
		if p := newPacer(share); p != nil {
			t.Fatalf("newPacer(%v) = %+v, want nil (unpaced)", share, p)
		}
	}
	var nilPacer *pacer
	nilPacer.start()
	if err := nilPacer.tick(context.Background()); err != nil {
		t.Fatalf("unpaced tick = %v", err)
	}

	now := time.Unix(0, 0)
	var sleeps []time.Duration
	p := newPacer(0.25)
	p.now = func() time.Time { return now }
	p.sleep = func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		now = now.Add(d)
		return nil
	}
	p.start()
	ctx := context.Background()
	now = now.Add(paceSlice / 2)
	if err := p.tick(ctx); err != nil || len(sleeps) != 0 {
		t.Fatalf("tick inside the slice: %v, slept %v", err, sleeps)
	}
	now = now.Add(paceSlice) // 1.5 slices of work
	if err := p.tick(ctx); err != nil {
		t.Fatal(err)
	}
	// share 0.25: three times the work is spent idle.
	if want := []time.Duration{3 * paceSlice * 3 / 2}; len(sleeps) != 1 || sleeps[0] != want[0] {
		t.Fatalf("slept %v, want %v", sleeps, want)
	}
	// The next slice starts after the sleep.
	now = now.Add(paceSlice / 2)
	if err := p.tick(ctx); err != nil || len(sleeps) != 1 {
		t.Fatalf("tick right after a pause: %v, slept %v", err, sleeps)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p.sleep = ctxtime.Sleep
	now = now.Add(paceSlice)
	if err := p.tick(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("tick with a cancelled context = %v, want context.Canceled", err)
	}
}
