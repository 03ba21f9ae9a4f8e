package apply

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// txnSeeds are well-formed transaction entries: the round-trip cases and the fuzz targets' seeds.
func txnSeeds() []Entry {
	return []Entry{
		{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("a"), Value: []byte{}}}},
		{Op: OpTxn, Ops: []TxnOp{{Op: OpDelete, Key: []byte("gone")}}},
		{Op: OpTxn, Ops: []TxnOp{
			{Op: OpPut, Key: []byte("user/1"), Value: []byte("hi")},
			{Op: OpDelete, Key: []byte("user/2")},
			{Op: OpPut, Key: []byte("user/3"), Value: bytes.Repeat([]byte{0, 1, 0xff}, 100)},
		}},
		{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("k"), Value: make([]byte, MaxValueLen)}}},
		txnOfPuts(MaxTxnOps, 8),
	}
}

// txnOfPuts is a transaction of n puts of distinct keys in order ("k0000", "k0001", ...) with values of size bytes.
func txnOfPuts(n, size int) Entry {
	e := Entry{Op: OpTxn, Ops: make([]TxnOp, n)}
	for i := range e.Ops {
		e.Ops[i] = TxnOp{Op: OpPut, Key: fmt.Appendf(nil, "k%04d", i), Value: bytes.Repeat([]byte{'v'}, size)}
	}
	return e
}

func TestAppendEntry_Txn(t *testing.T) {
	e := Entry{Op: OpTxn, Key: []byte("ignored"), Value: []byte("ignored"), Ops: []TxnOp{
		{Op: OpPut, Key: []byte("a"), Value: []byte("hi")},
		{Op: OpDelete, Key: []byte("b"), Value: []byte("ignored")},
	}}
	want := "0104" + "02" + "01" + "01" + "61" + "02" + "6869" + "02" + "01" + "62"
	if got := hex.EncodeToString(AppendEntry(nil, e)); got != want {
		t.Fatalf("AppendEntry = %s, want %s", got, want)
	}
}

func TestDecodeEntry_Txn(t *testing.T) {
	ok := AppendEntry(nil, Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("a"), Value: []byte("hi")},
		{Op: OpDelete, Key: []byte("b")}}})
	tooLong := AppendEntry(nil, txnOfPuts(2, MaxValueLen)) // two values that fit alone, not together
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"OK", ok, nil},
		{"NoCount", []byte("\x01\x04"), ErrMalformed},
		{"NoOperation", []byte("\x01\x04\x00"), ErrMalformed},
		{"CountNonCanonical", []byte("\x01\x04\x81\x00\x02\x01a"), ErrMalformed},
		{"CountOverLimit", []byte("\x01\x04\xe9\x07"), ErrTxnTooLarge},
		{"CountOverBytes", []byte("\x01\x04\x03\x02\x01a\x02\x01b"), ErrMalformed},
		{"CountHuge", []byte("\x01\x04\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x02\x01a"), ErrTxnTooLarge},
		{"OpZero", []byte("\x01\x04\x01\x00\x01a"), ErrMalformed},
		{"OpCheckpoint", []byte("\x01\x04\x01\x03\x01a"), ErrMalformed},
		{"OpTxnNested", []byte("\x01\x04\x01\x04\x01a"), ErrMalformed},
		{"KeyEmpty", []byte("\x01\x04\x01\x02\x00\x00"), ErrInvalidKey},
		{"KeyNUL", []byte("\x01\x04\x01\x02\x02a\x00"), ErrInvalidKey},
		{"KeyBadUTF8", []byte("\x01\x04\x01\x02\x02a\xff"), ErrInvalidKey},
		{"KeyTooLong", AppendEntry(nil, Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpDelete,
			Key: bytes.Repeat([]byte("k"), MaxKeyLen+1)}}}), ErrInvalidKey},
		{"KeyLenNonCanonical", []byte("\x01\x04\x01\x02\x81\x00a"), ErrMalformed},
		{"KeyTruncated", []byte("\x01\x04\x01\x02\x05abc"), ErrMalformed},
		{"KeysOutOfOrder", []byte("\x01\x04\x02\x02\x01b\x02\x01a"), ErrMalformed},
		{"KeyTwice", []byte("\x01\x04\x02\x02\x01a\x01\x01a\x00"), ErrMalformed},
		{"PutNoValueLen", []byte("\x01\x04\x01\x01\x01a"), ErrMalformed},
		{"ValueLenNonCanonical", []byte("\x01\x04\x01\x01\x01a\x80\x00"), ErrMalformed},
		{"ValueTruncated", []byte("\x01\x04\x01\x01\x01a\x03xy"), ErrMalformed},
		{"ValueTooLarge", AppendEntry(nil, Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("a"),
			Value: make([]byte, MaxValueLen+1)}}}), ErrValueTooLarge},
		{"ValueHugeLen", []byte("\x01\x04\x01\x01\x01a\xff\xff\xff\xff\x0f"), ErrValueTooLarge},
		{"Trailing", append(append([]byte(nil), ok...), 0), ErrMalformed},
		{"TrailingOp", []byte("\x01\x04\x01\x02\x01a\x02\x01b"), ErrMalformed},
		{"EntryTooLong", tooLong, ErrTxnTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEntry(tt.in)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeEntry = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEntry_TxnRoundTrip(t *testing.T) {
	for i, e := range txnSeeds() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			b := AppendEntry(nil, e)
			if TxnLen(e.Ops) != len(b) {
				t.Fatalf("TxnLen = %d, entry of %d bytes", TxnLen(e.Ops), len(b))
			}
			if err := ValidateTxn(e.Ops); err != nil {
				t.Fatalf("ValidateTxn: %v", err)
			}
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if got.Op != OpTxn || got.Key != nil || got.Value != nil || len(got.Ops) != len(e.Ops) {
				t.Fatalf("decoded %s with %d ops, want txn with %d", got.Op, len(got.Ops), len(e.Ops))
			}
			for j, o := range got.Ops {
				w := e.Ops[j]
				if o.Op != w.Op || !bytes.Equal(o.Key, w.Key) || !bytes.Equal(o.Value, w.Value) ||
					(o.Op == OpDelete) != (o.Value == nil) {
					t.Fatalf("op %d = %s %q (%d bytes), want %s %q", j, o.Op, o.Key, len(o.Value), w.Op, w.Key)
				}
				if cap(o.Key) != len(o.Key) || o.Value != nil && cap(o.Value) != len(o.Value) {
					t.Fatalf("op %d exposes bytes after its key or value", j)
				}
			}
			if again := AppendEntry(nil, got); !bytes.Equal(again, b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
	t.Run("ZeroCopy", func(t *testing.T) {
		b := AppendEntry(nil, Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("k"), Value: []byte("value")}}})
		e, err := DecodeEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] = 'X'
		if string(e.Ops[0].Value) != "valuX" {
			t.Fatalf("value does not alias the input: %q", e.Ops[0].Value)
		}
		// One allocation: the list of operations.
		if n := testing.AllocsPerRun(100, func() { _, _ = DecodeEntry(b) }); n != 1 {
			t.Fatalf("DecodeEntry allocates %v times, want 1", n)
		}
	})
}

