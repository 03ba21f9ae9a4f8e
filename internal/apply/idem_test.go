package apply

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testIdemHash is a request hash for idempotency records: the bytes 0x00 to 0x1f.
var testIdemHash = func() (h [IdemHashSize]byte) {
	for i := range h {
		h[i] = byte(i)
	}
	return h
}()

// testIdemHashHex is testIdemHash in hex.
var testIdemHashHex = hex.EncodeToString(testIdemHash[:])

// testIdem is the idempotency record of the documented example: key "k1", testIdemHash, at 1700000000000.
var testIdem = Idem{Key: []byte("k1"), Hash: testIdemHash, At: 1700000000000}

// idemSeeds are well-formed entries with an idempotency record: the round-trip cases and the fuzz target's seeds.
func idemSeeds() []Entry {
	maxHash := [IdemHashSize]byte{}
	for i := range maxHash {
		maxHash[i] = 0xff
	}
	longest := Idem{Key: bytes.Repeat([]byte("~"), MaxIdemKeyLen), Hash: maxHash, At: 1<<64 - 1}
	return []Entry{
		{Op: OpPut, Key: []byte("user/1"), Value: []byte("hi"), Idem: testIdem},
		{Op: OpPut, Key: []byte("k"), Value: []byte{}, Idem: Idem{Key: []byte("!"), At: 1}},
		{Op: OpPut, Key: []byte("k"), Value: make([]byte, MaxValueLen), Idem: longest},
		{Op: OpDelete, Key: []byte("gone"), Idem: testIdem},
		{Op: OpDelete, Key: []byte(strings.Repeat("é", MaxKeyLen/2)), Idem: longest},
		{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("a"), Value: []byte("hi")}, {Op: OpDelete, Key: []byte("b")}},
			Idem: Idem{Key: []byte("0123-4567-89ab-cdef"), Hash: testIdemHash, At: 300}},
		{Op: OpTxn, Ops: txnOfPuts(MaxTxnOps, 8).Ops, Idem: longest},
	}
}

// sameEntry reports whether a and b are the same entry, idempotency record included.
func sameEntry(a, b Entry) bool {
	if a.Op != b.Op || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) ||
		(a.Value == nil) != (b.Value == nil) || a.Checkpoint != b.Checkpoint || a.Term != b.Term ||
		!bytes.Equal(a.Idem.Key, b.Idem.Key) || a.Idem.Hash != b.Idem.Hash || a.Idem.At != b.Idem.At ||
		len(a.Ops) != len(b.Ops) {
		return false
	}
	for i := range a.Ops {
		if a.Ops[i].Op != b.Ops[i].Op || !bytes.Equal(a.Ops[i].Key, b.Ops[i].Key) ||
			!bytes.Equal(a.Ops[i].Value, b.Ops[i].Value) {
			return false
		}
	}
	return true
}

// idemEntry builds an entry with op 6 by hand: version 1, op 6, the given record bytes, then rest verbatim.
func idemEntry(record []byte, rest string) []byte {
	return append(append([]byte{formatV1, byte(opIdem)}, record...), rest...)
}

// idemRecordBytes encodes an entry's idempotency record by hand: uvarint(len(key)) key, hash, uvarint(at).
func idemRecordBytes(key string, hash [IdemHashSize]byte, at uint64) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	b = append(b, key...)
	b = append(b, hash[:]...)
	return binary.AppendUvarint(b, at)
}

func TestAppendEntry_Idem(t *testing.T) {
	// The documented example (docs/formats.md): PUT user/1 = "hi" with idempotency key "k1", at 1700000000000.
	record := "02" + "6b31" + testIdemHashHex + "80d095ffbc31"
	tests := []struct {
		name string
		e    Entry
		hex  string
	}{
		{"Put", Entry{Op: OpPut, Key: []byte("user/1"), Value: []byte("hi"), Idem: testIdem},
			"0106" + record + "01" + "06" + "757365722f31" + "02" + "6869"},
		{"Delete", Entry{Op: OpDelete, Key: []byte("k"), Idem: testIdem}, "0106" + record + "02" + "01" + "6b"},
		{"Txn", Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpPut, Key: []byte("a"), Value: []byte("hi")},
			{Op: OpDelete, Key: []byte("b")}}, Idem: testIdem},
			"0106" + record + "04" + "02" + "01" + "01" + "61" + "02" + "6869" + "02" + "01" + "62"},
		// Only a write carries a record; an empty key means none, whatever the other fields.
		{"CheckpointIgnoresIdem", Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}, Idem: testIdem},
			"010301"},
		{"ResultIgnoresIdem", Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointResult, Seq: 300, Keys: 2,
			Digest: testDigest}, Idem: testIdem}, "010302" + "ac02" + "02" + testDigestHex},
		{"TermIgnoresIdem", Entry{Op: OpTerm, Term: 300, Idem: testIdem}, "0105" + "ac02"},
		{"EmptyIdemKey", Entry{Op: OpPut, Key: []byte("k"), Value: []byte{}, Idem: Idem{Hash: testIdemHash, At: 5}},
			"0101" + "01" + "6b" + "00"},
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
		got := AppendEntry([]byte("xy"), Entry{Op: OpDelete, Key: []byte("k"), Idem: testIdem})
		if want := append([]byte("xy"), AppendEntry(nil, Entry{Op: OpDelete, Key: []byte("k"), Idem: testIdem})...); !bytes.Equal(got, want) {
			t.Fatalf("AppendEntry kept prefix wrong: %x", got)
		}
	})
}

