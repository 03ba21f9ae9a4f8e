package store

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// eventListener turns the pebble events that explain slow writes into log lines: write stalls (pebble delays
// writes while flushes or compactions fall behind) and disk operations slower than pebble's disk health threshold
// (5 s) at warn, and the end of every memtable flush and compaction, with how long it took, at debug. Without it
// pebble drops these events. onStall, if not nil, is called with each write stall's duration when it ends.
func eventListener(log *zap.Logger, onStall func(time.Duration)) *pebble.EventListener {
	var (
		mu         sync.Mutex
		stallSince time.Time
		stallWhy   string
	)
	return &pebble.EventListener{
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
			log.Debug("store memtable flushed", zap.Int("job", info.JobID), zap.String("reason", info.Reason),
				zap.Uint64("input_bytes", info.InputBytes), zap.Duration("took", info.TotalDuration), zap.Error(info.Err))
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			log.Debug("store compaction done", zap.Int("job", info.JobID), zap.String("reason", info.Reason),
				zap.Int("to_level", info.Output.Level), zap.Duration("took", info.TotalDuration), zap.Error(info.Err))
		},
	}
}
