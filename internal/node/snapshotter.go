package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/snapshots"
)

// snapshotState is what the leader remembers of its last snapshot.
type snapshotState struct {
	// end is the sequence of the last snapshot's checkpoint result entry, 0 until this leader took one: nothing was
	// written since that snapshot while the applied sequence is not beyond it.
	end atomic.Uint64
	// last is the last snapshot this leader took; guarded by Leader.snapMu.
	last snapshots.Manifest
}

// snapshotDue reports whether anything was written since the last snapshot (the checkpoint entries it published
// aside), so that a scheduled snapshot has something new to capture.
func (l *Leader) snapshotDue() bool {
	return l.Applied() > max(l.state.snapshot(), l.snaps.end.Load())
}

// createSnapshot takes a snapshot of the store at a checkpoint without blocking writes, uploads it, applies
// retention, then purges the log below the oldest retained snapshot. It publishes a checkpoint mark through the write
// pipeline, takes a point-in-time view (a pebble snapshot) right after the mark is applied, so at exactly the mark's
// sequence S, streams that view into the snapshot store, and, once the data is stored and its digest known,
// publishes the checkpoint result (S, key count, digest) and writes the manifest naming it (checkpoint_seq). Followers
// check their own state at S against the result (see checkpointVerifier). One snapshot runs at a time: concurrent
// calls wait for the running one and then take their own (or return the newest one if nothing was written
// meanwhile). Without an active write pipeline (starting, or not holding the lease) there is no snapshot.
func (l *Leader) createSnapshot(ctx context.Context) (snapshots.Manifest, error) {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	if !l.snapInitDone {
		if err := l.snapStore.Init(ctx, true); err != nil {
			return snapshots.Manifest{}, fmt.Errorf("node: prepare snapshot store %s: %w", l.snapStore, wrapUnavailable(err))
		}
		l.snapInitDone = true
	}
	if l.snaps.last.Seq > 0 && l.Applied() <= l.snaps.end.Load() {
		return l.snaps.last, nil // nothing written since: it is still the state
	}
	p, err := l.activePipeline("snapshots")
	if err != nil {
		return snapshots.Manifest{}, err
	}
	start := time.Now()
	seq, view, err := p.checkpointMark(ctx, func() (api.View, error) { return l.holder.view(ctx) })
	if err != nil {
		l.metrics.Errors.WithLabelValues("snapshot", "create").Inc()
		return snapshots.Manifest{}, fmt.Errorf("node: create snapshot: checkpoint mark: %w", wrapUnavailable(err))
	}
	src := view.(*heldView)
	var end uint64
	m, err := l.repo.CreateVouched(ctx, src.View, l.id, func(ctx context.Context, draft snapshots.Manifest) (uint64, error) {
		cp, err := apply.NewCheckpointResult(draft.Seq, draft.Keys, draft.Digest)
		if err != nil {
			return 0, err
		}
		end, err = p.checkpointResult(ctx, cp)
		if err != nil {
			return 0, fmt.Errorf("checkpoint result: %w", err)
		}
		return end, nil
	})
	_ = view.Close()
	if err != nil {
		l.metrics.Errors.WithLabelValues("snapshot", "create").Inc()
		return snapshots.Manifest{}, fmt.Errorf("node: create snapshot at checkpoint %d: %w", seq, wrapUnavailable(err))
	}
	l.snaps.last = m
	l.snaps.end.Store(max(end, m.CheckpointSeq, m.Seq))
	took := time.Since(start)
	l.metrics.SnapshotDuration.Observe(took.Seconds())
	l.metrics.SnapshotSeq.Set(float64(m.Seq))
	l.state.setSnapshotSeq(m.Seq)
	if db := l.holder.get(); db != nil {
		if err := db.SetSnapshotSeq(m.Seq); err != nil {
			l.log.Warn("cannot record snapshot seq", zap.Error(err))
		}
	}
	l.log.Info("snapshot created", zap.Uint64("snapshot_seq", m.Seq), zap.Uint64("keys", m.Keys),
		zap.Int64("bytes", m.Bytes), zap.Duration("took", took))

	ours := l.snapshotOfThisLog(ctx)
	deleted, err := l.repo.Prune(ctx, l.cfg.SnapshotKeep, ours)
	if err != nil {
		l.log.Warn("snapshot retention failed", zap.Error(err))
		return m, nil
	}
	for _, d := range deleted {
		l.log.Info("snapshot removed by retention", zap.Uint64("snapshot_seq", d.Seq))
	}
	l.compact(ctx, ours)
	return m, nil
}

// snapshotOfThisLog returns a predicate that tells the snapshots of this log from snapshots left in the snapshot store
// by another history of it (deleted and recreated since: their entry mark is not the log's, see snapshotFitsLog).
// A snapshot that cannot be checked counts as another's: that keeps more of this log's snapshots, never fewer, and
// never compacts the log below one of them. The predicate checks each snapshot once (retention and compaction both
// ask) and logs each one it finds not of this log once.
func (l *Leader) snapshotOfThisLog(ctx context.Context) func(snapshots.Manifest) bool {
	seen := map[uint64]bool{}
	return func(m snapshots.Manifest) bool {
		ours, ok := seen[m.Seq]
		if !ok {
			ours = l.checkSnapshotOfThisLog(ctx, m)
			seen[m.Seq] = ours
		}
		return ours
	}
}

// checkSnapshotOfThisLog is snapshotOfThisLog's check of one snapshot.
func (l *Leader) checkSnapshotOfThisLog(ctx context.Context, m snapshots.Manifest) bool {
	err := snapshotFitsLog(ctx, l.jc, m)
	switch {
	case errors.Is(err, errNotTheLog):
		l.log.Warn("the snapshot store holds a snapshot of another history of the log; retention and log compaction ignore it (remove it)",
			zap.Uint64("snapshot_seq", m.Seq), zap.String("snapshot_leader", m.Leader), zap.Error(err))
		return false
	case err != nil:
		l.log.Warn("cannot check a snapshot against the log; retention and log compaction leave it out this time",
			zap.Uint64("snapshot_seq", m.Seq), zap.Error(err))
		return false
	}
	return true
}

// compact purges the log below the oldest retained snapshot of this log (ours), so every retained snapshot can
// still be caught up from and the log stays bounded. The snapshot's own entry is kept: a node checks the snapshot's
// entry mark against it before it restores the snapshot, and its restored store's mark after. A snapshot left by
// another history of the log must not let the log be purged below what this log's snapshots cover.
func (l *Leader) compact(ctx context.Context, ours func(snapshots.Manifest) bool) {
	ms, err := l.repo.List(ctx)
	if err != nil {
		l.log.Warn("cannot list snapshots for log compaction", zap.Error(err))
		return
	}
	oldest := uint64(0)
	for _, m := range ms {
		if ours(m) {
			oldest = m.Seq
		}
	}
	if oldest == 0 {
		return
	}
	purged, err := l.jc.Purge(ctx, oldest)
	if err != nil {
		l.log.Warn("log compaction failed", zap.Error(err))
		return
	}
	if purged == 0 {
		l.log.Debug("log compaction: nothing below the oldest retained snapshot", zap.Uint64("kept_from_seq", oldest))
		return
	}
	l.log.Info("log compacted", zap.Uint64("kept_from_seq", oldest), zap.Uint64("entries_purged", purged))
}
