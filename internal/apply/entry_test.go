package apply

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
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
		{"OpUnknown", []byte("\x01\x03\x01k"), Entry{}, ErrMalformed},
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
				(got.Value == nil) != (tt.want.Value == nil) {
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
	}
	for _, e := range tests {
		t.Run(e.Op.String()+"/"+string(e.Key[:1]), func(t *testing.T) {
			b := AppendEntry(nil, e)
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if got.Op != e.Op || !bytes.Equal(got.Key, e.Key) || !bytes.Equal(got.Value, e.Value) {
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
	}{{OpPut, "put"}, {OpDelete, "delete"}, {0, "op(0)"}, {9, "op(9)"}}
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
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) &&
				!errors.Is(err, ErrInvalidKey) && !errors.Is(err, ErrValueTooLarge) {
				t.Fatalf("DecodeEntry error wraps no sentinel: %v", err)
			}
			return
		}
		if again := AppendEntry(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
		if ValidateKey(e.Key) != nil || ValidateValue(e.Value) != nil {
			t.Fatalf("decoded an entry that fails validation: %x", b)
		}
		if e.Op == OpDelete && e.Value != nil {
			t.Fatalf("delete decoded with a value")
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