func TestIdemEntry_RoundTrip(t *testing.T) {
	for i, e := range idemSeeds() {
		t.Run(fmt.Sprintf("%s/%d", e.Op, i), func(t *testing.T) {
			b := AppendEntry(nil, e)
			if b[1] != byte(opIdem) {
				t.Fatalf("op byte %d, want %d", b[1], opIdem)
			}
			if want := 2 + IdemRecordLen(e.Idem) + len(AppendEntry(nil, Entry{Op: e.Op, Key: e.Key, Value: e.Value, Ops: e.Ops})) - 1; len(b) != want {
				t.Fatalf("entry of %d bytes, want %d (IdemRecordLen %d)", len(b), want, IdemRecordLen(e.Idem))
			}
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !sameEntry(got, e) {
				t.Fatalf("round trip changed the entry: %+v", got.Idem)
			}
			if again := AppendEntry(nil, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

func TestDecodeEntry_Idem(t *testing.T) {
	put := "\x01\x01k\x02hi"
	rec := idemRecordBytes("k1", testIdemHash, 1700000000000)
	withKey := func(key string) []byte { return idemEntry(idemRecordBytes(key, testIdemHash, 7), put) }
	withAt := func(at []byte) []byte {
		b := binary.AppendUvarint(nil, 2)
		b = append(b, "k1"...)
		b = append(b, testIdemHash[:]...)
		return idemEntry(append(b, at...), put)
	}
	tests := []struct {
		name    string
		in      []byte
		want    Entry
		wantErr error
	}{
		{"Put", idemEntry(rec, put), Entry{Op: OpPut, Key: []byte("k"), Value: []byte("hi"), Idem: testIdem}, nil},
		{"Delete", idemEntry(rec, "\x02\x01k"), Entry{Op: OpDelete, Key: []byte("k"), Idem: testIdem}, nil},
		{"Txn", idemEntry(rec, "\x04\x01\x02\x01a"), Entry{Op: OpTxn, Ops: []TxnOp{{Op: OpDelete, Key: []byte("a")}},
			Idem: testIdem}, nil},
		{"KeyVisibleBounds", withKey("!~"), Entry{Op: OpPut, Key: []byte("k"), Value: []byte("hi"),
			Idem: Idem{Key: []byte("!~"), Hash: testIdemHash, At: 7}}, nil},
		{"KeyMax", withKey(strings.Repeat("x", MaxIdemKeyLen)), Entry{Op: OpPut, Key: []byte("k"), Value: []byte("hi"),
			Idem: Idem{Key: []byte(strings.Repeat("x", MaxIdemKeyLen)), Hash: testIdemHash, At: 7}}, nil},
		{"AtOne", withAt([]byte{0x01}), Entry{Op: OpPut, Key: []byte("k"), Value: []byte("hi"),
			Idem: Idem{Key: []byte("k1"), Hash: testIdemHash, At: 1}}, nil},
		{"AtMax", withAt(binary.AppendUvarint(nil, 1<<64-1)), Entry{Op: OpPut, Key: []byte("k"), Value: []byte("hi"),
			Idem: Idem{Key: []byte("k1"), Hash: testIdemHash, At: 1<<64 - 1}}, nil},

		{"KeyEmpty", withKey(""), Entry{}, ErrMalformed},
		{"KeyTooLong", withKey(strings.Repeat("x", MaxIdemKeyLen+1)), Entry{}, ErrMalformed},
		{"KeyHugeLen", idemEntry([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, ""), Entry{}, ErrMalformed},
		{"KeyLenOverflow", idemEntry([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ""),
			Entry{}, ErrMalformed},
		{"KeyLenNonCanonical", idemEntry(append([]byte{0x82, 0x00, 'k', '1'}, testIdemHash[:]...), "\x07"+put),
			Entry{}, ErrMalformed},
		{"KeyLenMissing", idemEntry(nil, ""), Entry{}, ErrMalformed},
		{"KeySpace", withKey("a b"), Entry{}, ErrMalformed},
		{"KeyDEL", withKey("a\x7f"), Entry{}, ErrMalformed},
		{"KeyNUL", withKey("a\x00"), Entry{}, ErrMalformed},
		{"KeyTab", withKey("\t"), Entry{}, ErrMalformed},
		{"KeyHighBit", withKey("a\x80"), Entry{}, ErrMalformed},
		{"KeyUTF8", withKey("é"), Entry{}, ErrMalformed},
		{"KeyTruncated", idemEntry([]byte("\x05abc"), ""), Entry{}, ErrMalformed},
		{"HashTruncated", idemEntry(append([]byte("\x02k1"), testIdemHash[:31]...), ""), Entry{}, ErrMalformed},
		{"HashEmpty", idemEntry([]byte("\x02k1"), ""), Entry{}, ErrMalformed},
		{"AtZero", withAt([]byte{0x00}), Entry{}, ErrMalformed},
		{"AtMissing", idemEntry(append([]byte("\x02k1"), testIdemHash[:]...), ""), Entry{}, ErrMalformed},
		{"AtNonCanonical", withAt([]byte{0x87, 0x00}), Entry{}, ErrMalformed},
		{"AtOverflow", withAt([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}), Entry{}, ErrMalformed},
		{"NothingAfter", idemEntry(rec, ""), Entry{}, ErrMalformed},
		{"ThenCheckpointMark", idemEntry(rec, "\x03\x01"), Entry{}, ErrMalformed},
		{"ThenCheckpointResult", idemEntry(rec, "\x03\x02\x05\x00"+string(testDigest[:])), Entry{}, ErrMalformed},
		{"ThenTerm", idemEntry(rec, "\x05\x07"), Entry{}, ErrMalformed},
		{"ThenIdem", idemEntry(rec, "\x06"+string(rec)+put), Entry{}, ErrMalformed},
		{"ThenOpZero", idemEntry(rec, "\x00\x01k"), Entry{}, ErrMalformed},
		{"ThenUnknown", idemEntry(rec, "\x07\x01k"), Entry{}, ErrMalformed},
		{"PutTrailing", idemEntry(rec, put+"\x00"), Entry{}, ErrMalformed},
		{"PutValueTruncated", idemEntry(rec, put[:len(put)-1]), Entry{}, ErrMalformed},
		{"DeleteTrailing", idemEntry(rec, "\x02\x01k\x00"), Entry{}, ErrMalformed},
		{"TxnTrailing", idemEntry(rec, "\x04\x01\x02\x01a\x00"), Entry{}, ErrMalformed},
		{"TxnNoOperation", idemEntry(rec, "\x04\x00"), Entry{}, ErrMalformed},
		{"InnerKeyInvalid", idemEntry(rec, "\x02\x02a\xff"), Entry{}, ErrInvalidKey},
		{"InnerValueTooLarge", idemEntry(rec, "\x01\x01k\xff\xff\xff\xff\x0f"), Entry{}, ErrValueTooLarge},
		{"VersionTwo", append([]byte{2}, idemEntry(rec, put)[1:]...), Entry{}, ErrUnsupportedVersion},
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
			if !sameEntry(got, tt.want) {
				t.Fatalf("DecodeEntry = %+v, want %+v", got, tt.want)
			}
			if again := AppendEntry(nil, got); !bytes.Equal(again, tt.in) {
				t.Fatalf("re-encoding %x gave %x", tt.in, again)
			}
		})
	}
}

// The transaction limit bounds the transaction's own part, as ValidateTxn does: a transaction of MaxTxnLen bytes
// with an idempotency record decodes.
func TestDecodeEntry_IdemTxnAtLimit(t *testing.T) {
	e := txnOfPuts(2, 0)
	e.Ops[0].Value = make([]byte, MaxValueLen)
	n := MaxTxnLen - TxnLen(e.Ops) // the second value's bytes and the growth of its length prefix
	e.Ops[1].Value = make([]byte, n-uvarintLen(uint64(n))+1)
	if err := ValidateTxn(e.Ops); err != nil || TxnLen(e.Ops) != MaxTxnLen {
		t.Fatalf("TxnLen = %d, want %d (ValidateTxn: %v)", TxnLen(e.Ops), MaxTxnLen, err)
	}
	e.Idem = Idem{Key: bytes.Repeat([]byte("x"), MaxIdemKeyLen), Hash: testIdemHash, At: 1<<64 - 1}
	b := AppendEntry(nil, e)
	if want := MaxTxnLen + 1 + IdemRecordLen(e.Idem); len(b) != want {
		t.Fatalf("entry of %d bytes, want %d", len(b), want)
	}
	got, err := DecodeEntry(b)
	if err != nil || !sameEntry(got, e) {
		t.Fatalf("DecodeEntry = %v", err)
	}
	e.Ops[1].Value = append(e.Ops[1].Value, 'v')
	if _, err := DecodeEntry(AppendEntry(nil, e)); !errors.Is(err, ErrTxnTooLarge) {
		t.Fatalf("DecodeEntry of a longer transaction = %v, want ErrTxnTooLarge", err)
	}
}

func TestDecodeEntry_IdemZeroCopy(t *testing.T) {
	b := AppendEntry(nil, Entry{Op: OpPut, Key: []byte("key"), Value: []byte("value"), Idem: testIdem})
	e, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	b[3] = 'X' // the first byte of the idempotency key
	if string(e.Idem.Key) != "X1" {
		t.Fatalf("idempotency key does not alias the input: %q", e.Idem.Key)
	}
	if cap(e.Idem.Key) != len(e.Idem.Key) {
		t.Fatalf("idempotency key capacity %d exposes bytes after it", cap(e.Idem.Key))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = DecodeEntry(b) }); n != 0 {
		t.Fatalf("DecodeEntry allocates %v times", n)
	}
}

func TestAppendMutations_Idem(t *testing.T) {
	const seq = 42
	txn := []TxnOp{{Op: OpPut, Key: []byte("a"), Value: []byte("1")}, {Op: OpDelete, Key: []byte("b")},
		{Op: OpPut, Key: []byte("c"), Value: []byte{}}}
	tests := []struct {
		name string
		e    Entry
		data []Mutation // the mutations before the record's
		idem bool
	}{
		{"Put", Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Idem: testIdem},
			[]Mutation{{Key: []byte("k"), Value: []byte("v"), Version: seq}}, true},
		{"Delete", Entry{Op: OpDelete, Key: []byte("k"), Idem: testIdem},
			[]Mutation{{Key: []byte("k"), Version: seq, Delete: true}}, true},
		{"Txn", Entry{Op: OpTxn, Ops: txn, Idem: testIdem}, []Mutation{
			{Key: []byte("a"), Value: []byte("1"), Version: seq},
			{Key: []byte("b"), Version: seq, Delete: true},
			{Key: []byte("c"), Value: []byte{}, Version: seq},
		}, true},
		{"PutWithoutIdem", Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v")},
			[]Mutation{{Key: []byte("k"), Value: []byte("v"), Version: seq}}, false},
		{"EmptyIdemKey", Entry{Op: OpDelete, Key: []byte("k"), Idem: Idem{Hash: testIdemHash, At: 9}},
			[]Mutation{{Key: []byte("k"), Version: seq, Delete: true}}, false},
		{"Checkpoint", Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointMark}, Idem: testIdem}, nil, false},
		{"Term", Entry{Op: OpTerm, Term: 3, Idem: testIdem}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []Mutation{{Key: []byte("before"), Version: 1}}
			got := AppendMutations(prefix, seq, tt.e)
			if got[0].Version != 1 || string(got[0].Key) != "before" {
				t.Fatalf("AppendMutations changed the prefix")
			}
			got = got[1:]
			want := len(tt.data)
			if tt.idem {
				want++
			}
			if len(got) != want {
				t.Fatalf("%d mutations, want %d", len(got), want)
			}
			for i, m := range tt.data {
				g := got[i]
				if !bytes.Equal(g.Key, m.Key) || !bytes.Equal(g.Value, m.Value) || (g.Value == nil) != (m.Value == nil) ||
					g.Version != m.Version || g.Delete != m.Delete || g.Idem.Key != nil || g.Idem.At != 0 {
					t.Fatalf("mutation %d = %+v, want %+v", i, g, m)
				}
			}
			if !tt.idem {
				return
			}
			r := got[len(got)-1]
			if r.Key != nil || r.Value != nil || r.Delete || r.Version != seq || !bytes.Equal(r.Idem.Key, tt.e.Idem.Key) ||
				r.Idem.Hash != tt.e.Idem.Hash || r.Idem.At != tt.e.Idem.At {
				t.Fatalf("record mutation = %+v", r)
			}
		})
	}
}

