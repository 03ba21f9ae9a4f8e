package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
	"go.uber.org/zap"
)

// errNotTheLog means the log does not hold the entry the store's mark was taken from: the store was written from
// another history of the log (a log deleted and recreated, a promoted catch-up mirror that took writes of its own),
// and reading on from applied+1 would mix two histories.
var errNotTheLog = errors.New("the store was not written from this log")

// verifyMark compares the store's mark (store.DB.Mark: the apply.EntryMark of an entry it applied) with the log's
// entry at the mark's sequence. It returns nil when they match, when the store has no mark (loaded from a snapshot
// and nothing applied since), or when the log no longer holds that sequence because it was compacted away (nothing is
// left to compare with); an error wrapping errNotTheLog when the log's entry differs, or is missing where the log
// still holds entries; and the journal's error when the log could not be read.
func verifyMark(ctx context.Context, jc *journal.Conn, db *store.DB, log *zap.Logger) error {
	seq, mark := db.Mark()
	if seq == 0 {
		return nil
	}
	m, err := jc.Entry(ctx, seq)
	switch {
	case err == nil && apply.EntryMark(m.Seq, m.ID, m.Data) == mark:
		return nil
	case err == nil:
		return fmt.Errorf("%w: its entry %d (id %q) is not the one the store applied there", errNotTheLog, seq, m.ID)
	case !errors.Is(err, journal.ErrNoEntry):
		return fmt.Errorf("node: read the log's entry %d to check the store against it: %w", seq, err)
	}
	info, err := jc.Info(ctx)
	if err != nil {
		return fmt.Errorf("node: check the store against the log: %w", err)
	}
	if seq < info.FirstSeq {
		log.Info("the log no longer holds the store's last marked entry; nothing to check it against",
			zap.Uint64("mark_seq", seq), zap.Uint64("log_first_seq", info.FirstSeq))
		return nil
	}
	return fmt.Errorf("%w: it holds no entry %d (it holds %d..%d)", errNotTheLog, seq, info.FirstSeq, info.LastSeq)
}

// storeFitsLog is a leader's check before it replays the log onto its store and publishes after it: an error wrapping
// errDiverged when the store is ahead of the log or was not written from it (verifyMark), the journal's error when
// the log could not be read, nil otherwise.
func storeFitsLog(ctx context.Context, jc *journal.Conn, db *store.DB, info journal.Info, log *zap.Logger) error {
	if applied := db.Applied(); applied > info.LastSeq {
		return fmt.Errorf("%w: store applied seq %d, log last seq %d (was the log reset, or did JetStream lose acknowledged writes without fsync?); refusing to write",
			errDiverged, applied, info.LastSeq)
	}
	if err := verifyMark(ctx, jc, db, log); errors.Is(err, errNotTheLog) {
		return fmt.Errorf("%w: %w (was the log deleted and recreated?); refusing to write", errDiverged, err)
	} else if err != nil {
		return err
	}
	return nil
}
