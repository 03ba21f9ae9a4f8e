package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/snapshots"
	"github.com/replikv/replikv/internal/store"
	"go.uber.org/zap"
)

// errNotTheLog means the log does not hold the entry the store's mark was taken from: the store was written from
// another history of the log (a log deleted and recreated, a promoted catch-up mirror that took writes of its own),
// and reading on from applied+1 would mix two histories.
var errNotTheLog = errors.New("the store was not written from this log")

// verifyMark compares the store's mark (store.DB.Mark: the apply.EntryMark of an entry it applied) with the log's
// entry at the mark's sequence (see checkMarkAt). A store without a mark (loaded from a snapshot that had none, and
// nothing applied since), or whose marked entry was compacted out of the log, passes.
func verifyMark(ctx context.Context, jc *journal.Conn, db *store.DB, log *zap.Logger) error {
	seq, mark := db.Mark()
	if seq == 0 {
		return nil
	}
	err := checkMarkAt(ctx, jc, seq, mark)
	if errors.Is(err, errMarkCompacted) {
		log.Info("the log no longer holds the store's last marked entry; nothing to check it against",
			zap.Uint64("mark_seq", seq), zap.Error(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("the store's last marked entry: %w", err)
	}
	return nil
}

// errMarkCompacted is checkMarkAt's answer when the log no longer holds the sequence: nothing is left to compare.
var errMarkCompacted = errors.New("the log no longer holds that entry")

// checkMarkAt compares mark with the mark of the log's entry at seq. It returns nil when they match; an error wrapping
// errNotTheLog when the log's entry differs, or is missing where the log still holds entries (a sequence beyond its
// end, too); errMarkCompacted when the log no longer holds that sequence because it was compacted away; and the
// journal's error when the log could not be read.
func checkMarkAt(ctx context.Context, jc *journal.Conn, seq uint64, mark apply.Mark) error {
	m, err := jc.Entry(ctx, seq)
	switch {
	case err == nil && apply.EntryMark(m.Seq, m.ID, m.Data) == mark:
		return nil
	case err == nil:
		return fmt.Errorf("%w: the log's entry %d (id %q) is another one", errNotTheLog, seq, m.ID)
	case !errors.Is(err, journal.ErrNoEntry):
		return fmt.Errorf("node: read the log's entry %d: %w", seq, err)
	}
	info, err := jc.Info(ctx)
	if err != nil {
		return fmt.Errorf("node: read the log's bounds: %w", err)
	}
	if seq < info.FirstSeq {
		return fmt.Errorf("%w: entry %d (the log starts at %d)", errMarkCompacted, seq, info.FirstSeq)
	}
	return fmt.Errorf("%w: the log holds no entry %d (it holds %d..%d)", errNotTheLog, seq, info.FirstSeq, info.LastSeq)
}

// snapshotFitsLog checks a snapshot's entry mark (snapshots.Manifest.EntryMark) against the log before it is
// restored: an error wrapping errNotTheLog when the snapshot was taken from another history of the log (the log was
// deleted and recreated since), nil when it fits, has no mark, or its entry was compacted out of the log, and the
// journal's error when the log could not be read.
func snapshotFitsLog(ctx context.Context, jc *journal.Conn, m snapshots.Manifest) error {
	mark, ok := m.Mark()
	if !ok {
		return nil
	}
	if err := checkMarkAt(ctx, jc, m.Seq, mark); err != nil && !errors.Is(err, errMarkCompacted) {
		return fmt.Errorf("snapshot %d: %w", m.Seq, err)
	}
	return nil
}

// errLogBehind means the log ends before the store's applied sequence. A JetStream cluster can answer so for a moment
// after it elected a new stream leader, which has every entry the old one acknowledged but may not have applied them
// all yet; it is divergence (errDiverged) only when it lasts logBehindGrace (see behindWatch).
var errLogBehind = errors.New("the replication log ends before the local store")

// logBehindGrace is how long the log may end before the store's applied sequence before the store is taken to hold
// entries the log lost.
const logBehindGrace = 10 * time.Second

// behindWatch turns an errLogBehind that lasted logBehindGrace into errDiverged. The zero value is ready; it is used
// by one goroutine.
type behindWatch struct{ since time.Time }

// escalate returns err, or errDiverged wrapping it once errLogBehind was returned for logBehindGrace without another
// outcome in between.
func (w *behindWatch) escalate(err error, now time.Time) error {
	if !errors.Is(err, errLogBehind) {
		w.since = time.Time{}
		return err
	}
	if w.since.IsZero() {
		w.since = now
	}
	if now.Sub(w.since) < logBehindGrace {
		return err
	}
	return fmt.Errorf("%w for %v (was the log reset, or did JetStream lose acknowledged writes without fsync?): %w; "+
		"refusing to write", errDiverged, logBehindGrace, err)
}

// storeFitsLog is a leader's check before it replays the log onto its store and publishes after it: an error wrapping
// errLogBehind when the store is ahead of the log (the caller's behindWatch decides when that is divergence),
// errDiverged when the store was not written from the log (verifyMark), the journal's error when the log could not
// be read, nil otherwise.
func storeFitsLog(ctx context.Context, jc *journal.Conn, db *store.DB, info journal.Info, log *zap.Logger) error {
	if applied := db.Applied(); applied > info.LastSeq {
		return fmt.Errorf("%w: store applied seq %d, log last seq %d; waiting up to %v for the log to reach it",
			errLogBehind, applied, info.LastSeq, logBehindGrace)
	}
	if err := verifyMark(ctx, jc, db, log); errors.Is(err, errNotTheLog) {
		return fmt.Errorf("%w: %w (was the log deleted and recreated?); refusing to write", errDiverged, err)
	} else if err != nil {
		return err
	}
	return nil
}
