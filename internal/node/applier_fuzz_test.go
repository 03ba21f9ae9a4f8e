package node

import (
	"errors"
	"testing"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
)

// FuzzApplier sends a fuzzed log entry through the apply loop's applier, between two good entries: nothing may panic;
// a bad entry (one that does not decode, or breaks a rule of its sequence: apply.Entry.CheckAt) stops the batch with
// errBadEntry after committing the entry before it, and is never skipped (the applied sequence stops right before
// it); a good one is applied and readable (every key of a transaction at its sequence), and a checkpoint is handed
// to the applier's hook at its sequence with the store at exactly that sequence.
func FuzzApplier(f *testing.F) {
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("k"), Value: []byte("v")}))
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpDelete, Key: []byte("k")}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x00, 0x01})
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpCheckpoint, Checkpoint: apply.Checkpoint{Kind: apply.CheckpointMark}}))
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpCheckpoint,
		Checkpoint: apply.Checkpoint{Kind: apply.CheckpointResult, Seq: 1, Keys: 1, Digest: [apply.DigestSize]byte{1}}}))
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpCheckpoint,
		Checkpoint: apply.Checkpoint{Kind: apply.CheckpointResult, Seq: 1 << 40}})) // for a later seq: bad
	f.Add([]byte{0x01, 0x03, 0x07}) // unknown checkpoint kind
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpTxn, Ops: []apply.TxnOp{
		{Op: apply.OpDelete, Key: []byte("good")}, {Op: apply.OpPut, Key: []byte("k"), Value: []byte("v")}}}))
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpTxn, Ops: []apply.TxnOp{{Op: apply.OpPut, Key: []byte("t"),
		Value: []byte{}}}}))
	f.Add([]byte{0x01, 0x04, 0x02, 0x02, 0x01, 'b', 0x02, 0x01, 'a'}) // a transaction's keys out of order
	db, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	var hooked []uint64
	a := &applier{db: db, checkpoint: func(seq uint64, _ apply.Checkpoint) {
		if db.Applied() != seq {
			panic("checkpoint hook called with the store at another sequence")
		}
		hooked = append(hooked, seq)
	}}
	good := apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("good"), Value: []byte("1")})
	f.Fuzz(func(t *testing.T, data []byte) {
		hooked = hooked[:0]
		base := db.Applied()
		msgs := []journal.Msg{
			{Seq: base + 1, Data: good, ID: "g1"},
			{Seq: base + 2, Data: data, ID: "fuzz"},
		}
		seq, err := a.apply(msgs)
		e, decodeErr := apply.DecodeEntry(data)
		if decodeErr == nil {
			decodeErr = e.CheckAt(base + 2)
		}
		switch {
		case decodeErr != nil:
			if !errors.Is(err, errBadEntry) || seq != base+1 || db.Applied() != base+1 {
				t.Fatalf("bad entry: apply = seq %d, %v; applied %d; want errBadEntry at %d", seq, err, db.Applied(), base+1)
			}
		case err != nil || seq != base+2 || db.Applied() != base+2:
			t.Fatalf("good entry: apply = seq %d, %v; applied %d; want %d", seq, err, db.Applied(), base+2)
		}
		if _, v, err := db.Get([]byte("good")); err != nil && !deletes(e, decodeErr, "good") || err == nil && v < base+1 {
			t.Fatalf("the entry before the fuzzed one: version %d, %v", v, err)
		}
		if decodeErr == nil && e.Op == apply.OpTxn {
			// Every key of a transaction is at its sequence (or deleted by it).
			for _, o := range e.Ops {
				_, v, err := db.Get(o.Key)
				if o.Op == apply.OpDelete && err == nil || o.Op == apply.OpPut && (err != nil || v != base+2) {
					t.Fatalf("txn %s of %q at %d: version %d, %v", o.Op, o.Key, base+2, v, err)
				}
			}
		}
		if checkpoint := decodeErr == nil && e.Op == apply.OpCheckpoint; checkpoint != (len(hooked) == 1) ||
			checkpoint && hooked[0] != base+2 {
			t.Fatalf("checkpoint hook calls %v for a %s entry at %d", hooked, e.Op, base+2)
		}
	})
}

// deletes reports whether the decoded entry e (decodeErr nil) deletes key.
func deletes(e apply.Entry, decodeErr error, key string) bool {
	if decodeErr != nil {
		return false
	}
	if e.Op == apply.OpDelete {
		return string(e.Key) == key
	}
	for _, o := range e.Ops {
		if o.Op == apply.OpDelete && string(o.Key) == key {
			return true
		}
	}
	return false
}
