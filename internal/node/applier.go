package node

import (
	"errors"
	"fmt"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
)

// maxBatchKeys bounds the keys of one store batch, between entries (an entry is never split: a transaction, up to
// apply.MaxTxnOps keys, is applied atomically). Batches of single writes are bounded by their entry count first.
const maxBatchKeys = 16384

// errBadEntry marks a log entry that cannot be decoded or applied. It is never skipped: the node stops applying
// and reports the entry's sequence.
var errBadEntry = errors.New("undecodable log entry")

// gapError reports a delivered sequence beyond applied+1: entries are missing (purged) and must never be skipped.
type gapError struct{ want, got uint64 }

func (e *gapError) Error() string {
	return fmt.Sprintf("gap in the log: expected seq %d, got %d", e.want, e.got)
}

// applier applies journal messages to a store in batches: data, the new applied sequence and the mark of the entry
// at that sequence (see store.DB.Mark) in one atomic write.
// It is owned by a single goroutine (the follower's apply loop, or the leader while it recovers).
type applier struct {
	db   *store.DB
	muts []apply.Mutation
	// checkpoint, when set, is called with each checkpoint entry (apply.OpCheckpoint) and its sequence, right after
	// the batch that ends with it is committed and before any later entry is applied: the store's applied sequence is
	// then exactly seq, so a view taken in the call is the state at seq. It runs on the applier's goroutine and must
	// not block.
	checkpoint func(seq uint64, cp apply.Checkpoint)
}

// apply classifies and applies msgs (in stream order). Entries at or below the applied sequence are skipped. A
// checkpoint entry ends a store batch (see applier.checkpoint), and so does an entry that brings the batch to
// maxBatchKeys keys. On a gap or a bad entry it first commits the entries before it, then returns *gapError or an
// errBadEntry error. It returns the applied sequence after the call.
func (a *applier) apply(msgs []journal.Msg) (uint64, error) {
	applied := a.db.Applied()
	committed := applied
	last := applied
	var lastMsg *journal.Msg
	a.muts = a.muts[:0]
	defer func() { clear(a.muts) }() // drop references to message buffers, whatever happened
	commit := func() error {
		if last == committed {
			return nil
		}
		if err := a.db.Apply(last, a.muts, apply.EntryMark(last, lastMsg.ID, lastMsg.Data)); err != nil {
			return fmt.Errorf("node: apply up to seq %d: %w", last, err)
		}
		committed = last
		clear(a.muts)
		a.muts = a.muts[:0]
		return nil
	}
	var stop error
loop:
	for i, m := range msgs {
		switch apply.Classify(last, m.Seq) {
		case apply.ActionSkip:
			continue
		case apply.ActionGap:
			stop = &gapError{want: last + 1, got: m.Seq}
			break loop
		default:
			e, err := apply.DecodeEntry(m.Data)
			if err == nil {
				err = e.CheckAt(m.Seq)
			}
			if err != nil {
				stop = fmt.Errorf("%w: seq %d: %w", errBadEntry, m.Seq, err)
				break loop
			}
			last, lastMsg = m.Seq, &msgs[i]
			if e.Mutates() {
				a.muts = apply.AppendMutations(a.muts, m.Seq, e)
				if len(a.muts) >= maxBatchKeys {
					if err := commit(); err != nil {
						return committed, err
					}
				}
				continue
			}
			if e.Op != apply.OpCheckpoint {
				continue // a term's start: it changes no key, and its sequence is applied with the batch
			}
			// A checkpoint: the store must be at exactly its sequence for a moment, whatever follows in msgs.
			if err := commit(); err != nil {
				return committed, err
			}
			if a.checkpoint != nil {
				a.checkpoint(m.Seq, e.Checkpoint)
			}
		}
	}
	if err := commit(); err != nil {
		return committed, err
	}
	return last, stop
}

// drainBatch appends the messages already waiting on sub to batch, without blocking, until batch is full or more
// returns false for the last message taken.
func drainBatch(sub *journal.Subscription, batch []journal.Msg, more func(journal.Msg) bool) []journal.Msg {
	for len(batch) < cap(batch) && more(batch[len(batch)-1]) {
		select {
		case m, ok := <-sub.C():
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

func always(journal.Msg) bool { return true }
