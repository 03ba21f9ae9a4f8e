package apply

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

const (
	// MaxTxnOps is the most operations one transaction may have.
	MaxTxnOps = 1000
	// MaxTxnLen is the longest transaction entry in bytes (see TxnLen): 1 MiB minus 8 KiB. A log entry travels as one
	// NATS message, and NATS servers refuse a message (payload and headers) over their max_payload, 1 MiB by default;
	// the 8 KiB leave room for the leader's headers (expected last sequence, message ids: well under 1 KiB).
	MaxTxnLen = 1<<20 - 8<<10
)

// minTxnOpLen is the shortest encoded transaction operation: op byte, key length, a key of one byte (a delete).
const minTxnOpLen = 3

// TxnOp is one operation of a transaction: a put of Value (possibly empty) or a delete (Value nil) of Key.
type TxnOp struct {
	Op    Op
	Key   []byte
	Value []byte
}

// TxnLen returns the length of the entry AppendEntry encodes for a transaction of ops (whatever their order):
// 2 bytes of version and op, the operation count, and for each operation its op byte, its key with its length and,
// for a put, its value with its length. It is at most the sum of the keys' and values' lengths plus 6 bytes per
// operation plus 4.
func TxnLen(ops []TxnOp) int {
	n := 2 + uvarintLen(uint64(len(ops)))
	for _, o := range ops {
		n += 1 + uvarintLen(uint64(len(o.Key))) + len(o.Key)
		if o.Op != OpDelete {
			n += uvarintLen(uint64(len(o.Value))) + len(o.Value)
		}
	}
	return n
}

// uvarintLen is the size of binary.AppendUvarint(nil, v).
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// SortTxnOps sorts ops in place by key, in byte order: the order a transaction entry lists them in.
func SortTxnOps(ops []TxnOp) {
	slices.SortFunc(ops, func(a, b TxnOp) int { return bytes.Compare(a.Key, b.Key) })
}

// ValidateTxn reports whether ops can be encoded as a transaction entry that DecodeEntry accepts: 1 to MaxTxnOps
// puts and deletes, in strictly increasing key order (so no key twice; see SortTxnOps), valid keys, values within
// MaxValueLen, and at most MaxTxnLen bytes in all. Errors wrap ErrMalformed (no operation, an unknown op, keys out
// of order or repeated), ErrInvalidKey, ErrValueTooLarge or ErrTxnTooLarge, and name the operation's position.
func ValidateTxn(ops []TxnOp) error {
	switch {
	case len(ops) == 0:
		return fmt.Errorf("apply: txn: %w: no operation", ErrMalformed)
	case len(ops) > MaxTxnOps:
		return fmt.Errorf("apply: txn: %w: %d operations, more than %d", ErrTxnTooLarge, len(ops), MaxTxnOps)
	}
	for i, o := range ops {
		if o.Op != OpPut && o.Op != OpDelete {
			return fmt.Errorf("apply: txn op %d: %w: %s", i, ErrMalformed, o.Op)
		}
		if reason := keyProblem(o.Key); reason != "" {
			return fmt.Errorf("apply: txn op %d: %w: %s", i, ErrInvalidKey, reason)
		}
		if i > 0 && bytes.Compare(ops[i-1].Key, o.Key) >= 0 {
			return fmt.Errorf("apply: txn op %d: %w: key not after the previous operation's", i, ErrMalformed)
		}
		if o.Op == OpPut && len(o.Value) > MaxValueLen {
			return fmt.Errorf("apply: txn op %d: %w: %d bytes, longer than %d", i, ErrValueTooLarge, len(o.Value), MaxValueLen)
		}
	}
	if n := TxnLen(ops); n > MaxTxnLen {
		return fmt.Errorf("apply: txn: %w: entry of %d bytes, longer than %d", ErrTxnTooLarge, n, MaxTxnLen)
	}
	return nil
}

// appendTxnOps appends the body of a transaction entry (after version and op) to dst.
func appendTxnOps(dst []byte, ops []TxnOp) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for _, o := range ops {
		dst = append(dst, byte(o.Op))
		dst = binary.AppendUvarint(dst, uint64(len(o.Key)))
		dst = append(dst, o.Key...)
		if o.Op == OpDelete {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(o.Value)))
		dst = append(dst, o.Value...)
	}
	return dst
}

// decodeTxn decodes the body of a transaction entry (rest, after its version and op bytes). It bounds the work
// before it allocates: the entry's length, then the operation count against MaxTxnOps and against what the bytes can
// hold.
func decodeTxn(rest []byte) (Entry, error) {
	if n := 2 + len(rest); n > MaxTxnLen {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: txn entry of %d bytes, longer than %d", ErrTxnTooLarge,
			n, MaxTxnLen)
	}
	count, n, err := decodeLen(rest, "txn count")
	if err != nil {
		return Entry{}, err
	}
	rest = rest[n:]
	switch {
	case count == 0:
		return Entry{}, fmt.Errorf("apply: decode entry: %w: txn without operations", ErrMalformed)
	case count > MaxTxnOps:
		return Entry{}, fmt.Errorf("apply: decode entry: %w: txn of %d operations, more than %d", ErrTxnTooLarge, count,
			MaxTxnOps)
	case count > uint64(len(rest)/minTxnOpLen):
		return Entry{}, fmt.Errorf("apply: decode entry: %w: txn of %d operations in %d bytes", ErrMalformed, count,
			len(rest))
	}
	e := Entry{Op: OpTxn, Ops: make([]TxnOp, count)}
	for i := range e.Ops {
		o := &e.Ops[i]
		if len(rest) == 0 {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d truncated", ErrMalformed, i)
		}
		o.Op, rest = Op(rest[0]), rest[1:]
		if o.Op != OpPut && o.Op != OpDelete {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: unknown %s", ErrMalformed, i, o.Op)
		}
		keyLen, n, err := decodeLen(rest, "key")
		if err != nil {
			return Entry{}, err
		}
		if keyLen > MaxKeyLen {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: %d bytes, longer than %d", ErrInvalidKey, i,
				keyLen, MaxKeyLen)
		}
		rest = rest[n:]
		if keyLen > uint64(len(rest)) {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: key truncated", ErrMalformed, i)
		}
		o.Key, rest = rest[:keyLen:keyLen], rest[keyLen:]
		if reason := keyProblem(o.Key); reason != "" {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: %s", ErrInvalidKey, i, reason)
		}
		if i > 0 && bytes.Compare(e.Ops[i-1].Key, o.Key) >= 0 {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: key not after the previous operation's",
				ErrMalformed, i)
		}
		if o.Op == OpDelete {
			continue
		}
		valLen, n, err := decodeLen(rest, "value")
		if err != nil {
			return Entry{}, err
		}
		if valLen > MaxValueLen {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: %d bytes, longer than %d", ErrValueTooLarge,
				i, valLen, MaxValueLen)
		}
		rest = rest[n:]
		if valLen > uint64(len(rest)) {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: txn op %d: value truncated", ErrMalformed, i)
		}
		o.Value, rest = rest[:valLen:valLen], rest[valLen:]
	}
	if len(rest) != 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %d trailing bytes after a txn", ErrMalformed, len(rest))
	}
	return e, nil
}
