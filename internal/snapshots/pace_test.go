package snapshots

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

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
	if _, err := p.timeIO(func() (int, error) { now = now.Add(10 * paceSlice); return 0, nil }); err != nil {
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
	if n, err := nilPacer.timeIO(func() (int, error) { return 3, nil }); n != 3 || err != nil {
		t.Fatalf("unpaced timeIO = %d, %v", n, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p.sleep = ctxtime.Sleep
	now = now.Add(paceSlice)
	if err := p.tick(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("tick with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestRepo_RestorePaced checks that WithRestoreCPU paces Restore: at half a core, a restore whose sink does real work
// pauses for about as long as it works, and an unpaced one never pauses. Both restore every record.
func TestRepo_RestorePaced(t *testing.T) {
	ctx := context.Background()
	st, err := Open("file://"+filepath.Join(t.TempDir(), "root"), S3Config{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	r0 := NewRepo(st, testStream, zap.New(core))
	src := &genSource{seq: 10, n: 20000, valueLen: 64, random: true}
	m, err := r0.Create(ctx, src, "leader-1")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	// The sink's work: each Add spins for 2 us, at least 40 ms in all, well above a pacing slice.
	const spin = 2 * time.Microsecond
	busySink := func(recs *int) funcSink {
		return func([]byte, []byte, uint64) error {
			*recs++
			for t0 := time.Now(); time.Since(t0) < spin; {
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name  string
		share float64
	}{{"Unpaced", 1}, {"HalfCore", 0.5}} {
		t.Run(tc.name, func(t *testing.T) {
			logs.TakeAll()
			var recs int
			if err := r0.WithRestoreCPU(tc.share).Restore(ctx, m, busySink(&recs), nil); err != nil || recs != src.n {
				t.Fatalf("Restore = %v with %d records, want %d", err, recs, src.n)
			}
			done := logs.FilterMessage("restored snapshot").All()
			if len(done) != 1 {
				t.Fatalf("%d \"restored snapshot\" logs, want 1", len(done))
			}
			paced, ok := done[0].ContextMap()[logPaced].(time.Duration)
			if tc.share == 1 {
				if ok {
					t.Fatalf("unpaced restore logged %s = %v", logPaced, paced)
				}
				return
			}
			// At half a core the pauses add up to the work (less the last slice), and the work is at least the sink's
			// spinning: 40 ms of wall time.
			if minWork := time.Duration(src.n) * spin; !ok || paced < minWork*3/4 {
				t.Fatalf("restore paused %v (logged: %v), want about the work, which is at least %v", paced, ok, minWork)
			}
		})
	}
}
