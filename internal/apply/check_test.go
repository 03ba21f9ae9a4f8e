package apply

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	absent := Current{}
	at7 := Current{Version: 7, Exists: true}
	tests := []struct {
		name string
		op   Op
		cur  Current
		c    Cond
		want error
	}{
		{"PutNew", OpPut, absent, Cond{}, nil},
		{"PutOverwrite", OpPut, at7, Cond{}, nil},
		{"PutIfMatchOK", OpPut, at7, Cond{IfMatch: 7, HasIfMatch: true}, nil},
		{"PutIfMatchOther", OpPut, at7, Cond{IfMatch: 6, HasIfMatch: true}, ErrPrecondition},
		{"PutIfMatchAbsent", OpPut, absent, Cond{IfMatch: 0, HasIfMatch: true}, ErrPrecondition},
		{"PutIfMatchZeroIgnoredWithoutFlag", OpPut, at7, Cond{IfMatch: 3}, nil},
		{"PutIfNoneMatchAbsent", OpPut, absent, Cond{IfNoneMatch: true}, nil},
		{"PutIfNoneMatchExists", OpPut, at7, Cond{IfNoneMatch: true}, ErrPrecondition},
		{"PutBothConflicting", OpPut, at7, Cond{IfMatch: 7, HasIfMatch: true, IfNoneMatch: true}, ErrPrecondition},
		{"DeleteExists", OpDelete, at7, Cond{}, nil},
		{"DeleteAbsent", OpDelete, absent, Cond{}, ErrNotFound},
		{"DeleteIfMatchOK", OpDelete, at7, Cond{IfMatch: 7, HasIfMatch: true}, nil},
		{"DeleteIfMatchAbsent", OpDelete, absent, Cond{IfMatch: 7, HasIfMatch: true}, ErrPrecondition},
		{"DeleteIfMatchOther", OpDelete, at7, Cond{IfMatch: 8, HasIfMatch: true}, ErrPrecondition},
		{"DeleteIfNoneMatchAbsent", OpDelete, absent, Cond{IfNoneMatch: true}, ErrNotFound},
		{"DeleteIfNoneMatchExists", OpDelete, at7, Cond{IfNoneMatch: true}, ErrPrecondition},
		{"UnknownOp", Op(3), absent, Cond{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.op, tt.cur, tt.c)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestToMutation(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		want Mutation
	}{
		{"Put", Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v")}, Mutation{Key: []byte("k"), Value: []byte("v"), Version: 42}},
		{"PutEmpty", Entry{Op: OpPut, Key: []byte("k"), Value: []byte{}}, Mutation{Key: []byte("k"), Value: []byte{}, Version: 42}},
		{"Delete", Entry{Op: OpDelete, Key: []byte("k"), Value: []byte("ignored")}, Mutation{Key: []byte("k"), Version: 42, Delete: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToMutation(42, tt.e)
			if string(got.Key) != string(tt.want.Key) || string(got.Value) != string(tt.want.Value) ||
				(got.Value == nil) != (tt.want.Value == nil) || got.Version != tt.want.Version || got.Delete != tt.want.Delete {
				t.Fatalf("ToMutation = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	const maxU = ^uint64(0)
	tests := []struct {
		name         string
		applied, seq uint64
		want         Action
	}{
		{"FirstEver", 0, 1, ActionApply},
		{"Next", 41, 42, ActionApply},
		{"Same", 42, 42, ActionSkip},
		{"Older", 42, 10, ActionSkip},
		{"ZeroSeq", 0, 0, ActionSkip},
		{"Gap", 42, 44, ActionGap},
		{"GapFromEmpty", 0, 1000, ActionGap},
		{"NearMax", maxU - 1, maxU, ActionApply},
		{"AtMax", maxU, maxU, ActionSkip},
		{"HugeGap", 0, maxU, ActionGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.applied, tt.seq); got != tt.want {
				t.Fatalf("Classify(%d, %d) = %v, want %v", tt.applied, tt.seq, got, tt.want)
			}
		})
	}
}

func TestAction_String(t *testing.T) {
	tests := []struct {
		a    Action
		want string
	}{{ActionApply, "apply"}, {ActionSkip, "skip"}, {ActionGap, "gap"}, {Action(7), "action(7)"}}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("Action(%d).String() = %q, want %q", uint8(tt.a), got, tt.want)
		}
	}
}