func TestIdemRecord_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		seq  uint64
		rec  Idem
		hex  string
	}{
		{"Small", 300, Idem{Key: []byte("ignored"), Hash: testIdemHash, At: 1}, "ac02" + testIdemHashHex + "01"},
		{"Example", 1, testIdem, "01" + testIdemHashHex + "80d095ffbc31"},
		{"Max", 1<<64 - 1, Idem{At: 1<<64 - 1}, "ffffffffffffffffff01" + strings.Repeat("00", IdemHashSize) +
			"ffffffffffffffffff01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendIdemRecord([]byte("xy"), tt.seq, tt.rec)
			if got := hex.EncodeToString(b); got != hex.EncodeToString([]byte("xy"))+tt.hex {
				t.Fatalf("AppendIdemRecord = %s, want 7879%s", got, tt.hex)
			}
			seq, rec, err := DecodeIdemRecord(b[2:])
			if err != nil {
				t.Fatalf("DecodeIdemRecord: %v", err)
			}
			if seq != tt.seq || rec.Key != nil || rec.Hash != tt.rec.Hash || rec.At != tt.rec.At {
				t.Fatalf("DecodeIdemRecord = %d, %+v", seq, rec)
			}
		})
	}
}

func TestDecodeIdemRecord_Rejects(t *testing.T) {
	valid := AppendIdemRecord(nil, 300, Idem{Hash: testIdemHash, At: 1700000000000})
	record := func(seq, hash, at []byte) []byte { return append(append(append([]byte{}, seq...), hash...), at...) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"Empty", nil},
		{"SeqZero", AppendIdemRecord(nil, 0, Idem{Hash: testIdemHash, At: 1})},
		{"AtZero", AppendIdemRecord(nil, 1, Idem{Hash: testIdemHash, At: 0})},
		{"Trailing", append(append([]byte{}, valid...), 0x00)},
		{"SeqNonCanonical", record([]byte{0x81, 0x00}, testIdemHash[:], []byte{0x01})},
		{"SeqOverflow", record([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, testIdemHash[:], []byte{0x01})},
		{"AtNonCanonical", record([]byte{0x01}, testIdemHash[:], []byte{0x81, 0x00})},
		{"AtOverflow", record([]byte{0x01}, testIdemHash[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})},
	}
	for n := 1; n < len(valid); n++ {
		tests = append(tests, struct {
			name string
			in   []byte
		}{fmt.Sprintf("Truncated%d", n), valid[:n]})
	}
	if _, _, err := DecodeIdemRecord(valid); err != nil {
		t.Fatalf("the valid baseline does not decode: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := DecodeIdemRecord(tt.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeIdemRecord(%x) = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestValidateIdemKey(t *testing.T) {
	var visible []byte
	for c := byte(0x21); c <= 0x7e; c++ {
		visible = append(visible, c)
	}
	tests := []struct {
		name    string
		key     string
		wantErr bool
	}{
		{"OK", "a", false},
		{"UUID", "0b6e1c1e-6f1c-4c53-9f2e-3d3a2b1c0d9e", false},
		{"AllVisible", string(visible), false},
		{"Max", strings.Repeat("x", MaxIdemKeyLen), false},
		{"Empty", "", true},
		{"TooLong", strings.Repeat("x", MaxIdemKeyLen+1), true},
		{"Space", "a b", true},
		{"Tab", "a\tb", true},
		{"Newline", "a\n", true},
		{"NUL", "a\x00", true},
		{"DEL", "a\x7f", true},
		{"HighBit", "a\x80", true},
		{"UTF8", "clé", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateIdemKey([]byte(tt.key))
			if tt.wantErr != (err != nil) {
				t.Fatalf("ValidateIdemKey err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateIdemKey err = %v, does not wrap ErrInvalidKey", err)
			}
			if err != nil && len(tt.key) > 2 && strings.Contains(err.Error(), tt.key) {
				t.Fatalf("ValidateIdemKey err %q names the key", err)
			}
		})
	}
}

func TestIdemRecordLen(t *testing.T) {
	for _, rec := range []Idem{
		{Key: []byte("k"), At: 1},
		testIdem,
		{Key: bytes.Repeat([]byte("x"), MaxIdemKeyLen), At: 1<<64 - 1},
	} {
		if got, want := IdemRecordLen(rec), len(appendIdem(nil, rec)); got != want {
			t.Errorf("IdemRecordLen(%q) = %d, want %d", rec.Key, got, want)
		}
	}
}
