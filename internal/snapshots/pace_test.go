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

	// Time spent waiting for the upload is not work: a slice of which most went to waiting goes on.
	if _, err := p.timeWrite(func() (int, error) { now = now.Add(10 * paceSlice); return 0, nil }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(paceSlice / 4) // with the half slice above: three quarters of a slice of work
	if err := p.tick(ctx); err != nil || len(sleeps) != 1 {
		t.Fatalf("tick after waiting for the upload: %v, slept %v", err, sleeps)
	}
	now = now.Add(paceSlice / 2) // 1.25 slices of work in 11.25 slices of wall time
	if err := p.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if want := 3 * paceSlice * 5 / 4; len(sleeps) != 2 || sleeps[1] != want {
		t.Fatalf("slept %v, want %v after the first pause", sleeps, want)
	}
	if n, err := nilPacer.timeWrite(func() (int, error) { return 3, nil }); n != 3 || err != nil {
		t.Fatalf("unpaced timeWrite = %d, %v", n, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p.sleep = ctxtime.Sleep
	now = now.Add(paceSlice)
	if err := p.tick(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("tick with a cancelled context = %v, want context.Canceled", err)
	}
}
