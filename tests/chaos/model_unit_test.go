//go:build chaos

package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/replikv/replikv/internal/apply"
)

// The model and checker tests: hand-made histories through the same resolve and check path as the real run, so
// that the checker is shown to reject what it must (it cannot silently pass everything).

// h builds a history: ops get IDs in order; times are in milliseconds.
type h struct {
	ops     []op
	entries []logEntry
}

func ms(n int) int64 { return int64(n) * int64(time.Millisecond) }

func (x *h) op(o op, call, ret int) *h {
	o.ID, o.Call, o.Return = len(x.ops), ms(call), ms(ret)
	if o.Node == "" {
		o.Node = "leader"
	}
	if o.Run == 0 {
		o.Run = 1
	}
	x.ops = append(x.ops, o)
	return x
}

// put is an acknowledged PUT committed at seq (also added to the log).
func (x *h) put(client int, key, value string, seq uint64, call, ret int) *h {
	x.log(apply.OpPut, key, value, seq, call)
	return x.op(op{Client: client, Kind: kPut, Key: key, Value: value, Out: outOK, Version: seq, Seq: seq}, call, ret)
}

func (x *h) log(kind apply.Op, key, value string, seq uint64, at int) *h {
	x.entries = append(x.entries, logEntry{Seq: seq, Op: kind, Key: key, Value: value, At: ms(at)})
	return x
}

// get is a read of key on node ("leader": a leader read; "f1": a strong follower read) answering value at version
// (value "" = 404), at Replikv-Seq seq.
func (x *h) get(client int, node, key, value string, version, seq uint64, call, ret int) *h {
	o := op{Client: client, Kind: kGetLeader, Node: node, Key: key, Seq: seq}
	if node != "leader" {
		o.Kind = kGetStrong
	}
	if value == "" {
		o.Out = outNotFound
	} else {
		o.Out, o.Got, o.Version = outOK, value, version
	}
	return x.op(o, call, ret)
}

// check resolves and checks the history like the real run and returns the porcupine verdict and every violation
// message.
func (x *h) check(t *testing.T) (porcupine.CheckResult, []string) {
	t.Helper()
	l := newLogIndex(x.entries)
	keys := []string{"a", "b"}
	r := resolve(x.ops, l, keys, 4)
	var msgs []string
	for _, v := range r.violations {
		msgs = append(msgs, v.Kind+": "+v.Msg)
	}
	for _, v := range append(checkReads(x.ops, l), checkStaleReads(x.ops, l)...) {
		msgs = append(msgs, v.Kind+": "+v.Msg)
	}
	rep := checkLinearizable(r.hist, r.initClient, 10*time.Second)
	res := porcupine.Ok
	for _, b := range rep.Bad {
		if b.Result == porcupine.Illegal || res == porcupine.Ok {
			res = b.Result
		}
	}
	return res, msgs
}

func TestModel_Linearizable(t *testing.T) {
	x := (&h{}).
		put(0, "a", "c0-1", 1, 0, 10).
		get(1, "leader", "a", "c0-1", 1, 1, 20, 30).
		op(op{Client: 2, Kind: kCAS, Key: "a", Value: "c2-1", IfMatch: 1, Out: outOK, Version: 2}, 25, 40).
		log(apply.OpPut, "a", "c2-1", 2, 30).
		get(1, "f1", "a", "c2-1", 2, 2, 45, 50).
		op(op{Client: 0, Kind: kCAS, Key: "a", Value: "c0-2", IfMatch: 1, Out: outPrecond}, 46, 52).
		op(op{Client: 0, Kind: kDelete, Key: "a", Out: outOK, Version: 3}, 55, 60).
		log(apply.OpDelete, "a", "", 3, 57).
		get(1, "leader", "a", "", 0, 3, 65, 70).
		op(op{Client: 0, Kind: kDelete, Key: "a", Out: outNotFound}, 71, 72)
	if res, msgs := x.check(t); res != porcupine.Ok || len(msgs) > 0 {
		t.Fatalf("got %v %q, want Ok and no violations", res, msgs)
	}
}

