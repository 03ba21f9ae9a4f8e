package snapshots

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/apply"
)

// record is one snapshot entry in tests.
type record struct {
	key, value string
	version    uint64
}

// encodePlain encodes records at seq with the Encoder.
func encodePlain(t testing.TB, seq uint64, recs []record) []byte {
	t.Helper()
	return encodeFull(t, seq, recs, nil)
}

// decodeAll decodes b fully.
func decodeAll(b []byte) (uint64, []record, error) {
	dec, err := NewDecoder(bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	var out []record
	for {
		k, v, ver, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return dec.Seq(), out, nil
		}
		if err != nil {
			return dec.Seq(), out, err
		}
		out = append(out, record{string(k), string(v), ver})
	}
}

// rawPlain builds plaintext by hand: header, then the given pieces verbatim.
func rawPlain(seq uint64, pieces ...[]byte) []byte {
	b := []byte(dataMagic)
	b = binary.AppendUvarint(b, dataFormat)
	b = binary.AppendUvarint(b, seq)
	for _, p := range pieces {
		b = append(b, p...)
	}
	return b
}

// rec encodes one record by hand.
func rec(key, value string, version uint64) []byte {
	b := []byte{tagRecord}
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	return binary.AppendUvarint(b, version)
}

// trailer encodes a trailer by hand.
func trailer(n uint64) []byte { return binary.AppendUvarint([]byte{tagTrailer}, n) }

func TestEncoder_RoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		seq  uint64
		recs []record
	}{
		{"Empty", 1, nil},
		{"One", 7, []record{{"k", "v", 7}}},
		{"EmptyValue", 3, []record{{"a", "", 1}, {"b", "x", 3}}},
		{"Limits", 1 << 40, []record{
			{strings.Repeat("k", apply.MaxKeyLen), strings.Repeat("v", apply.MaxValueLen), 1 << 40},
		}},
		{"Unicode", 9, []record{{"a", "1", 1}, {"ä", "2", 2}, {"日本", "3", 9}}},
		{"MaxSeq", ^uint64(0), []record{{"z", "v", ^uint64(0)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodePlain(t, tt.seq, tt.recs)
			seq, got, err := decodeAll(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if seq != tt.seq {
				t.Fatalf("seq = %d, want %d", seq, tt.seq)
			}
			if len(got) != len(tt.recs) {
				t.Fatalf("decoded %d records, want %d", len(got), len(tt.recs))
			}
			for i := range got {
				if got[i] != tt.recs[i] {
					t.Fatalf("record %d = %+v, want %+v", i, got[i], tt.recs[i])
				}
			}
		})
	}
}

func TestEncoder_Layout(t *testing.T) {
	t.Parallel()
	// The documented byte layout, spelled out: docs/formats.md must agree with this test.
	got := encodePlain(t, 300, []record{{"ab", "xyz", 300}})
	want := []byte("RKVSNAP1")
	want = append(want, 0x01, 0xac, 0x02) // format 1, seq 300
	want = append(want, 0x01, 0x02, 'a', 'b', 0x03, 'x', 'y', 'z', 0xac, 0x02)
	want = append(want, 0x00, 0x01)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding = % x\nwant      % x", got, want)
	}
}

