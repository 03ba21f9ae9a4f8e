package apply

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testDigest is a state digest for checkpoint entries: SHA-256 of nothing (the empty store's digest).
var (
	testDigestHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	testDigest    = func() (d [DigestSize]byte) {
		if _, err := hex.Decode(d[:], []byte(testDigestHex)); err != nil {
			panic(err)
		}
		return d
	}()
)

func TestAppendEntry(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		hex  string
	}{
		{"Put", Entry{Op: OpPut, Key: []byte("user/1"), Value: []byte("hi")}, "0101" + "06" + "757365722f31" + "02" + "6869"},
		{"PutEmptyValue", Entry{Op: OpPut, Key: []byte("k")}, "0101" + "01" + "6b" + "00"},
		{"Delete", Entry{Op: OpDelete, Key: []byte("k")}, "0102" + "01" + "6b"},
		{"DeleteIgnoresValue", Entry{Op: OpDelete, Key: []byte("k"), Value: []byte("x")}, "0102016b"},
		{"LongKey", Entry{Op: OpDelete, Key: bytes.Repeat([]byte("a"), 200)}, "0102" + "c801" + strings.Repeat("61", 200)},
		{"CheckpointMark", Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}}, "010301"},
		{"CheckpointMarkIgnoresFields", Entry{Op: OpCheckpoint, Key: []byte("k"), Value: []byte("v"),
			Checkpoint: Checkpoint{Kind: CheckpointMark, Seq: 7, Keys: 3, Digest: testDigest}}, "010301"},
		{"CheckpointResult", Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointResult, Seq: 300, Keys: 2,
			Digest: testDigest}}, "010302" + "ac02" + "02" + testDigestHex},
		{"Term", Entry{Op: OpTerm, Term: 300}, "0105" + "ac02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hex.EncodeToString(AppendEntry(nil, tt.e))
			if got != tt.hex {
				t.Fatalf("AppendEntry = %s, want %s", got, tt.hex)
			}
		})
	}
	t.Run("Appends", func(t *testing.T) {
		got := AppendEntry([]byte("xy"), Entry{Op: OpDelete, Key: []byte("k")})
		if string(got) != "xy\x01\x02\x01k" {
			t.Fatalf("AppendEntry kept prefix wrong: %q", got)
		}
	})
}

