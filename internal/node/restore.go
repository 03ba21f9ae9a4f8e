package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
)

// errNoSnapshot means no valid snapshot can be caught up from: none exists, all are corrupt, or the log no longer
// holds the entry after the newest one. The node waits for a newer snapshot and says why in its status.
var errNoSnapshot = errors.New("no usable snapshot")

// maxMissing is how many times a snapshot's data may be found missing, its manifest still listed, before the
// snapshot counts as corrupt (retention deletes the manifest first, so a lasting absence is not retention).
const maxMissing = 2

// restorer downloads, verifies and installs snapshots into a data dir.
type restorer struct {
	repo      *snapshots.Repo
	dataDir   string
	storeOpts store.Options
	log       *zap.Logger
	metrics   *metrics.Metrics
	state     *stateTracker
	// jc is the log each snapshot is checked against before it is downloaded (snapshotFitsLog); nil checks nothing.
	jc *journal.Conn
}

// restoreNewest installs the newest valid snapshot whose seq+1 is still in the log (seq+1 >= firstSeq), trying older
// ones when the newest is corrupt, of another history of the log (snapshotFitsLog), or contradicted by the log's
// checkpoint for its sequence (snapshotVouched), and re-reading the manifests when one disappears mid-download
// (retention). It returns the restored manifest; the store directory then holds it, closed. The caller must have
// closed any store open on the data dir.
func (r *restorer) restoreNewest(ctx context.Context, firstSeq uint64) (snapshots.Manifest, error) {
	return r.restore(ctx, firstSeq, false)
}

// restoreVouched is restoreNewest restricted to snapshots whose digest a checkpoint result in the log vouches for
// (snapshotVouched returns nil): what a follower whose state was found to differ from the leader's re-bootstraps
// from.
func (r *restorer) restoreVouched(ctx context.Context, firstSeq uint64) (snapshots.Manifest, error) {
	return r.restore(ctx, firstSeq, true)
}

func (r *restorer) restore(ctx context.Context, firstSeq uint64, vouchedOnly bool) (snapshots.Manifest, error) {
	const maxRelists = 5
	missing := map[uint64]int{} // data found missing per snapshot whose manifest stayed
	for attempt := 0; ; attempt++ {
		manifests, invalid, err := r.repo.ListCounted(ctx)
		if err != nil && !errors.Is(err, snapshots.ErrNotFound) { // no directory or bucket yet: no snapshot yet
			return snapshots.Manifest{}, fmt.Errorf("node: list snapshots: %w", err)
		}
		if len(manifests) == 0 && invalid > 0 {
			return snapshots.Manifest{}, fmt.Errorf("%w: the snapshot store holds %d manifests and none is valid", errNoSnapshot, invalid)
		}
		if len(manifests) == 0 {
			return snapshots.Manifest{}, fmt.Errorf("%w: the snapshot store has no snapshot yet", errNoSnapshot)
		}
		var lastErr error
		relist := false
		for _, m := range manifests {
			if missing[m.Seq] >= maxMissing {
				continue // its data is gone for good: treated as corrupt
			}
			if m.Seq+1 < firstSeq {
				return snapshots.Manifest{}, fmt.Errorf("%w: the newest valid snapshot (seq %d) is older than the log's first entry (seq %d); waiting for a newer snapshot", errNoSnapshot, m.Seq, firstSeq)
			}
			if r.jc != nil {
				if err := snapshotFitsLog(ctx, r.jc, m); errors.Is(err, errNotTheLog) {
					r.log.Warn("snapshot is of another history of the log (the log was deleted and recreated since?); trying an older one",
						zap.Uint64("snapshot_seq", m.Seq), zap.Error(err))
					r.metrics.Errors.WithLabelValues("restore", "other_log").Inc()
					lastErr = err
					continue
				} else if err != nil {
					return snapshots.Manifest{}, fmt.Errorf("node: check snapshot %d against the log: %w", m.Seq, err)
				}
				err := snapshotVouched(ctx, r.jc, m)
				switch {
				case errors.Is(err, snapshots.ErrCorrupt):
					r.log.Error("snapshot contradicts the log's checkpoint, treating it as corrupt; trying an older one",
						zap.Uint64("snapshot_seq", m.Seq), zap.Error(err))
					r.metrics.Errors.WithLabelValues("restore", "corrupt").Inc()
					lastErr = fmt.Errorf("snapshot %d: %w", m.Seq, err)
					continue
				case errors.Is(err, errNotVouched) && vouchedOnly:
					r.log.Warn("no checkpoint in the log vouches for the snapshot's digest; trying an older one",
						zap.Uint64("snapshot_seq", m.Seq), zap.Error(err))
					lastErr = fmt.Errorf("snapshot %d: %w", m.Seq, err)
					continue
				case err != nil && !errors.Is(err, errNotVouched):
					return snapshots.Manifest{}, fmt.Errorf("node: check snapshot %d against the log's checkpoint: %w", m.Seq, err)
				}
			} else if vouchedOnly {
				lastErr = fmt.Errorf("snapshot %d: %w: no log to check it against", m.Seq, errNotVouched)
				continue
			}
			err := r.restoreOne(ctx, m)
			switch {
			case err == nil:
				return m, nil
			case ctx.Err() != nil:
				return snapshots.Manifest{}, ctx.Err()
			case errors.Is(err, snapshots.ErrNotFound):
				// Retention deleting it under us (the manifest goes first), or data missing for good behind a
				// manifest that stays: after maxMissing tries, the latter counts as corrupt.
				if missing[m.Seq]++; missing[m.Seq] >= maxMissing {
					r.log.Error("snapshot data missing behind its manifest; treating it as corrupt, trying an older one",
						zap.Uint64("snapshot_seq", m.Seq), zap.Error(err))
					r.metrics.Errors.WithLabelValues("restore", "corrupt").Inc()
					lastErr = err
					continue
				}
				r.log.Warn("snapshot disappeared during download, re-reading manifests", zap.Uint64("snapshot_seq", m.Seq))
				relist = true
			case errors.Is(err, snapshots.ErrCorrupt):
				r.log.Error("snapshot is corrupt, trying an older one", zap.Uint64("snapshot_seq", m.Seq), zap.Error(err))
				r.metrics.Errors.WithLabelValues("restore", "corrupt").Inc()
				lastErr = err
				continue
			default:
				return snapshots.Manifest{}, err
			}
			break
		}
		if !relist {
			if vouchedOnly {
				return snapshots.Manifest{}, fmt.Errorf("%w: no snapshot the log's checkpoints vouch for, last: %w", errNoSnapshot, lastErr)
			}
			return snapshots.Manifest{}, fmt.Errorf("%w: every snapshot failed verification or is of another log, last: %w", errNoSnapshot, lastErr)
		}
		if attempt >= maxRelists {
			return snapshots.Manifest{}, fmt.Errorf("node: snapshots keep disappearing during download")
		}
	}
}