func TestEncoder_Add(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prev    *record
		r       record
		wantErr error
	}{
		{"EmptyKey", nil, record{"", "v", 1}, apply.ErrInvalidKey},
		{"NulKey", nil, record{"a\x00", "v", 1}, apply.ErrInvalidKey},
		{"BadUTF8", nil, record{"\xff", "v", 1}, apply.ErrInvalidKey},
		{"LongKey", nil, record{strings.Repeat("k", apply.MaxKeyLen+1), "v", 1}, apply.ErrInvalidKey},
		{"LongValue", nil, record{"k", strings.Repeat("v", apply.MaxValueLen+1), 1}, apply.ErrValueTooLarge},
		{"VersionZero", nil, record{"k", "v", 0}, nil},
		{"VersionAboveSeq", nil, record{"k", "v", 11}, nil},
		{"Duplicate", &record{"k", "v", 1}, record{"k", "v", 2}, nil},
		{"Decreasing", &record{"k", "v", 1}, record{"j", "v", 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := NewEncoder(io.Discard, 10)
			if err != nil {
				t.Fatal(err)
			}
			if tt.prev != nil {
				if err := enc.Add([]byte(tt.prev.key), []byte(tt.prev.value), tt.prev.version); err != nil {
					t.Fatal(err)
				}
			}
			err = enc.Add([]byte(tt.r.key), []byte(tt.r.value), tt.r.version)
			if err == nil {
				t.Fatal("Add accepted an invalid record")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add = %v, want %v", err, tt.wantErr)
			}
			if err2 := enc.Close(); err2 == nil {
				t.Fatal("Close after a failed Add succeeded")
			}
		})
	}
	t.Run("SeqZero", func(t *testing.T) {
		if _, err := NewEncoder(io.Discard, 0); err == nil {
			t.Fatal("NewEncoder(seq 0) succeeded")
		}
	})
	t.Run("WriteError", func(t *testing.T) {
		errBoom := errors.New("boom")
		enc, err := NewEncoder(failWriter{errBoom}, 1)
		if err != nil {
			t.Fatal(err) // buffered: nothing written yet
		}
		if err := enc.Close(); !errors.Is(err, errBoom) {
			t.Fatalf("Close = %v, want errBoom", err)
		}
	})
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestDecoder_Corrupt(t *testing.T) {
	t.Parallel()
	valid := rawPlain(5, rec("a", "1", 1), rec("b", "2", 5), trailer(2))
	if _, _, err := decodeAll(valid); err != nil {
		t.Fatalf("the valid baseline does not decode: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"Empty", nil},
		{"BadMagic", append([]byte("RKVSNAP2"), valid[8:]...)},
		{"ShortMagic", []byte("RKVS")},
		{"Format2", append([]byte(dataMagic), 0x02, 0x05, 0x00, 0x00)},
		{"Seq0", rawPlain(0, trailer(0))},
		{"NoTrailer", rawPlain(5, rec("a", "1", 1))},
		{"TruncatedRecord", valid[:len(valid)-5]},
		{"TruncatedTrailer", valid[:len(valid)-1]},
		{"TrailingByte", append(append([]byte{}, valid...), 0x00)},
		{"TrailerCountLow", rawPlain(5, rec("a", "1", 1), trailer(0))},
		{"TrailerCountHigh", rawPlain(5, rec("a", "1", 1), trailer(2))},
		{"UnknownTag", rawPlain(5, []byte{0x02})},
		{"Unordered", rawPlain(5, rec("b", "1", 1), rec("a", "2", 1), trailer(2))},
		{"Duplicate", rawPlain(5, rec("a", "1", 1), rec("a", "2", 1), trailer(2))},
		{"EmptyKey", rawPlain(5, rec("", "1", 1), trailer(1))},
		{"NulKey", rawPlain(5, rec("a\x00", "1", 1), trailer(1))},
		{"InvalidUTF8", rawPlain(5, rec("\xc3", "1", 1), trailer(1))},
		{"Version0", rawPlain(5, rec("a", "1", 0), trailer(1))},
		{"VersionAboveSeq", rawPlain(5, rec("a", "1", 6), trailer(1))},
		{"KeyTooLong", rawPlain(5, []byte{tagRecord}, binary.AppendUvarint(nil, apply.MaxKeyLen+1))},
		{"ValueTooLong", rawPlain(5, []byte{tagRecord, 1, 'a'}, binary.AppendUvarint(nil, apply.MaxValueLen+1))},
		{"HugeLength", rawPlain(5, []byte{tagRecord, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
		{"UvarintOverflow", rawPlain(5, []byte{tagRecord, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})},
		{"NonMinimalUvarint", rawPlain(5, []byte{tagRecord, 0x81, 0x00, 'a', 0x01, '1', 0x01}, trailer(1))},
		{"NonMinimalSeq", append([]byte(dataMagic), 0x01, 0x85, 0x00, 0x00, 0x00)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeAll(tt.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestDecoder_Next(t *testing.T) {
	t.Parallel()
	t.Run("ReaderErrorKeepsIdentity", func(t *testing.T) {
		errBoom := errors.New("boom")
		valid := rawPlain(5, rec("a", "1", 1), trailer(1))
		dec, err := NewDecoder(io.MultiReader(bytes.NewReader(valid[:len(valid)-2]), errReader{errBoom}))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err = dec.Next(); err != nil {
			t.Fatalf("first record: %v", err)
		}
		_, _, _, err = dec.Next()
		if !errors.Is(err, errBoom) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("Next = %v, want errBoom and not ErrCorrupt", err)
		}
		if _, _, _, again := dec.Next(); !errors.Is(again, errBoom) {
			t.Fatalf("error not sticky: %v", again)
		}
	})
	t.Run("EOFSticky", func(t *testing.T) {
		dec, err := NewDecoder(bytes.NewReader(rawPlain(5, trailer(0))))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, _, _, err := dec.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("Next #%d = %v, want io.EOF", i, err)
			}
		}
	})
}
