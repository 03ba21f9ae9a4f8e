//go:build chaos

package chaos

import (
	"fmt"
	"sort"
)

// checkReads checks every answered read (any node, any consistency) against the log: the answer must be the key's
// state in the log's prefix up to the answer's Replikv-Seq (a node serves a prefix of the log, never anything
// else), a min_seq read must answer at a sequence of at least min_seq, and no answer may claim a sequence the log
// does not have.
func checkReads(ops []op, l *logIndex) []violation {
	var out []violation
	for i := range ops {
		o := &ops[i]
		if o.Kind.isWrite() || (o.Out != outOK && o.Out != outNotFound) {
			continue
		}
		bad := func(kind, format string, args ...any) {
			out = append(out, violation{Kind: kind, Msg: o.String() + ": " + fmt.Sprintf(format, args...), From: o.Call, To: o.Return})
		}
		if o.Seq > l.last {
			bad("read-beyond-log", "Replikv-Seq %d is beyond the log's last sequence %d", o.Seq, l.last)
			continue
		}
		if o.Kind == kGetMinSeq && o.Seq < o.MinSeq {
			bad("min-seq", "answered at sequence %d, below min_seq %d", o.Seq, o.MinSeq)
		}
		want := l.stateAt(o.Key, o.Seq)
		got := keyState{Exists: o.Out == outOK, Value: o.Got, Version: o.Version}
		if got != want {
			bad("not-a-log-prefix", "the log's prefix up to %d has %s", o.Seq, describeKeyState(want))
		}
	}
	return out
}

func describeKeyState(s keyState) string {
	if !s.Exists {
		return "no such key"
	}
	return fmt.Sprintf("%s @%d", s.Value, s.Version)
}

// checkMonotonic checks that reads of one node never go back: within one run of a node's process, a read called
// after another read of the same node returned answers at a Replikv-Seq at least as high. Across a restart this is
// not promised (the local store is not fsynced per write and recovers a consistent but possibly earlier prefix
// after a crash; a wiped data dir starts over), so reads during which the node restarted (Run 0) are left out and
// each run is checked apart.
func checkMonotonic(ops []op) []violation {
	type group struct {
		node string
		run  int
	}
	groups := map[group][]*op{}
	for i := range ops {
		o := &ops[i]
		if o.Kind.isWrite() || o.Run == 0 || (o.Out != outOK && o.Out != outNotFound) {
			continue
		}
		g := group{o.Node, o.Run}
		groups[g] = append(groups[g], o)
	}
	var out []violation
	for g, reads := range groups {
		byRet := append([]*op(nil), reads...)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].Return < byRet[j].Return })
		byCall := append([]*op(nil), reads...)
		sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
		var best *op // the highest Seq among the reads returned so far
		j, reported := 0, 0
		for _, o := range byCall {
			for ; j < len(byRet) && byRet[j].Return < o.Call; j++ {
				if best == nil || byRet[j].Seq > best.Seq {
					best = byRet[j]
				}
			}
			if best != nil && o.Seq < best.Seq {
				reported++
				if reported <= 20 {
					out = append(out, violation{Kind: "non-monotonic-read",
						Msg: fmt.Sprintf("%s run %d: %s answered at sequence %d after %s had answered at %d",
							g.node, g.run, o, o.Seq, best, best.Seq),
						From: best.Call, To: o.Return})
				}
			}
		}
		if reported > 20 {
			out = append(out, violation{Kind: "non-monotonic-read",
				Msg: fmt.Sprintf("%s run %d: %d more reads went back (not listed)", g.node, g.run, reported-20)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}

// longestWriteOutage is the longest time between two acknowledged writes (or from the first op to the first
// acknowledged write, or from the last one to the end of the history), with its window.
func longestWriteOutage(ops []op) (gap, from, to int64) {
	var acks []int64
	var first, last int64 = -1, 0
	for i := range ops {
		o := &ops[i]
		if first < 0 || o.Call < first {
			first = o.Call
		}
		last = max(last, o.Return)
		if o.Kind.isWrite() && o.Out == outOK {
			acks = append(acks, o.Return)
		}
	}
	if first < 0 {
		return 0, 0, 0
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	prev := first
	for _, a := range append(acks, last) {
		if a-prev > gap {
			gap, from, to = a-prev, prev, a
		}
		prev = a
	}
	return gap, from, to
}

// checkStaleReads pinpoints the simplest linearizability violation, which porcupine reports only as a chunk: a
// leader or strong follower read that misses a write acknowledged before the read was called. With S the highest
// sequence of a write of the key acknowledged before the call, the answer must be the key's state at some sequence
// at or after S: a version above S, the version of the state at S, or "absent" when the key is absent at S or
// deleted later. It is a sufficient check only (porcupine does the rest), so it never reports a history porcupine
// accepts.
func checkStaleReads(ops []op, l *logIndex) []violation {
	type ack struct {
		ret int64
		seq uint64
	}
	acks := map[string][]ack{}
	for i := range ops {
		o := &ops[i]
		if o.Kind.isWrite() && o.Out == outOK {
			acks[o.Key] = append(acks[o.Key], ack{o.Return, o.Version})
		}
	}
	prefixMax := map[string][]uint64{} // per key, by return time: the highest sequence acknowledged so far
	for k, as := range acks {
		sort.Slice(as, func(i, j int) bool { return as[i].ret < as[j].ret })
		pm := make([]uint64, len(as))
		var m uint64
		for i, a := range as {
			m = max(m, a.seq)
			pm[i] = m
		}
		prefixMax[k] = pm
	}
	var out []violation
	for i := range ops {
		o := &ops[i]
		if (o.Kind != kGetLeader && o.Kind != kGetStrong) || (o.Out != outOK && o.Out != outNotFound) {
			continue
		}
		as := acks[o.Key]
		n := sort.Search(len(as), func(i int) bool { return as[i].ret >= o.Call })
		if n == 0 {
			continue
		}
		s := prefixMax[o.Key][n-1]
		at := l.stateAt(o.Key, s)
		var ok bool
		if o.Out == outOK {
			ok = o.Version > s || (at.Exists && at.Version == o.Version)
		} else {
			ok = !at.Exists || l.deletedAfter(o.Key, s)
		}
		if !ok {
			out = append(out, violation{Kind: "stale-read", From: o.Call, To: o.Return,
				Msg: fmt.Sprintf("%s: a write of the key at %d was acknowledged before this read began (state then: %s)",
					o, s, describeKeyState(at))})
		}
	}
	return out
}
