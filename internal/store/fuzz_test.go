package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzDecodeMeta: the decoders of what the store reads back from pebble (a data value, a meta sequence, an entry
// mark) never panic, refuse a record of the wrong size with ErrCorrupt, and read back what was encoded.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add(binary.AppendUvarint(nil, 300))
	f.Add(make([]byte, 8))
	f.Add(make([]byte, markRecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		if version, value, err := decodeValue(b); err == nil {
			if got := append(binary.AppendUvarint(nil, version), value...); len(got) > len(b) || !bytes.Equal(b[len(b)-len(value):], value) {
				t.Fatalf("decodeValue(%x) = %d, %x", b, version, value)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeValue: %v, want ErrCorrupt", err)
		}
		seq, err := decodeSeq(b)
		switch {
		case len(b) == 8 && (err != nil || seq != binary.BigEndian.Uint64(b)):
			t.Fatalf("decodeSeq(%x) = %d, %v", b, seq, err)
		case len(b) != 8 && !errors.Is(err, ErrCorrupt):
			t.Fatalf("decodeSeq of %d bytes: %v, want ErrCorrupt", len(b), err)
		}
		mseq, mark, err := decodeMark(b)
		switch {
		case len(b) == markRecordSize && (err != nil || mseq != binary.BigEndian.Uint64(b) || !bytes.Equal(mark[:], b[8:])):
			t.Fatalf("decodeMark(%x) = %d, %x, %v", b, mseq, mark, err)
		case len(b) != markRecordSize && !errors.Is(err, ErrCorrupt):
			t.Fatalf("decodeMark of %d bytes: %v, want ErrCorrupt", len(b), err)
		}
	})
}