func TestValidateTxn(t *testing.T) {
	put := func(k string, n int) TxnOp { return TxnOp{Op: OpPut, Key: []byte(k), Value: make([]byte, n)} }
	del := func(k string) TxnOp { return TxnOp{Op: OpDelete, Key: []byte(k)} }
	atLimit := func() []TxnOp {
		// Two puts whose entry is exactly MaxTxnLen bytes long.
		ops := []TxnOp{put("a", MaxValueLen), put("b", 0)}
		ops[1].Value = make([]byte, MaxTxnLen-TxnLen(ops)-2) // its length takes 3 bytes instead of 1
		return ops
	}
	over := atLimit()
	over[1].Value = append(over[1].Value, 0)
	tests := []struct {
		name    string
		ops     []TxnOp
		wantErr error
	}{
		{"OK", []TxnOp{put("a", 1), del("b"), put("c", 0)}, nil},
		{"MaxOps", txnOfPuts(MaxTxnOps, 0).Ops, nil},
		{"AtMaxLen", atLimit(), nil},
		{"Empty", nil, ErrMalformed},
		{"TooManyOps", txnOfPuts(MaxTxnOps+1, 0).Ops, ErrTxnTooLarge},
		{"TooLong", over, ErrTxnTooLarge},
		{"UnknownOp", []TxnOp{{Op: OpCheckpoint, Key: []byte("a")}}, ErrMalformed},
		{"InvalidKey", []TxnOp{put("a", 0), del("b\x00")}, ErrInvalidKey},
		{"ValueTooLarge", []TxnOp{put("a", MaxValueLen+1)}, ErrValueTooLarge},
		{"Unsorted", []TxnOp{put("b", 0), put("a", 0)}, ErrMalformed},
		{"Duplicate", []TxnOp{put("a", 0), del("a")}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTxn(tt.ops)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateTxn = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if _, err := DecodeEntry(AppendEntry(nil, Entry{Op: OpTxn, Ops: tt.ops})); err != nil {
					t.Fatalf("a valid transaction does not decode: %v", err)
				}
			}
		})
	}
}

func TestSortTxnOps(t *testing.T) {
	ops := []TxnOp{{Key: []byte("b")}, {Key: []byte("a/b")}, {Key: []byte("a")}, {Key: []byte("\u00e9")}}
	SortTxnOps(ops)
	var got []string
	for _, o := range ops {
		got = append(got, string(o.Key))
	}
	if strings.Join(got, ",") != "a,a/b,b,\u00e9" {
		t.Fatalf("sorted = %q", got)
	}
}

func TestAppendMutations(t *testing.T) {
	txn := Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("a"), Value: []byte("1")}, {Op: OpDelete, Key: []byte("b")}}}
	muts := AppendMutations(nil, 9, Entry{Op: OpPut, Key: []byte("p"), Value: []byte("v")})
	muts = AppendMutations(muts, 10, Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}})
	muts = AppendMutations(muts, 11, txn)
	muts = AppendMutations(muts, 12, Entry{Op: OpDelete, Key: []byte("p")})
	want := []Mutation{
		{Key: []byte("p"), Value: []byte("v"), Version: 9},
		{Key: []byte("a"), Value: []byte("1"), Version: 11},
		{Key: []byte("b"), Version: 11, Delete: true},
		{Key: []byte("p"), Version: 12, Delete: true},
	}
	if len(muts) != len(want) {
		t.Fatalf("%d mutations, want %d: %+v", len(muts), len(want), muts)
	}
	for i, m := range muts {
		w := want[i]
		if !bytes.Equal(m.Key, w.Key) || !bytes.Equal(m.Value, w.Value) || m.Version != w.Version || m.Delete != w.Delete ||
			m.Delete && m.Value != nil {
			t.Errorf("mutation %d = %+v, want %+v", i, m, w)
		}
	}
}

func BenchmarkDecodeEntry_Txn(b *testing.B) {
	buf := AppendEntry(nil, txnOfPuts(100, 128))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(buf); err != nil {
			b.Fatal(err)
		}
	}
}
