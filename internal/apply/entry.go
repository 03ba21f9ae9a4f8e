package apply

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// formatV1 is the first byte of every entry written by this build. See docs/formats.md.
const formatV1 = 1

// Op is the kind of change a log entry makes.
type Op uint8

const (
	// OpPut sets a key to a value.
	OpPut Op = 1
	// OpDelete removes a key. A delete entry carries no value.
	OpDelete Op = 2
)

// String returns "put", "delete", or "op(N)" for an unknown value, for logs and errors.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Entry is one log entry. Entries are unconditional: the leader decides preconditions before publishing, so applying
// an entry never fails for reasons of state. Value is nil for OpDelete.
type Entry struct {
	Op    Op
	Key   []byte
	Value []byte
}

// AppendEntry appends the v1 encoding of e to dst and returns the extended slice:
//
//	byte 0: format version (1)
//	byte 1: op
//	uvarint(len(key)) key
//	put only: uvarint(len(value)) value
//
// It does not validate e; the caller validates keys and values before it builds entries. A delete's Value is not
// written.
func AppendEntry(dst []byte, e Entry) []byte {
	dst = append(dst, formatV1, byte(e.Op))
	dst = binary.AppendUvarint(dst, uint64(len(e.Key)))
	dst = append(dst, e.Key...)
	if e.Op == OpDelete {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
	return append(dst, e.Value...)
}

// DecodeEntry decodes one entry. It is strict, so that every accepted input re-encodes to the same bytes: it checks
// the version byte, the op, canonical length prefixes within the limits and within b, the key rules, that a delete
// carries no value and that no bytes trail. Errors wrap ErrUnsupportedVersion, ErrMalformed, ErrInvalidKey or
// ErrValueTooLarge.
//
// The result aliases b (zero copy): the caller must not modify b while it uses the entry. DecodeEntry never panics
// and allocates only for errors.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) == 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: empty", ErrMalformed)
	}
	if b[0] != formatV1 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %d", ErrUnsupportedVersion, b[0])
	}
	if len(b) < 2 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: no op", ErrMalformed)
	}
	e := Entry{Op: Op(b[1])}
	if e.Op != OpPut && e.Op != OpDelete {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: unknown %s", ErrMalformed, e.Op)
	}
	rest := b[2:]
	keyLen, n, err := decodeLen(rest, "key")
	if err != nil {
		return Entry{}, err
	}
	if keyLen > MaxKeyLen {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %d bytes, longer than %d", ErrInvalidKey, keyLen, MaxKeyLen)
	}
	rest = rest[n:]
	if keyLen > uint64(len(rest)) {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: key truncated", ErrMalformed)
	}
	e.Key, rest = rest[:keyLen:keyLen], rest[keyLen:]
	if reason := keyProblem(e.Key); reason != "" {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %s", ErrInvalidKey, reason)
	}
	if e.Op == OpDelete {
		if len(rest) != 0 {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: %d bytes after a delete's key", ErrMalformed, len(rest))
		}
		return e, nil
	}
	valLen, n, err := decodeLen(rest, "value")
	if err != nil {
		return Entry{}, err
	}
	if valLen > MaxValueLen {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %d bytes, longer than %d", ErrValueTooLarge, valLen, MaxValueLen)
	}
	rest = rest[n:]
	if valLen != uint64(len(rest)) {
		if valLen > uint64(len(rest)) {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: value truncated", ErrMalformed)
		}
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %d trailing bytes", ErrMalformed, uint64(len(rest))-valLen)
	}
	e.Value = rest[:valLen:valLen]
	return e, nil
}

// decodeLen reads a canonical (shortest form) uvarint length prefix named what and returns it with its size.
func decodeLen(b []byte, what string) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, fmt.Errorf("apply: decode entry: %w: bad %s length", ErrMalformed, what)
	}
	if n > 1 && b[n-1] == 0 {
		// A final zero group adds nothing: a longer encoding of a smaller number, which would not re-encode to
		// the same bytes.
		return 0, 0, fmt.Errorf("apply: decode entry: %w: non-canonical %s length", ErrMalformed, what)
	}
	return v, n, nil
}
