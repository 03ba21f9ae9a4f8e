//go:build chaos

package chaos

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// kInit is the synthetic operation that opens a chunk of a key's history with the state the previous chunks left
// (see chunkKey). It is not a client operation.
const kInit opKind = 100

// kvState is one key's state in the model. Last is the log sequence of the last write of the key (a delete
// included): writes must take effect in log order, so a committed write at seq S needs S > Last.
type kvState struct {
	Exists  bool
	Value   string
	Version uint64
	Last    uint64
}

// kvInput is what an operation asked. Seq is the log sequence of a committed write (from the answer or, for an
// unknown outcome, from the log).
type kvInput struct {
	Kind    opKind
	Key     string
	Node    string
	Value   string
	IfMatch uint64
	Seq     uint64
	Init    kvState // kInit only
}

// kvOutput is what an operation returned: outOK (a committed write, or a read of Value at Version), outNotFound (a
// read of an absent key, or a DELETE answered 404) or outPrecond (a CAS answered 412).
type kvOutput struct {
	Out     outcome
	Value   string
	Version uint64
}

// step is the model: a key-value register per key where every write carries its log sequence.
func step(state, input, output any) (bool, any) {
	s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
	switch in.Kind {
	case kInit:
		return true, in.Init
	case kPut:
		if out.Out != outOK || in.Seq <= s.Last {
			return false, s
		}
		return true, kvState{Exists: true, Value: in.Value, Version: in.Seq, Last: in.Seq}
	case kCAS:
		holds := s.Exists && s.Version == in.IfMatch
		switch out.Out {
		case outOK:
			if !holds || in.Seq <= s.Last {
				return false, s
			}
			return true, kvState{Exists: true, Value: in.Value, Version: in.Seq, Last: in.Seq}
		case outPrecond:
			// 412: at its linearization point the key did not have version IfMatch (absent, or another version).
			return !holds, s
		}
	case kDelete:
		switch out.Out {
		case outOK:
			if !s.Exists || in.Seq <= s.Last {
				return false, s
			}
			return true, kvState{Last: in.Seq}
		case outNotFound:
			return !s.Exists, s
		}
	case kGetLeader, kGetStrong:
		switch out.Out {
		case outOK:
			return s.Exists && s.Value == out.Value && s.Version == out.Version, s
		case outNotFound:
			return !s.Exists, s
		}
	}
	return false, s
}

var kvModel = porcupine.Model{
	Init:  func() any { return kvState{} },
	Step:  step,
	Equal: func(a, b any) bool { return a.(kvState) == b.(kvState) },
	DescribeOperation: func(input, output any) string {
		return describe(input.(kvInput), output.(kvOutput))
	},
	DescribeState: func(state any) string { return describeState(state.(kvState)) },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return fmt.Sprintf("op #%d", info.(int))
	},
}

func describeState(s kvState) string {
	if !s.Exists {
		return fmt.Sprintf("absent (last write %d)", s.Last)
	}
	return fmt.Sprintf("%s @%d", s.Value, s.Version)
}

func describe(in kvInput, out kvOutput) string {
	switch in.Kind {
	case kInit:
		return "state from earlier chunks: " + describeState(in.Init)
	case kPut:
		return fmt.Sprintf("put(%s) @%d", in.Value, in.Seq)
	case kCAS:
		if out.Out == outPrecond {
			return fmt.Sprintf("cas(%s if %d) -> 412", in.Value, in.IfMatch)
		}
		return fmt.Sprintf("cas(%s if %d) @%d", in.Value, in.IfMatch, in.Seq)
	case kDelete:
		if out.Out == outNotFound {
			return "delete -> 404"
		}
		return fmt.Sprintf("delete @%d", in.Seq)
	}
	where := in.Node
	if in.Kind == kGetStrong {
		where += " strong"
	}
	if out.Out == outNotFound {
		return fmt.Sprintf("get(%s) -> 404", where)
	}
	return fmt.Sprintf("get(%s) -> %s @%d", where, out.Value, out.Version)
}

// stateAfter is the state a committed write leaves.
func stateAfter(in kvInput) kvState {
	if in.Kind == kDelete {
		return kvState{Last: in.Seq}
	}
	return kvState{Exists: true, Value: in.Value, Version: in.Seq, Last: in.Seq}
}