func TestDecodeEntry(t *testing.T) {
	maxKey := strings.Repeat("k", MaxKeyLen)
	maxVal := make([]byte, MaxValueLen)
	tests := []struct {
		name    string
		in      []byte
		want    Entry
		wantErr error
	}{
		{"Put", []byte("\x01\x01\x01k\x02hi"), Entry{Op: OpPut, Key: []byte("k"), Value: []byte("hi")}, nil},
		{"PutEmptyValue", []byte("\x01\x01\x01k\x00"), Entry{Op: OpPut, Key: []byte("k"), Value: []byte{}}, nil},
		{"Delete", []byte("\x01\x02\x01k"), Entry{Op: OpDelete, Key: []byte("k")}, nil},
		{"UTF8Key", []byte("\x01\x02\x03\xe2\x82\xac"), Entry{Op: OpDelete, Key: []byte("€")}, nil},
		{"MaxKey", AppendEntry(nil, Entry{Op: OpDelete, Key: []byte(maxKey)}), Entry{Op: OpDelete, Key: []byte(maxKey)}, nil},
		{"MaxValue", AppendEntry(nil, Entry{Op: OpPut, Key: []byte("k"), Value: maxVal}),
			Entry{Op: OpPut, Key: []byte("k"), Value: maxVal}, nil},
		{"Empty", nil, Entry{}, ErrMalformed},
		{"VersionZero", []byte("\x00\x01\x01k\x00"), Entry{}, ErrUnsupportedVersion},
		{"VersionTwo", []byte("\x02\x01\x01k\x00"), Entry{}, ErrUnsupportedVersion},
		{"VersionOnly", []byte("\x01"), Entry{}, ErrMalformed},
		{"OpZero", []byte("\x01\x00\x01k"), Entry{}, ErrMalformed},
		{"OpUnknown", []byte("\x01\x07\x01k"), Entry{}, ErrMalformed},
		{"Term", []byte("\x01\x05\x07"), Entry{Op: OpTerm, Term: 7}, nil},
		{"TermLarge", []byte("\x01\x05\xac\x02"), Entry{Op: OpTerm, Term: 300}, nil},
		{"TermZero", []byte("\x01\x05\x00"), Entry{}, ErrMalformed},
		{"TermMissing", []byte("\x01\x05"), Entry{}, ErrMalformed},
		{"TermNonCanonical", []byte("\x01\x05\x87\x00"), Entry{}, ErrMalformed},
		{"TermTrailing", []byte("\x01\x05\x07\x00"), Entry{}, ErrMalformed},
		{"TermOverflow", []byte("\x01\x05\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), Entry{}, ErrMalformed},
		{"CheckpointMark", []byte("\x01\x03\x01"), Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}}, nil},
		{"CheckpointResult", append([]byte("\x01\x03\x02\x05\x00"), testDigest[:]...),
			Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointResult, Seq: 5, Digest: testDigest}}, nil},
		{"CheckpointNoKind", []byte("\x01\x03"), Entry{}, ErrMalformed},
		{"CheckpointKindZero", []byte("\x01\x03\x00"), Entry{}, ErrMalformed},
		{"CheckpointKindUnknown", []byte("\x01\x03\x03"), Entry{}, ErrMalformed},
		{"CheckpointMarkTrailing", []byte("\x01\x03\x01\x00"), Entry{}, ErrMalformed},
		{"CheckpointResultSeqZero", append([]byte("\x01\x03\x02\x00\x00"), testDigest[:]...), Entry{}, ErrMalformed},
		{"CheckpointResultSeqNonCanonical", append([]byte("\x01\x03\x02\x85\x00\x00"), testDigest[:]...), Entry{}, ErrMalformed},
		{"CheckpointResultKeysNonCanonical", append([]byte("\x01\x03\x02\x05\x80\x00"), testDigest[:]...), Entry{}, ErrMalformed},
		{"CheckpointResultNoKeys", []byte("\x01\x03\x02\x05"), Entry{}, ErrMalformed},
		{"CheckpointResultDigestShort", append([]byte("\x01\x03\x02\x05\x00"), testDigest[:31]...), Entry{}, ErrMalformed},
		{"CheckpointResultDigestLong", append(append([]byte("\x01\x03\x02\x05\x00"), testDigest[:]...), 0), Entry{}, ErrMalformed},
		{"NoKeyLen", []byte("\x01\x01"), Entry{}, ErrMalformed},
		{"KeyLenOverflow", []byte("\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), Entry{}, ErrMalformed},
		{"KeyLenNonCanonical", []byte("\x01\x02\x81\x00k"), Entry{}, ErrMalformed},
		{"KeyTruncated", []byte("\x01\x02\x05abc"), Entry{}, ErrMalformed},
		{"KeyEmpty", []byte("\x01\x02\x00"), Entry{}, ErrInvalidKey},
		{"KeyTooLong", AppendEntry(nil, Entry{Op: OpDelete, Key: []byte(maxKey + "k")}), Entry{}, ErrInvalidKey},
		{"KeyHugeLen", []byte("\x01\x02\xff\xff\xff\xff\x0f"), Entry{}, ErrInvalidKey},
		{"KeyNUL", []byte("\x01\x02\x03a\x00b"), Entry{}, ErrInvalidKey},
		{"KeyBadUTF8", []byte("\x01\x02\x02a\xff"), Entry{}, ErrInvalidKey},
		{"DeleteWithValue", []byte("\x01\x02\x01k\x00"), Entry{}, ErrMalformed},
		{"PutNoValueLen", []byte("\x01\x01\x01k"), Entry{}, ErrMalformed},
		{"ValueLenNonCanonical", []byte("\x01\x01\x01k\x80\x00"), Entry{}, ErrMalformed},
		{"ValueTruncated", []byte("\x01\x01\x01k\x03ab"), Entry{}, ErrMalformed},
		{"ValueTrailing", []byte("\x01\x01\x01k\x01abc"), Entry{}, ErrMalformed},
		{"ValueTooLarge", AppendEntry(nil, Entry{Op: OpPut, Key: []byte("k"), Value: make([]byte, MaxValueLen+1)}),
			Entry{}, ErrValueTooLarge},
		{"ValueHugeLen", []byte("\x01\x01\x01k\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), Entry{}, ErrValueTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEntry(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("DecodeEntry err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if got.Op != tt.want.Op || !bytes.Equal(got.Key, tt.want.Key) || !bytes.Equal(got.Value, tt.want.Value) ||
				(got.Value == nil) != (tt.want.Value == nil) || got.Checkpoint != tt.want.Checkpoint || got.Term != tt.want.Term {
				t.Fatalf("DecodeEntry = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeEntry_ZeroCopy(t *testing.T) {
	b := AppendEntry(nil, Entry{Op: OpPut, Key: []byte("key"), Value: []byte("value")})
	e, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'X'
	if string(e.Value) != "valuX" {
		t.Fatalf("value does not alias the input: %q", e.Value)
	}
	if cap(e.Key) != len(e.Key) {
		t.Fatalf("key capacity %d exposes bytes after it", cap(e.Key))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = DecodeEntry(b) }); n != 0 {
		t.Fatalf("DecodeEntry allocates %v times", n)
	}
}

func TestEntry_RoundTrip(t *testing.T) {
	tests := []Entry{
		{Op: OpPut, Key: []byte("a"), Value: []byte{}},
		{Op: OpPut, Key: []byte("a/b/c"), Value: bytes.Repeat([]byte{0, 1, 0xff}, 1000)},
		{Op: OpPut, Key: []byte(strings.Repeat("é", MaxKeyLen/2)), Value: make([]byte, MaxValueLen)},
		{Op: OpDelete, Key: []byte("gone")},
		{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}},
		{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointResult, Seq: 1<<63 + 5, Keys: 1 << 40, Digest: testDigest}},
		{Op: OpTerm, Term: 1},
		{Op: OpTerm, Term: 1<<64 - 1},
	}
	for i, e := range tests {
		t.Run(fmt.Sprintf("%s/%d", e.Op, i), func(t *testing.T) {
			b := AppendEntry(nil, e)
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if got.Op != e.Op || !bytes.Equal(got.Key, e.Key) || !bytes.Equal(got.Value, e.Value) ||
				got.Checkpoint != e.Checkpoint || got.Term != e.Term {
				t.Fatalf("round trip changed the entry")
			}
			if again := AppendEntry(nil, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

func TestOp_String(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{{OpPut, "put"}, {OpDelete, "delete"}, {OpCheckpoint, "checkpoint"}, {OpTxn, "txn"}, {OpTerm, "term"}, {0, "op(0)"}, {9, "op(9)"}}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(tt.op), got, tt.want)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte("\x01\x01\x01k\x02hi"))
	f.Add([]byte("\x01\x02\x01k"))
	f.Add([]byte("\x01\x01\x03\xe2\x82\xac\x00"))
	f.Add([]byte("\x01\x02\x81\x00k"))
	f.Add([]byte("\x02\x01\x01k\x00"))
	f.Add([]byte("\x01\x03\x01"))
	f.Add(AppendEntry(nil, Entry{Op: OpTerm, Term: 1 << 40}))
	f.Add(AppendEntry(nil, Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointResult, Seq: 9, Keys: 4, Digest: testDigest}}))
	for _, e := range txnSeeds() {
		f.Add(AppendEntry(nil, e))
	}
	f.Add([]byte("\x01\x04\x02\x02\x01b\x02\x01a")) // keys out of order
	f.Add([]byte("\x01\x04\x02\x02\x01a\x02\x01a")) // a key twice
	f.Add([]byte("\x01\x04\x00"))                   // no operation
	for _, e := range idemSeeds() {
		f.Add(AppendEntry(nil, e))
	}
	rec := idemRecordBytes("k1", testIdemHash, 1700000000000)
	f.Add(idemEntry(rec, "\x03\x01"))                                      // a checkpoint with a record
	f.Add(idemEntry(rec, "\x05\x07"))                                      // a term with a record
	f.Add(idemEntry(rec, "\x06"+string(rec)+"\x02\x01k"))                  // two records
	f.Add(idemEntry(rec, ""))                                              // nothing after the record
	f.Add(idemEntry(idemRecordBytes("a b", testIdemHash, 1), "\x02\x01k")) // a key with a space
	f.Add(idemEntry(idemRecordBytes("k1", testIdemHash, 0), "\x02\x01k"))  // at 0
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) &&
				!errors.Is(err, ErrInvalidKey) && !errors.Is(err, ErrValueTooLarge) && !errors.Is(err, ErrTxnTooLarge) {
				t.Fatalf("DecodeEntry error wraps no sentinel: %v", err)
			}
			return
		}
		if again := AppendEntry(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
		idemLen, idemMuts := 0, 0 // the bytes and the mutation an idempotency record adds
		if len(e.Idem.Key) > 0 {
			if !e.Mutates() || ValidateIdemKey(e.Idem.Key) != nil || e.Idem.At == 0 {
				t.Fatalf("decoded a bad idempotency record %+v on a %s from %x", e.Idem, e.Op, b)
			}
			idemLen, idemMuts = 1+IdemRecordLen(e.Idem), 1
		} else if e.Idem.Key != nil || e.Idem.Hash != ([IdemHashSize]byte{}) || e.Idem.At != 0 {
			t.Fatalf("decoded idempotency fields without a key from %x", b)
		}
		if e.Op == OpTxn {
			if e.Key != nil || e.Value != nil || e.Checkpoint != (Checkpoint{}) {
				t.Fatalf("txn decoded with a key, value or checkpoint: %x", b)
			}
			if err := ValidateTxn(e.Ops); err != nil {
				t.Fatalf("decoded a txn that fails validation (%v): %x", err, b)
			}
			if TxnLen(e.Ops)+idemLen != len(b) {
				t.Fatalf("TxnLen = %d (and %d bytes of idempotency record) for an entry of %d bytes", TxnLen(e.Ops),
					idemLen, len(b))
			}
			for _, o := range e.Ops {
				if o.Op == OpDelete && o.Value != nil {
					t.Fatalf("txn delete decoded with a value: %x", b)
				}
			}
			if muts := AppendMutations(nil, 7, e); len(muts) != len(e.Ops)+idemMuts {
				t.Fatalf("%d mutations for %d operations and %d records", len(muts), len(e.Ops), idemMuts)
			}
			return
		}
		if e.Ops != nil {
			t.Fatalf("%s decoded with txn operations", e.Op)
		}
		if e.Op == OpTerm {
			if e.Term == 0 || e.Key != nil || e.Value != nil || e.Checkpoint != (Checkpoint{}) {
				t.Fatalf("decoded a bad term %+v from %x", e, b)
			}
			return
		}
		if e.Term != 0 {
			t.Fatalf("%s decoded with a term", e.Op)
		}
		if !e.Mutates() {
			if e.Op != OpCheckpoint || e.Key != nil || e.Value != nil {
				t.Fatalf("decoded %s with a key or value: %x", e.Op, b)
			}
			if k := e.Checkpoint.Kind; k == CheckpointMark && e.Checkpoint != (Checkpoint{Kind: k}) ||
				k == CheckpointResult && e.Checkpoint.Seq == 0 || k != CheckpointMark && k != CheckpointResult {
				t.Fatalf("decoded a bad checkpoint %+v from %x", e.Checkpoint, b)
			}
			return
		}
		if ValidateKey(e.Key) != nil || ValidateValue(e.Value) != nil {
			t.Fatalf("decoded an entry that fails validation: %x", b)
		}
		if e.Op == OpDelete && e.Value != nil {
			t.Fatalf("delete decoded with a value")
		}
		if e.Checkpoint != (Checkpoint{}) {
			t.Fatalf("%s decoded with checkpoint fields", e.Op)
		}
		if muts := AppendMutations(nil, 7, e); len(muts) != 1+idemMuts {
			t.Fatalf("%d mutations for a %s and %d records", len(muts), e.Op, idemMuts)
		}
	})
}