func TestModel_StaleRead(t *testing.T) {
	// The second write was acknowledged before the read began: reading the first value is stale.
	x := (&h{}).
		put(0, "a", "c0-1", 1, 0, 10).
		put(0, "a", "c0-2", 2, 20, 30).
		get(1, "leader", "a", "c0-1", 1, 1, 40, 50)
	res, msgs := x.check(t)
	if res != porcupine.Illegal {
		t.Fatalf("stale read: got %v, want Illegal", res)
	}
	if !hasViolation(msgs, "stale-read") {
		t.Fatalf("got %q, want a stale-read violation", msgs)
	}
}

func TestModel_StaleStrongFollowerRead(t *testing.T) {
	// The leader read saw the new value; a strong follower read that began after it must not see the old one.
	x := (&h{}).
		put(0, "a", "c0-1", 1, 0, 10).
		put(0, "a", "c0-2", 2, 20, 100).
		get(1, "leader", "a", "c0-2", 2, 2, 40, 50).
		get(2, "f1", "a", "c0-1", 1, 1, 60, 70)
	if res, _ := x.check(t); res != porcupine.Illegal {
		t.Fatalf("got %v, want Illegal", res)
	}
}

func TestModel_ConcurrentReadsEitherValue(t *testing.T) {
	// A read concurrent with a write may see either value.
	for _, seen := range []string{"c0-1", "c0-2"} {
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			put(0, "a", "c0-2", 2, 20, 60).
			get(1, "leader", "a", seen, map[string]uint64{"c0-1": 1, "c0-2": 2}[seen], 1, 30, 40)
		if res, _ := x.check(t); res != porcupine.Ok {
			t.Fatalf("read of %s during the write: got %v, want Ok", seen, res)
		}
	}
}

func TestModel_LogOrder(t *testing.T) {
	// Two concurrent writes, committed at 1 then 2. A read returns 2 and a later read returns 1: as a plain register
	// this would pass (write 2, read, write 1, read), but writes take effect in log order.
	x := (&h{}).
		put(0, "a", "c0-1", 1, 0, 100).
		put(1, "a", "c1-1", 2, 0, 100).
		get(2, "leader", "a", "c1-1", 2, 2, 10, 20).
		get(2, "leader", "a", "c0-1", 1, 1, 30, 40)
	if res, _ := x.check(t); res != porcupine.Illegal {
		t.Fatalf("got %v, want Illegal", res)
	}
}

func TestModel_PreconditionFailed(t *testing.T) {
	t.Run("WhileVersionHeld", func(t *testing.T) {
		// The key is at version 1 for the whole CAS: a 412 is wrong.
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 1, Kind: kCAS, Key: "a", Value: "c1-1", IfMatch: 1, Out: outPrecond}, 20, 30)
		if res, _ := x.check(t); res != porcupine.Illegal {
			t.Fatalf("got %v, want Illegal", res)
		}
	})
	t.Run("ConcurrentWrite", func(t *testing.T) {
		// A write moves the key on during the CAS: 412 is right.
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 1, Kind: kCAS, Key: "a", Value: "c1-1", IfMatch: 1, Out: outPrecond}, 20, 30).
			put(0, "a", "c0-2", 2, 15, 25)
		if res, msgs := x.check(t); res != porcupine.Ok || len(msgs) > 0 {
			t.Fatalf("got %v %q, want Ok", res, msgs)
		}
	})
	t.Run("DecidedOnUncommittedWrite", func(t *testing.T) {
		// The 412 saw a write that never committed (it failed 503 unavailable): nothing explains it.
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 2, Kind: kPut, Key: "a", Value: "c2-1", Out: outFailed, Status: 503, Code: "unavailable"}, 15, 35).
			op(op{Client: 1, Kind: kCAS, Key: "a", Value: "c1-1", IfMatch: 1, Out: outPrecond}, 20, 30)
		if res, _ := x.check(t); res != porcupine.Illegal {
			t.Fatalf("got %v, want Illegal", res)
		}
	})
	t.Run("CASSucceedsOnlyOnItsVersion", func(t *testing.T) {
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			put(0, "a", "c0-2", 2, 20, 30).
			op(op{Client: 1, Kind: kCAS, Key: "a", Value: "c1-1", IfMatch: 1, Out: outOK, Version: 3}, 40, 50).
			log(apply.OpPut, "a", "c1-1", 3, 45)
		if res, _ := x.check(t); res != porcupine.Illegal {
			t.Fatalf("got %v, want Illegal", res)
		}
	})
}

