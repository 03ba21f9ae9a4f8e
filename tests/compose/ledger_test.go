//go:build compose

package compose

import (
	"errors"
	"testing"
	"time"
)

func TestLedger_Verify(t *testing.T) {
	// k1: acked v5 "a", then a write "b" of unknown outcome.
	// k2: acked v3 "c", then acked v7 "d" (the earlier write is settled).
	// k3: only a write of unknown outcome, never acked.
	newTestLedger := func() *ledger {
		l := newLedger()
		l.attempt("k1", "a")
		l.ack("k1", "a", 5)
		l.attempt("k1", "b")
		l.fail(errors.New("lost"))
		l.attempt("k2", "c")
		l.ack("k2", "c", 3)
		l.attempt("k2", "d")
		l.ack("k2", "d", 7)
		l.attempt("k3", "e")
		l.fail(errors.New("lost"))
		return l
	}
	tests := []struct {
		name  string
		items map[string]item
		ok    bool
	}{
		{"Acked", map[string]item{"k1": {5, "a"}, "k2": {7, "d"}}, true},
		{"UnknownWriteCommitted", map[string]item{"k1": {9, "b"}, "k2": {7, "d"}, "k3": {8, "e"}}, true},
		{"Missing", map[string]item{"k1": {5, "a"}}, false},
		{"OlderAckedValue", map[string]item{"k1": {5, "a"}, "k2": {3, "c"}}, false},
		{"WrongVersion", map[string]item{"k1": {6, "a"}, "k2": {7, "d"}}, false},
		{"UnknownValueOldVersion", map[string]item{"k1": {4, "b"}, "k2": {7, "d"}}, false},
		{"ForeignValue", map[string]item{"k1": {9, "z"}, "k2": {7, "d"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newTestLedger().verify(tt.items)
			if (err == nil) != tt.ok {
				t.Fatalf("verify = %v, want ok %v", err, tt.ok)
			}
		})
	}
	t.Run("Empty", func(t *testing.T) {
		if err := newLedger().verify(nil); err == nil {
			t.Fatal("verify of an empty ledger passed; it must refuse to check nothing")
		}
	})
}

func TestLedger_Ack(t *testing.T) {
	l := newLedger()
	l.ack("k", "a", 5)
	if err := l.violations(); err != nil {
		t.Fatalf("violations after one ack: %v", err)
	}
	l.ack("k", "b", 5)
	if err := l.violations(); err == nil {
		t.Fatal("a second ack of the same version is not reported")
	}
	if acked, failed := l.counts(); acked != 2 || failed != 0 {
		t.Fatalf("counts = %d, %d; want 2, 0", acked, failed)
	}
}

func TestLedger_MaxAckGap(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// Acknowledgements at 1, 2, 9 and 10 s.
	l := newLedger()
	var clock time.Time
	l.now = func() time.Time { return clock }
	for i, s := range []float64{1, 2, 9, 10} {
		clock = at(s)
		l.ack("k", "v", uint64(i+1))
	}
	tests := []struct {
		name     string
		from, to float64
		gap, end float64
	}{
		{"Between", 0.5, 10, 7, 9},
		{"FromWindowStart", 3, 10, 6, 9},
		{"ToWindowEnd", 0, 8, 6, 8},
		{"NoAckInWindow", 3, 5, 2, 5},
		{"AfterLastAck", 10, 20, 10, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gap, end := l.maxAckGap(at(tt.from), at(tt.to))
			if want := at(tt.gap).Sub(t0); gap != want || !end.Equal(at(tt.end)) {
				t.Fatalf("maxAckGap = %v ending at +%v, want %v ending at +%vs", gap, end.Sub(t0), want, tt.end)
			}
		})
	}
}