func BenchmarkAppendEntry(b *testing.B) {
	e := Entry{Op: OpPut, Key: []byte("bench/key/0000000001"), Value: make([]byte, 128)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEntry(buf[:0], e)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeEntry(b *testing.B) {
	buf := AppendEntry(nil, Entry{Op: OpPut, Key: []byte("bench/key/0000000001"), Value: make([]byte, 128)})
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntry(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewCheckpointResult(t *testing.T) {
	c, err := NewCheckpointResult(7, 2, testDigestHex)
	if err != nil || c != (Checkpoint{Kind: CheckpointResult, Seq: 7, Keys: 2, Digest: testDigest}) || c.DigestHex() != testDigestHex {
		t.Fatalf("NewCheckpointResult = %+v, %v", c, err)
	}
	for _, tc := range []struct {
		name   string
		seq    uint64
		digest string
	}{
		{"SeqZero", 0, testDigestHex},
		{"Short", 7, testDigestHex[:62]},
		{"Long", 7, testDigestHex + "00"},
		{"Upper", 7, strings.ToUpper(testDigestHex)},
		{"NotHex", 7, strings.Repeat("x", 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewCheckpointResult(tc.seq, 1, tc.digest); !errors.Is(err, ErrMalformed) {
				t.Fatalf("NewCheckpointResult = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestEntry_CheckAt(t *testing.T) {
	result := func(seq uint64) Entry {
		return Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointResult, Seq: seq}}
	}
	for _, tc := range []struct {
		name string
		e    Entry
		seq  uint64
		ok   bool
	}{
		{"Put", Entry{Op: OpPut, Key: []byte("k")}, 1, true},
		{"Mark", Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}}, 1, true},
		{"ResultForEarlier", result(4), 5, true},
		{"ResultForItself", result(5), 5, false},
		{"ResultForLater", result(6), 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.CheckAt(tc.seq)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("CheckAt(%d) = %v, want ok %v (else ErrMalformed)", tc.seq, err, tc.ok)
			}
		})
	}
}

func TestEntry_Mutates(t *testing.T) {
	for op, want := range map[Op]bool{OpPut: true, OpDelete: true, OpCheckpoint: false, OpTxn: true, OpTerm: false, 0: false} {
		if got := (Entry{Op: op}).Mutates(); got != want {
			t.Errorf("%s: Mutates = %v, want %v", op, got, want)
		}
	}
}