func TestModel_Delete(t *testing.T) {
	t.Run("OfAbsentKey", func(t *testing.T) {
		x := (&h{}).
			op(op{Client: 0, Kind: kDelete, Key: "a", Out: outOK, Version: 1}, 0, 10).
			log(apply.OpDelete, "a", "", 1, 5)
		if res, _ := x.check(t); res != porcupine.Illegal {
			t.Fatalf("got %v, want Illegal", res)
		}
	})
	t.Run("NotFoundOfPresentKey", func(t *testing.T) {
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 1, Kind: kDelete, Key: "a", Out: outNotFound}, 20, 30)
		if res, _ := x.check(t); res != porcupine.Illegal {
			t.Fatalf("got %v, want Illegal", res)
		}
	})
}

func TestResolve_UnknownOutcomes(t *testing.T) {
	t.Run("CommittedUnknownWriteIsVisible", func(t *testing.T) {
		// The PUT timed out but is in the log: a read after a later read saw it must not go back.
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 1, Kind: kPut, Key: "a", Value: "c1-1", Out: outUnknown, Err: "timeout"}, 20, 5020).
			log(apply.OpPut, "a", "c1-1", 2, 30).
			get(2, "leader", "a", "c1-1", 2, 2, 40, 50).
			get(2, "f1", "a", "c0-1", 1, 1, 60, 70)
		res, msgs := x.check(t)
		if res != porcupine.Illegal {
			t.Fatalf("got %v %q, want Illegal", res, msgs)
		}
	})
	t.Run("UncommittedUnknownWriteIsDropped", func(t *testing.T) {
		// Not in the log: nobody may see it.
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 1, Kind: kPut, Key: "a", Value: "c1-1", Out: outUnknown, Err: "timeout"}, 20, 5020).
			get(2, "leader", "a", "c0-1", 1, 1, 40, 50)
		res, msgs := x.check(t)
		if res != porcupine.Ok || len(msgs) > 0 {
			t.Fatalf("got %v %q, want Ok", res, msgs)
		}
		x.get(2, "leader", "a", "c1-1", 2, 2, 60, 70)
		if res, _ := x.check(t); res != porcupine.Illegal {
			t.Fatalf("read of a value never committed: got %v, want Illegal", res)
		}
	})
	t.Run("UnknownDeleteMatchedFromLog", func(t *testing.T) {
		x := (&h{}).
			put(0, "a", "c0-1", 1, 0, 10).
			op(op{Client: 1, Kind: kDelete, Key: "a", Out: outUnknown, Err: "timeout"}, 20, 5020).
			log(apply.OpDelete, "a", "", 2, 30).
			get(2, "leader", "a", "", 0, 2, 40, 50)
		res, msgs := x.check(t)
		if res != porcupine.Ok || len(msgs) > 0 {
			t.Fatalf("got %v %q, want Ok", res, msgs)
		}
	})
	t.Run("AcknowledgedWriteLost", func(t *testing.T) {
		x := (&h{}).
			op(op{Client: 0, Kind: kPut, Key: "a", Value: "c0-1", Out: outOK, Version: 1}, 0, 10)
		_, msgs := x.check(t)
		if !hasViolation(msgs, "lost-write") {
			t.Fatalf("got %q, want a lost-write violation", msgs)
		}
	})
	t.Run("UnavailableButCommitted", func(t *testing.T) {
		x := (&h{}).
			op(op{Client: 0, Kind: kPut, Key: "a", Value: "c0-1", Out: outFailed, Status: 503, Code: "unavailable"}, 0, 10).
			log(apply.OpPut, "a", "c0-1", 1, 5)
		_, msgs := x.check(t)
		if !hasViolation(msgs, "failed-but-committed") {
			t.Fatalf("got %q, want a failed-but-committed violation", msgs)
		}
	})
	t.Run("UnexplainedEntry", func(t *testing.T) {
		x := (&h{}).log(apply.OpPut, "b", "nobody", 1, 5).get(0, "leader", "b", "", 0, 0, 0, 1)
		_, msgs := x.check(t)
		if !hasViolation(msgs, "unexplained-entry") {
			t.Fatalf("got %q, want an unexplained-entry violation", msgs)
		}
	})
}

