package node

import (
	"errors"
	"testing"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
)

// FuzzApplier sends a fuzzed log entry through the apply loop's applier, between two good entries: nothing may panic;
// a bad entry stops the batch with errBadEntry after committing the entry before it, and is never skipped (the
// applied sequence stops right before it); a good one is applied and readable.
func FuzzApplier(f *testing.F) {
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("k"), Value: []byte("v")}))
	f.Add(apply.AppendEntry(nil, apply.Entry{Op: apply.OpDelete, Key: []byte("k")}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x00, 0x01})
	db, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	a := &applier{db: db}
	good := apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("good"), Value: []byte("1")})
	f.Fuzz(func(t *testing.T, data []byte) {
		base := db.Applied()
		msgs := []journal.Msg{
			{Seq: base + 1, Data: good, ID: "g1"},
			{Seq: base + 2, Data: data, ID: "fuzz"},
		}
		seq, err := a.apply(msgs)
		_, decodeErr := apply.DecodeEntry(data)
		switch {
		case decodeErr != nil:
			if !errors.Is(err, errBadEntry) || seq != base+1 || db.Applied() != base+1 {
				t.Fatalf("bad entry: apply = seq %d, %v; applied %d; want errBadEntry at %d", seq, err, db.Applied(), base+1)
			}
		case err != nil || seq != base+2 || db.Applied() != base+2:
			t.Fatalf("good entry: apply = seq %d, %v; applied %d; want %d", seq, err, db.Applied(), base+2)
		}
		if _, _, err := db.Get([]byte("good")); err != nil {
			t.Fatalf("the entry before the fuzzed one: %v", err)
		}
	})
}
