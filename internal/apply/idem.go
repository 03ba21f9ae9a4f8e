package apply

import (
	"encoding/binary"
	"fmt"
)

// opIdem is the op byte of an entry that carries an idempotency record: the record follows it, then the entry's own
// op (put, delete or txn) and fields. It never appears as Entry.Op: DecodeEntry returns the inner op with Entry.Idem
// set.
const opIdem Op = 6

const (
	// MaxIdemKeyLen is the longest idempotency key in bytes.
	MaxIdemKeyLen = 128
	// IdemHashSize is the length of an idempotency record's request hash (a SHA-256).
	IdemHashSize = DigestSize
)

// Idem is an idempotency record: a client's idempotency key, the hash of the request it came with, and when the
// leader accepted the request. A node that applies the entry carrying it stores it, with the entry's sequence as the
// write's result, so that a retry with the same key, on this leader or on a later one, is answered with that result
// instead of being written again. Key is 1 to MaxIdemKeyLen visible ASCII bytes (0x21 to 0x7e), and At is at least 1.
type Idem struct {
	Key []byte
	// Hash identifies the request (its operation, keys, values and preconditions): a retry with the same key and
	// another hash is refused. How it is computed is the leader's business; nodes only store and compare it.
	Hash [IdemHashSize]byte
	// At is the leader's wall clock when it accepted the request, in milliseconds since the Unix epoch. The record
	// expires a retention period after it.
	At uint64
}

// ValidateIdemKey reports whether k is a legal idempotency key: 1 to MaxIdemKeyLen bytes, each a visible ASCII
// character (0x21 to 0x7e). The error wraps ErrInvalidKey and names the reason (never the key itself).
func ValidateIdemKey(k []byte) error {
	if reason := idemKeyProblem(k); reason != "" {
		return fmt.Errorf("apply: idempotency key: %w: %s", ErrInvalidKey, reason)
	}
	return nil
}

// idemKeyProblem returns why k is not a legal idempotency key, or "" when it is.
func idemKeyProblem(k []byte) string {
	switch {
	case len(k) == 0:
		return "empty"
	case len(k) > MaxIdemKeyLen:
		return fmt.Sprintf("%d bytes, longer than %d", len(k), MaxIdemKeyLen)
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return "not visible ASCII"
		}
	}
	return ""
}

// IdemRecordLen is the length of rec as an entry carries it (after op 6, before the entry's own op): uvarint(len(key))
// key, the hash, uvarint(at).
func IdemRecordLen(rec Idem) int {
	return uvarintLen(uint64(len(rec.Key))) + len(rec.Key) + IdemHashSize + uvarintLen(rec.At)
}

// appendIdem appends an entry's idempotency record: uvarint(len(key)) key, the 32 bytes of the hash, uvarint(at).
func appendIdem(dst []byte, rec Idem) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(rec.Key)))
	dst = append(dst, rec.Key...)
	dst = append(dst, rec.Hash[:]...)
	return binary.AppendUvarint(dst, rec.At)
}

// decodeIdem decodes the rest of an entry after its op byte opIdem: the record, then a put, delete or transaction.
func decodeIdem(rest []byte) (Entry, error) {
	keyLen, n, err := decodeLen(rest, "idempotency key")
	if err != nil {
		return Entry{}, err
	}
	if keyLen > MaxIdemKeyLen {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: idempotency key of %d bytes, longer than %d", ErrMalformed,
			keyLen, MaxIdemKeyLen)
	}
	rest = rest[n:]
	if keyLen+IdemHashSize > uint64(len(rest)) {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: idempotency record truncated", ErrMalformed)
	}
	var rec Idem
	rec.Key, rest = rest[:keyLen:keyLen], rest[keyLen:]
	if reason := idemKeyProblem(rec.Key); reason != "" {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: idempotency key %s", ErrMalformed, reason)
	}
	copy(rec.Hash[:], rest)
	rest = rest[IdemHashSize:]
	at, n, err := decodeLen(rest, "idempotency time")
	if err != nil {
		return Entry{}, err
	}
	if at == 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: idempotency time 0", ErrMalformed)
	}
	rec.At, rest = at, rest[n:]
	if len(rest) == 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: no op after an idempotency record", ErrMalformed)
	}
	op := Op(rest[0])
	if op != OpPut && op != OpDelete && op != OpTxn {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %s with an idempotency record", ErrMalformed, op)
	}
	e, err := decodeBody(op, rest[1:])
	if err != nil {
		return Entry{}, err
	}
	e.Idem = rec
	return e, nil
}

// AppendIdemRecord appends the stored form of rec, the result of the write at seq, to dst: uvarint(seq), the hash,
// uvarint(at). The store keeps it under the record's key; DecodeIdemRecord reads it back.
func AppendIdemRecord(dst []byte, seq uint64, rec Idem) []byte {
	dst = binary.AppendUvarint(dst, seq)
	dst = append(dst, rec.Hash[:]...)
	return binary.AppendUvarint(dst, rec.At)
}

// DecodeIdemRecord decodes what AppendIdemRecord wrote (rec.Key is left nil). The error wraps ErrMalformed.
func DecodeIdemRecord(b []byte) (seq uint64, rec Idem, err error) {
	seq, n, err := decodeLen(b, "idempotency seq")
	if err != nil {
		return 0, Idem{}, err
	}
	b = b[n:]
	if len(b) < IdemHashSize {
		return 0, Idem{}, fmt.Errorf("apply: decode idempotency record: %w: truncated", ErrMalformed)
	}
	copy(rec.Hash[:], b)
	b = b[IdemHashSize:]
	if rec.At, n, err = decodeLen(b, "idempotency time"); err != nil {
		return 0, Idem{}, err
	}
	if n != len(b) || seq == 0 || rec.At == 0 {
		return 0, Idem{}, fmt.Errorf("apply: decode idempotency record: %w", ErrMalformed)
	}
	return seq, rec, nil
}
