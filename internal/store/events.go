package store

import (
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// eventListener turns the pebble events that explain slow writes into log lines: write stalls (pebble delays
// writes while flushes or compactions fall behind) and disk operations slower than pebble's disk health threshold
// (5 s) at warn, and the end of every memtable flush and compaction, with how long it took, at debug. Without it
// pebble drops these events. onStall, if not nil, is called with each write stall's duration when it ends.
//
// Background errors (a failed flush or compaction) are logged at most once per logEvery and kind. Pebble retries a
// failed flush at once and forever (compaction.go flush: "TODO(peter): count consecutive flush errors and backoff"),
// which on a full disk spins a core; so after a disk-full error the handler, which runs on the failing job's
// goroutine, waits before it returns: 10 ms doubling up to 1 s, until a flush or compaction succeeds or g is closed.
// After an engine failure (g.err() != nil) the handler never returns: the instance is abandoned (see closePebble) and
// its job must not retry forever. g may be nil (tests).
func eventListener(log *zap.Logger, onStall func(time.Duration), g *diskGuard) *pebble.EventListener {
	var (
		mu         sync.Mutex
		stallSince time.Time
		stallWhy   string
		backoff    time.Duration
	)
	lim := newLimiter(logEvery)
	succeeded := func(err error) {
		if err == nil {
			mu.Lock()
			backoff = 0
			mu.Unlock()
		}
	}
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			full := isDiskFull(err) || errors.Is(err, errFenced)
			kind := "other"
			if full {
				kind = "disk full"
			}
			if ok, dropped := lim.allow(kind); ok {
				log.Error("store background error (flush or compaction); pebble retries it", zap.Error(err),
					zap.Int("repeats_dropped", dropped))
			}
			if g == nil {
				return
			}
			if g.err() != nil {
				// The engine failed and will be abandoned: wait for that, then stop this job's retries for good
				// rather than spin.
				<-g.stop
				select {}
			}
			if !full {
				return
			}
			mu.Lock()
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			d := backoff
			mu.Unlock()
			g.sleep(d)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			mu.Lock()
			stallSince, stallWhy = time.Now(), info.Reason
			mu.Unlock()
			log.Warn("store write stall: pebble delays writes", zap.String("reason", info.Reason))
		},
		WriteStallEnd: func() {
			mu.Lock()
			took, why := time.Since(stallSince), stallWhy
			mu.Unlock()
			log.Warn("store write stall ended", zap.String("reason", why), zap.Duration("took", took))
			if onStall != nil {
				onStall(took)
			}
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn("store disk operation slow", zap.String("path", info.Path), zap.String("op", info.OpType.String()),
				zap.Int("bytes", info.WriteSize), zap.Duration("ongoing_for", info.Duration))
		},
		FlushEnd: func(info pebble.FlushInfo) {
			succeeded(info.Err)
			log.Debug("store memtable flushed", zap.Int("job", info.JobID), zap.String("reason", info.Reason),
				zap.Uint64("input_bytes", info.InputBytes), zap.Duration("took", info.TotalDuration), zap.Error(info.Err))
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			succeeded(info.Err)
			log.Debug("store compaction done", zap.Int("job", info.JobID), zap.String("reason", info.Reason),
				zap.Int("to_level", info.Output.Level), zap.Duration("took", info.TotalDuration), zap.Error(info.Err))
		},
	}
}
