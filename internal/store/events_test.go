package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The store's pebble reports its flushes to the store's log (at debug), and write stalls and slow disk operations
// at warn.
func TestDB_LogsPebbleEvents(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	db, err := Open(t.TempDir(), Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	mustApply(t, db, 1, put("a", "1", 1))
	if err := db.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterMessage("store memtable flushed").Len(); n == 0 {
		t.Fatalf("no flush logged after a flush; logged: %v", logs.All())
	}

	var stalls []time.Duration
	l := eventListener(zap.New(core), func(d time.Duration) { stalls = append(stalls, d) }, nil)
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	time.Sleep(time.Millisecond)
	l.WriteStallEnd()
	l.DiskSlow(pebble.DiskSlowInfo{Path: "000123.log", OpType: vfs.OpTypeSync, Duration: 6 * time.Second})
	for _, msg := range []string{"store write stall: pebble delays writes", "store write stall ended", "store disk operation slow"} {
		entries := logs.FilterMessage(msg).All()
		if len(entries) != 1 || entries[0].Level != zapcore.WarnLevel {
			t.Fatalf("%q logged %d times (%v), want once at warn", msg, len(entries), entries)
		}
	}
	end := logs.FilterMessage("store write stall ended").All()[0].ContextMap()
	if end["reason"] != "memtable count limit reached" || end["took"].(time.Duration) < time.Millisecond {
		t.Fatalf("stall end fields %v, want the reason and a duration of at least 1ms", end)
	}
	if len(stalls) != 1 || stalls[0] != end["took"].(time.Duration) {
		t.Fatalf("OnWriteStall got %v, want the logged duration %v once", stalls, end["took"])
	}
	slow := logs.FilterMessage("store disk operation slow").All()[0].ContextMap()
	if slow["path"] != "000123.log" || slow["op"] != "sync" || slow["ongoing_for"] != 6*time.Second {
		t.Fatalf("slow disk fields %v", slow)
	}
}