// committed reports whether o is a write that took effect (at o's Input.Seq).
func committed(o porcupine.Operation) bool {
	in := o.Input.(kvInput)
	return in.Kind.isWrite() && o.Output.(kvOutput).Out == outOK
}

// minChunk is the fewest operations of a chunk before it may be cut.
const minChunk = 100

// chunkKey splits one key's history at points where no operation is pending (every earlier one returned before
// every later one was called). Every write before such a point takes effect before it, in log order (the model
// requires it), so the state at the point is the one the highest-sequence earlier committed write left: each
// chunk after the first starts with a kInit operation that sets it, and the chunks can be checked one by one. The
// history is linearizable exactly when every chunk is; the checker's cost is bounded by the chunks' size instead of
// the key's whole history.
func chunkKey(ops []porcupine.Operation, initClient int) [][]porcupine.Operation {
	ops = slices.Clone(ops)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var chunks [][]porcupine.Operation
	var cur []porcupine.Operation
	var maxRet int64
	var last *porcupine.Operation // the committed write with the highest sequence so far
	for i := range ops {
		o := ops[i]
		if len(cur) >= minChunk && o.Call > maxRet {
			chunks = append(chunks, cur)
			st := kvState{}
			if last != nil {
				st = stateAfter(last.Input.(kvInput))
			}
			cur = []porcupine.Operation{{
				ClientId: initClient, Input: kvInput{Kind: kInit, Key: o.Input.(kvInput).Key, Init: st},
				Output: kvOutput{}, Call: o.Call - 2, Return: o.Call - 1,
			}}
		}
		cur = append(cur, o)
		maxRet = max(maxRet, o.Return)
		if committed(o) && (last == nil || o.Input.(kvInput).Seq > last.Input.(kvInput).Seq) {
			last = &ops[i]
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// chunkVerdict is the checker's answer for one chunk that is not linearizable, or on which it ran out of time.
type chunkVerdict struct {
	Key      string
	Index    int // chunk number within the key
	Ops      []porcupine.Operation
	Result   porcupine.CheckResult
	Info     porcupine.LinearizationInfo // Illegal only
	Stuck    *porcupine.Operation        // Illegal: the first operation (by call) the longest partial linearization lacks
	From, To int64
}

// linReport is the outcome of checking every key.
type linReport struct {
	Chunks, Ops, LargestChunk int
	Took                      time.Duration
	Bad                       []chunkVerdict
}

// checkLinearizable checks each key's chunks with porcupine, within budget overall (chunks left when it runs out
// are reported Unknown).
func checkLinearizable(hist map[string][]porcupine.Operation, initClient int, budget time.Duration) linReport {
	start := time.Now()
	deadline := start.Add(budget)
	var r linReport
	keys := make([]string, 0, len(hist))
	for k := range hist {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for i, ch := range chunkKey(hist[k], initClient) {
			r.Chunks++
			r.Ops += len(ch)
			r.LargestChunk = max(r.LargestChunk, len(ch))
			left := time.Until(deadline)
			res := porcupine.Unknown
			if left > 0 {
				res = porcupine.CheckOperationsTimeout(kvModel, ch, left)
			}
			if res == porcupine.Ok {
				continue
			}
			v := chunkVerdict{Key: k, Index: i, Ops: ch, Result: res, From: ch[0].Call, To: ch[0].Return}
			for _, o := range ch {
				v.To = max(v.To, o.Return)
			}
			if res == porcupine.Illegal {
				v.Result, v.Info = porcupine.CheckOperationsVerbose(kvModel, ch, 30*time.Second)
				v.Stuck = stuckOp(ch, v.Info)
			}
			r.Bad = append(r.Bad, v)
		}
	}
	r.Took = time.Since(start)
	return r
}

// stuckOp is the first operation by call time that the longest partial linearization does not include: where the
// checker got stuck.
func stuckOp(ops []porcupine.Operation, info porcupine.LinearizationInfo) *porcupine.Operation {
	parts := info.PartialLinearizationsOperations()
	if len(parts) == 0 {
		return nil
	}
	var longest []porcupine.Operation
	for _, p := range parts[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	in := map[int64]bool{}
	for _, o := range longest {
		in[o.Call] = true
	}
	sorted := slices.Clone(ops)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	for i := range sorted {
		if !in[sorted[i].Call] {
			return &sorted[i]
		}
	}
	return nil
}