// restoreOne loads m into <data-dir>/restore, verifies it, and installs it as <data-dir>/store.
func (r *restorer) restoreOne(ctx context.Context, m snapshots.Manifest) error {
	r.state.set(stateRestoring, nil)
	r.state.setProgress(api.Progress{BytesTotal: m.Bytes})
	log := r.log.With(zap.Uint64("snapshot_seq", m.Seq), zap.Int64("bytes_total", m.Bytes), zap.Uint64("keys", m.Keys))
	log.Info("restoring snapshot")
	start := time.Now()
	loader, err := store.NewLoader(store.RestoreDir(r.dataDir), r.storeOpts)
	if err != nil {
		return fmt.Errorf("node: prepare restore: %w", err)
	}
	var lastLog time.Time
	var lastDone int64
	progress := func(done, total int64) {
		r.state.setProgress(api.Progress{BytesDone: done, BytesTotal: total})
		r.metrics.RestoreBytes.Add(float64(done - lastDone))
		lastDone = done
		if now := time.Now(); now.Sub(lastLog) >= 2*time.Second || done == total {
			lastLog = now
			pct := 0.0
			if total > 0 {
				pct = 100 * float64(done) / float64(total)
			}
			log.Info("restore progress", zap.Int64("bytes_done", done), zap.Float64("percent", pct))
		}
	}
	if err := r.repo.Restore(ctx, m, loader, progress); err != nil {
		loader.Abort()
		return fmt.Errorf("node: restore snapshot %d: %w", m.Seq, err)
	}
	mark, _ := m.Mark() // none: zero, the store then has no mark until it applies an entry
	if err := loader.Finish(m.Seq, m.Seq, mark); err != nil {
		loader.Abort()
		return fmt.Errorf("node: finish restore %d: %w", m.Seq, err)
	}
	if err := store.Install(r.dataDir); err != nil {
		return fmt.Errorf("node: install restore %d: %w", m.Seq, err)
	}
	r.state.setSnapshotSeq(m.Seq)
	r.metrics.SnapshotSeq.Set(float64(m.Seq))
	log.Info("snapshot restored", zap.Duration("took", time.Since(start)))
	return nil
}
