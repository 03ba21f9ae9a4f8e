//go:build chaos

package chaos

import (
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

// TestLogIndex_Txn: the operations of a transaction entry are indexed as one entry per key, all at the entry's
// sequence (as readLog adds them): each key's state and version follow, and the entry at that sequence is the first.
func TestLogIndex_Txn(t *testing.T) {
	l := newLogIndex([]logEntry{
		{Seq: 1, Op: apply.OpPut, Key: "a", Value: "0"},
		{Seq: 2, Op: apply.OpPut, Key: "b", Value: "1"}, // a transaction at 2: put b, delete a, put c
		{Seq: 2, Op: apply.OpDelete, Key: "a"},
		{Seq: 2, Op: apply.OpPut, Key: "c", Value: "2"},
		{Seq: 3, Op: apply.OpPut, Key: "a", Value: "3"},
	})
	for _, tc := range []struct {
		key  string
		seq  uint64
		want keyState
	}{
		{"a", 1, keyState{Exists: true, Value: "0", Version: 1}},
		{"a", 2, keyState{}},
		{"b", 2, keyState{Exists: true, Value: "1", Version: 2}},
		{"c", 2, keyState{Exists: true, Value: "2", Version: 2}},
		{"c", 1, keyState{}},
		{"a", 3, keyState{Exists: true, Value: "3", Version: 3}},
	} {
		if got := l.stateAt(tc.key, tc.seq); got != tc.want {
			t.Errorf("stateAt(%q, %d) = %+v, want %+v", tc.key, tc.seq, got, tc.want)
		}
	}
	if e, ok := l.entry(2); !ok || e.Key != "b" {
		t.Errorf("entry(2) = %+v, %v; want the transaction's first operation", e, ok)
	}
	if l.digest(2) == l.digest(1) || l.digest(2) == l.digest(3) {
		t.Error("the digest does not change with the transaction")
	}
}
