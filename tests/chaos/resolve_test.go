//go:build chaos

package chaos

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/replikv/replikv/internal/apply"
)

// violation is one thing the checks found wrong, with the window of the history it concerns.
type violation struct {
	Kind     string
	Msg      string
	From, To int64
}

// deleteMatchSlack is how much later than a delete entry's server timestamp its client op may have been called and
// still be matched to it (both clocks are this machine's).
const deleteMatchSlack = time.Second

// resolution is the porcupine history built from the client ops and the log.
type resolution struct {
	hist       map[string][]porcupine.Operation // per key
	initClient int                              // the client id of synthetic operations
	unknown    int                              // writes with an unknown outcome
	committed  int                              // ... that the log holds
	dropped    int                              // ... that it does not: never committed
	violations []violation
}

// resolve turns the recorded ops into per-key porcupine histories, with every write's effect known from the log:
//
//   - An acknowledged write must be in the log at the answered version (else a violation: a lost write).
//   - A write with an unknown outcome is committed exactly when its value (unique per write) is in the log; then it
//     takes effect at that sequence, between its call and the first return of an operation on its key that proves
//     it happened (a committed write after it in the log, or a read of it or of a later write); the end of the
//     history if none. Otherwise it never happened and is dropped.
//   - A definite no-op (503 "unavailable", 412) that the log holds anyway is a violation, and is then treated as a
//     committed write of unknown outcome so that the rest of the history is still checked.
//   - Deletes carry no value: the log's delete entries of a key that no acknowledged delete claims are matched, in
//     log order, to the key's earliest-called unknown deletes (then 503 "unavailable" deletes, a violation) called no
//     later than the entry's server timestamp (plus deleteMatchSlack). Earlier calls give wider windows, so this
//     matching is the most permissive one.
//   - A log entry of the key space that no client op explains is a violation, and is added as a synthetic write.
//
// Reads go in only when linearizable (leader and strong follower reads) and answered 200 or 404.
func resolve(ops []op, l *logIndex, keys []string, numClients int) *resolution {
	r := &resolution{hist: map[string][]porcupine.Operation{}, initClient: numClients}
	var end int64
	for i := range ops {
		end = max(end, ops[i].Return)
	}
	end++
	claimed := map[uint64]bool{}
	type pending struct {
		key string
		idx int // index in hist[key]
	}
	var needBound []pending
	add := func(o *op, in kvInput, out kvOutput, ret int64) int {
		in.Key, in.Node = o.Key, o.Node
		r.hist[o.Key] = append(r.hist[o.Key], porcupine.Operation{
			ClientId: o.Client, Input: in, Call: o.Call, Output: out, Return: ret, Metadata: o.ID,
		})
		return len(r.hist[o.Key]) - 1
	}
	addUnknownCommit := func(o *op, seq uint64) {
		i := add(o, kvInput{Kind: o.Kind, Value: o.Value, IfMatch: o.IfMatch, Seq: seq}, kvOutput{Out: outOK}, end)
		needBound = append(needBound, pending{o.Key, i})
	}
	bad := func(kind string, o *op, format string, args ...any) {
		r.violations = append(r.violations, violation{Kind: kind, Msg: o.String() + ": " + fmt.Sprintf(format, args...),
			From: o.Call, To: o.Return})
	}

	byCall := make([]*op, 0, len(ops))
	for i := range ops {
		byCall = append(byCall, &ops[i])
	}
	sort.SliceStable(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	openDeletes := map[string][]*op{} // unknown deletes, then 503-unavailable deletes, per key: matched below
	failedDeletes := map[string][]*op{}
	for _, o := range byCall {
		if o.Kind.isWrite() && o.Out == outUnknown {
			r.unknown++
		}
		switch o.Kind {
		case kPut, kCAS:
			seqs := l.valueSeq[o.Value]
			if len(seqs) > 1 {
				bad("duplicate-write", o, "value written %d times, at sequences %v", len(seqs), seqs)
			}
			var seq uint64
			if len(seqs) > 0 {
				seq = seqs[0]
				claimed[seq] = true
				if e, _ := l.entry(seq); e.Key != o.Key {
					bad("wrong-key", o, "the log has the value under key %q at %d", e.Key, seq)
				}
			}
			switch o.Out {
			case outOK:
				switch {
				case seq == 0:
					bad("lost-write", o, "acknowledged at version %d, but the value is not in the log", o.Version)
					seq = o.Version
				case seq != o.Version:
					bad("wrong-version", o, "acknowledged at version %d, but the log has it at %d", o.Version, seq)
				}
				add(o, kvInput{Kind: o.Kind, Value: o.Value, IfMatch: o.IfMatch, Seq: seq}, kvOutput{Out: outOK}, o.Return)
			case outUnknown:
				if seq == 0 {
					r.dropped++
					continue
				}
				r.committed++
				addUnknownCommit(o, seq)
			case outFailed:
				if seq != 0 {
					bad("failed-but-committed", o, "answered 503 %q (certainly not committed), but the log has it at %d",
						o.Code, seq)
					addUnknownCommit(o, seq)
				}
			case outPrecond:
				if seq != 0 {
					bad("failed-but-committed", o, "answered 412, but the log has it at %d", seq)
					addUnknownCommit(o, seq)
					continue
				}
				add(o, kvInput{Kind: kCAS, IfMatch: o.IfMatch}, kvOutput{Out: outPrecond}, o.Return)
			}
		case kDelete:
			switch o.Out {
			case outOK:
				e, ok := l.entry(o.Version)
				if !ok || e.Op != apply.OpDelete || e.Key != o.Key {
					bad("lost-write", o, "acknowledged at version %d, but the log has no delete of the key there", o.Version)
				} else {
					claimed[o.Version] = true
				}
				add(o, kvInput{Kind: kDelete, Seq: o.Version}, kvOutput{Out: outOK}, o.Return)
			case outNotFound:
				add(o, kvInput{Kind: kDelete}, kvOutput{Out: outNotFound}, o.Return)
			case outUnknown:
				openDeletes[o.Key] = append(openDeletes[o.Key], o)
			case outFailed:
				failedDeletes[o.Key] = append(failedDeletes[o.Key], o)
			}
		case kGetLeader, kGetStrong:
			switch o.Out {
			case outOK:
				add(o, kvInput{Kind: o.Kind}, kvOutput{Out: outOK, Value: o.Got, Version: o.Version}, o.Return)
			case outNotFound:
				add(o, kvInput{Kind: o.Kind}, kvOutput{Out: outNotFound}, o.Return)
			}
		}
	}

	inKeySpace := map[string]bool{}
	for _, k := range keys {
		inKeySpace[k] = true
	}
	used := map[*op]bool{}
	take := func(cands []*op, e logEntry) *op {
		for _, o := range cands {
			if !used[o] && o.Call <= e.At+int64(deleteMatchSlack) {
				used[o] = true
				return o
			}
		}
		return nil
	}
	ghost := 0
	for _, e := range l.entries {
		if claimed[e.Seq] || !inKeySpace[e.Key] {
			continue
		}
		if e.Op == apply.OpDelete {
			if o := take(openDeletes[e.Key], e); o != nil {
				r.committed++
				addUnknownCommit(o, e.Seq)
				continue
			}
			if o := take(failedDeletes[e.Key], e); o != nil {
				bad("failed-but-committed", o, "answered 503 %q (certainly not committed), but a delete of the key "+
					"that no other op explains is in the log at %d", o.Code, e.Seq)
				addUnknownCommit(o, e.Seq)
				continue
			}
		}
		// Nobody wrote it: a synthetic write whose window covers the 10 s before its server timestamp.
		ghost--
		g := &op{ID: ghost, Client: r.initClient, Kind: kPut, Key: e.Key, Node: "?", Value: e.Value,
			Call: max(0, e.At-int64(10*time.Second)), Return: e.At + int64(time.Second)}
		if e.Op == apply.OpDelete {
			g.Kind = kDelete
		}
		r.violations = append(r.violations, violation{Kind: "unexplained-entry",
			Msg:  fmt.Sprintf("log entry %d (%s %s %q) was written by no client op", e.Seq, e.Op, e.Key, e.Value),
			From: g.Call, To: g.Return})
		addUnknownCommit(g, e.Seq)
	}
	for _, ds := range openDeletes {
		for _, o := range ds {
			if !used[o] {
				r.dropped++
			}
		}
	}

	// Bound the return of each committed write of unknown outcome by the first operation on its key that proves it
	// took effect. Other such writes prove nothing: their returns are bounds themselves.
	isPending := map[string]map[int]bool{}
	for _, p := range needBound {
		if isPending[p.key] == nil {
			isPending[p.key] = map[int]bool{}
		}
		isPending[p.key][p.idx] = true
	}
	for _, p := range needBound {
		h := r.hist[p.key]
		w := &h[p.idx]
		s := w.Input.(kvInput).Seq
		bound := w.Return
		for j := range h {
			if h[j].Return >= bound || isPending[p.key][j] {
				continue
			}
			in, out := h[j].Input.(kvInput), h[j].Output.(kvOutput)
			proves := (in.Kind.isWrite() && out.Out == outOK && in.Seq > s) ||
				(!in.Kind.isWrite() && out.Out == outOK && out.Version >= s)
			if proves {
				bound = h[j].Return
			}
		}
		w.Return = max(bound, w.Call+1)
	}
	return r
}