func TestCheckReads_NotALogPrefix(t *testing.T) {
	// An eventual follower read claims Replikv-Seq 2 but answers the value of seq 1.
	x := (&h{}).
		put(0, "a", "c0-1", 1, 0, 10).
		put(0, "a", "c0-2", 2, 20, 30).
		op(op{Client: 1, Kind: kGetEventual, Node: "f1", Key: "a", Out: outOK, Got: "c0-1", Version: 1, Seq: 2}, 40, 50)
	_, msgs := x.check(t)
	if !hasViolation(msgs, "not-a-log-prefix") {
		t.Fatalf("got %q, want a not-a-log-prefix violation", msgs)
	}
}

func TestCheckMonotonic(t *testing.T) {
	x := (&h{}).
		op(op{Client: 1, Kind: kGetEventual, Node: "f1", Key: "a", Out: outNotFound, Seq: 5, Run: 1}, 0, 10).
		op(op{Client: 2, Kind: kGetEventual, Node: "f1", Key: "b", Out: outNotFound, Seq: 3, Run: 1}, 20, 30). // back
		op(op{Client: 2, Kind: kGetEventual, Node: "f1", Key: "b", Out: outNotFound, Seq: 1, Run: 2}, 40, 50). // new run
		op(op{Client: 2, Kind: kGetEventual, Node: "f2", Key: "b", Out: outNotFound, Seq: 2, Run: 1}, 5, 8)
	v := checkMonotonic(x.ops)
	if len(v) != 1 || !strings.Contains(v[0].Msg, "#1 ") {
		t.Fatalf("got %+v, want exactly op #1 reported", v)
	}
}

func TestChunkKey_LongHistory(t *testing.T) {
	// A long sequential history is cut into chunks; a stale read at the end is still found, in a later chunk whose
	// initial state comes from the earlier ones.
	x := &h{}
	seq := uint64(0)
	for i := 0; i < 600; i++ {
		at := i * 10
		if i%3 == 0 {
			seq++
			x.put(i%4, "a", fmt.Sprintf("c%d-%d", i%4, i), seq, at, at+5)
		} else {
			x.get(i%4, "leader", "a", fmt.Sprintf("c%d-%d", (i/3*3)%4, i/3*3), seq, seq, at, at+5)
		}
	}
	if res, msgs := x.check(t); res != porcupine.Ok || len(msgs) > 0 {
		t.Fatalf("got %v %q, want Ok", res, msgs)
	}
	r := resolve(x.ops, newLogIndex(x.entries), []string{"a"}, 4)
	if n := len(chunkKey(r.hist["a"], 4)); n < 3 {
		t.Fatalf("%d chunks, want several", n)
	}
	x.get(1, "leader", "a", "c0-0", 1, 1, 6000, 6005)
	if res, _ := x.check(t); res != porcupine.Illegal {
		t.Fatalf("stale read at the end: got %v, want Illegal", res)
	}
}

func hasViolation(msgs []string, kind string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(m, kind+":") {
			return true
		}
	}
	return false
}

func TestSchedule_Replays(t *testing.T) {
	a, b := schedule(42, 3*time.Minute), schedule(42, 3*time.Minute)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("the same seed gave two schedules")
	}
	if fmt.Sprint(a) == fmt.Sprint(schedule(43, 3*time.Minute)) {
		t.Fatal("two seeds gave the same schedule")
	}
	for i := 1; i < len(a); i++ {
		if a[i].At < a[i-1].At+a[i-1].Hold+3*time.Second {
			t.Fatalf("fault %d (%v at %v) starts before fault %d is healed", i, a[i], a[i].At, i-1)
		}
	}
	if len(a) < 15 {
		t.Fatalf("%d faults in 3 minutes, want one every 8-10 s", len(a))
	}
}
