package store

import (
	"encoding/binary"
	"fmt"

	"github.com/replikv/replikv/internal/apply"
)

const (
	prefixData = 'd'
	// dataEnd is the exclusive upper bound of the data range.
	dataEnd = prefixData + 1
)

var (
	keyApplied  = []byte("mapplied")
	keySnapshot = []byte("msnapshot")
	// keyMark holds the sequence (8 bytes, big endian) and apply.Mark of an applied entry: see DB.Mark.
	keyMark   = []byte("mmark")
	dataLower = []byte{prefixData}
	dataUpper = []byte{dataEnd}
)

// dataKey appends the pebble key of key to dst.
func dataKey(dst, key []byte) []byte {
	dst = append(dst, prefixData)
	return append(dst, key...)
}

// prefixUpper returns the smallest key greater than every key starting with p, which starts with prefixData, so
// the result always exists.
func prefixUpper(p []byte) []byte {
	up := append([]byte(nil), p...)
	for i := len(up) - 1; i >= 0; i-- {
		if up[i] != 0xff {
			up[i]++
			return up[:i+1]
		}
	}
	return dataUpper // unreachable: p[0] == prefixData
}

// decodeValue splits a stored data value into version and value bytes (aliasing b).
func decodeValue(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad version prefix", ErrCorrupt)
	}
	return v, b[n:], nil
}

// decodeSeq decodes a meta sequence; a missing record is 0.
func decodeSeq(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: sequence of %d bytes", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// markRecordSize is the size of the keyMark record.
const markRecordSize = 8 + apply.MarkSize

// encodeMark fills rec with the keyMark record of mark at seq.
func encodeMark(rec *[markRecordSize]byte, seq uint64, mark apply.Mark) {
	binary.BigEndian.PutUint64(rec[:8], seq)
	copy(rec[8:], mark[:])
}

// decodeMark decodes a keyMark record.
func decodeMark(b []byte) (uint64, apply.Mark, error) {
	if len(b) != markRecordSize {
		return 0, apply.Mark{}, fmt.Errorf("%w: entry mark of %d bytes", ErrCorrupt, len(b))
	}
	var m apply.Mark
	copy(m[:], b[8:])
	return binary.BigEndian.Uint64(b), m, nil
}
