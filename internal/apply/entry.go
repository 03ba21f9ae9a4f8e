package apply

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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
	// OpCheckpoint carries checkpoint information (see Checkpoint) and changes no key: applying it only advances the
	// applied sequence, so the state digest is the same before and after it.
	OpCheckpoint Op = 3
	// OpTxn is a transaction: puts and deletes of distinct keys (Entry.Ops), applied all together, every key getting
	// the entry's sequence as its version.
	OpTxn Op = 4
	// OpTerm opens a leader's term (Entry.Term, its epoch) and changes no key. A leader writes it first, right after
	// it took the lease and applied the log to its end: a leader that lost the lease and still expects the log to end
	// where it left it is refused at its first publish from then on.
	OpTerm Op = 5
)

// String returns "put", "delete", "checkpoint", "txn", or "op(N)" for an unknown value, for logs and errors.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCheckpoint:
		return "checkpoint"
	case OpTxn:
		return "txn"
	case OpTerm:
		return "term"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// CheckpointKind is the kind of an OpCheckpoint entry.
type CheckpointKind uint8

const (
	// CheckpointMark makes the entry's own log sequence S a checkpoint: every node cuts its apply batch right after
	// it, so that its store is at exactly S for a moment, and may take a store view there. The leader snapshots that
	// view; followers compute their state digest on theirs.
	CheckpointMark CheckpointKind = 1
	// CheckpointResult carries the leader's live key count and state digest at the sequence of an earlier mark.
	CheckpointResult CheckpointKind = 2
)

// String returns "mark", "result", or "kind(N)" for an unknown value, for logs and errors.
func (k CheckpointKind) String() string {
	switch k {
	case CheckpointMark:
		return "mark"
	case CheckpointResult:
		return "result"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// DigestSize is the length of a raw state digest (a SHA-256).
const DigestSize = sha256.Size

// Checkpoint is the content of an OpCheckpoint entry. A mark carries only its Kind (the other fields are zero). A
// result says that the store at log sequence Seq (the sequence of a mark entry, before the result's own) holds Keys
// live keys and has the state digest Digest (the raw bytes of Digest.Sum's hex).
type Checkpoint struct {
	Kind   CheckpointKind
	Seq    uint64
	Keys   uint64
	Digest [DigestSize]byte
}

// DigestHex returns Digest as lowercase hex, as Digest.Sum and GET /v1/digest spell it.
func (c Checkpoint) DigestHex() string { return hex.EncodeToString(c.Digest[:]) }

// NewCheckpointResult returns the result of the checkpoint at seq for a state of keys live keys and the state digest
// digest (64 lowercase hex digits, as Digest.Sum returns it). The error wraps ErrMalformed when seq is 0 or digest is
// not such a digest.
func NewCheckpointResult(seq, keys uint64, digest string) (Checkpoint, error) {
	c := Checkpoint{Kind: CheckpointResult, Seq: seq, Keys: keys}
	if seq == 0 {
		return Checkpoint{}, fmt.Errorf("apply: checkpoint result: %w: seq 0", ErrMalformed)
	}
	if len(digest) != 2*DigestSize {
		return Checkpoint{}, fmt.Errorf("apply: checkpoint result: %w: digest of %d hex digits, want %d", ErrMalformed,
			len(digest), 2*DigestSize)
	}
	if _, err := hex.Decode(c.Digest[:], []byte(digest)); err != nil || hex.EncodeToString(c.Digest[:]) != digest {
		return Checkpoint{}, fmt.Errorf("apply: checkpoint result: %w: digest is not %d lowercase hex digits", ErrMalformed, 2*DigestSize)
	}
	return c, nil
}

// Entry is one log entry. Entries are unconditional: the leader decides preconditions before publishing, so applying
// an entry never fails for reasons of state. Value is nil for OpDelete. Checkpoint is used by OpCheckpoint only,
// whose Key and Value are nil. Ops is used by OpTxn only, whose Key and Value are nil: its operations in strictly
// increasing byte order of their keys (see TxnOp).
type Entry struct {
	Op         Op
	Key        []byte
	Value      []byte
	Checkpoint Checkpoint
	Ops        []TxnOp
	// Term is the epoch of the leader's lease (at least 1), for OpTerm only.
	Term uint64
	// Idem is the idempotency record a put, delete or transaction carries when its client sent an idempotency key
	// (Idem.Key not empty): applying the entry stores it with the entry's sequence. Other ops never carry one.
	Idem Idem
}

// Mutates reports whether applying e changes keys (a put, a delete or a transaction); AppendMutations turns such an
// entry into its mutations, ToMutation a put or a delete into its one.
func (e Entry) Mutates() bool { return e.Op == OpPut || e.Op == OpDelete || e.Op == OpTxn }

// CheckAt checks what the encoding cannot: the rules that depend on the entry's own log sequence seq. A checkpoint
// result must be for an earlier sequence. The error wraps ErrMalformed; such an entry never becomes valid.
func (e Entry) CheckAt(seq uint64) error {
	if e.Op == OpCheckpoint && e.Checkpoint.Kind == CheckpointResult && e.Checkpoint.Seq >= seq {
		return fmt.Errorf("apply: entry %d: %w: checkpoint result for seq %d, not before it", seq, ErrMalformed,
			e.Checkpoint.Seq)
	}
	return nil
}

// AppendEntry appends the v1 encoding of e to dst and returns the extended slice:
//
//	byte 0: format version (1)
//	byte 1: op
//	put, delete:  uvarint(len(key)) key
//	put only:     uvarint(len(value)) value
//	checkpoint:   byte kind (1 mark, 2 result)
//	result only:  uvarint(seq) uvarint(keys) digest (32 bytes)
//	txn:          uvarint(len(ops)), then per operation: byte op (1 put, 2 delete) uvarint(len(key)) key, and for a
//	              put uvarint(len(value)) value
//	term:         uvarint(term), at least 1
//
// A put, delete or transaction with an idempotency record (Idem.Key not empty) is written as op 6 instead, followed
// by the record (see Idem) and then by the entry's own op byte and fields as above.
//
// It does not validate e; the caller validates keys and values before it builds entries, and gives a transaction's
// Ops in strictly increasing key order (SortTxnOps) within the limits of ValidateTxn, as DecodeEntry requires. A
// delete's Value is not written, nor a checkpoint's or a transaction's Key and Value, nor a mark's other checkpoint
// fields.
func AppendEntry(dst []byte, e Entry) []byte {
	if len(e.Idem.Key) > 0 && e.Mutates() {
		dst = append(dst, formatV1, byte(opIdem))
		dst = appendIdem(dst, e.Idem)
		dst = append(dst, byte(e.Op))
	} else {
		dst = append(dst, formatV1, byte(e.Op))
	}
	if e.Op == OpTxn {
		return appendTxnOps(dst, e.Ops)
	}
	if e.Op == OpTerm {
		return binary.AppendUvarint(dst, e.Term)
	}
	if e.Op == OpCheckpoint {
		c := e.Checkpoint
		dst = append(dst, byte(c.Kind))
		if c.Kind != CheckpointResult {
			return dst
		}
		dst = binary.AppendUvarint(dst, c.Seq)
		dst = binary.AppendUvarint(dst, c.Keys)
		return append(dst, c.Digest[:]...)
	}
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
// carries no value, a checkpoint's kind and fields (a result's seq at least 1), a transaction's limits and key order,
// a term's epoch (at least 1), and that no bytes trail. Errors wrap ErrUnsupportedVersion, ErrMalformed,
// ErrInvalidKey, ErrValueTooLarge or ErrTxnTooLarge. Rules that depend on the entry's own sequence are Entry.CheckAt's.
//
// The result aliases b (zero copy): the caller must not modify b while it uses the entry. DecodeEntry never panics
// and allocates only for errors and for a transaction's list of operations.
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
	op, rest := Op(b[1]), b[2:]
	if op == opIdem {
		return decodeIdem(rest)
	}
	return decodeBody(op, rest)
}

// decodeBody decodes what follows an entry's op byte (rest) for op.
func decodeBody(op Op, rest []byte) (Entry, error) {
	switch op {
	case OpCheckpoint:
		return decodeCheckpoint(rest)
	case OpTxn:
		return decodeTxn(rest)
	case OpTerm:
		return decodeTerm(rest)
	case OpPut, OpDelete:
	default:
		return Entry{}, fmt.Errorf("apply: decode entry: %w: unknown %s", ErrMalformed, op)
	}
	e := Entry{Op: op}
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

// decodeTerm decodes the rest of an OpTerm entry (after the op byte): one canonical uvarint of at least 1, nothing
// after it.
func decodeTerm(rest []byte) (Entry, error) {
	term, n, err := decodeLen(rest, "term")
	if err != nil {
		return Entry{}, err
	}
	if term == 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: term 0", ErrMalformed)
	}
	if n != len(rest) {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: %d bytes after a term", ErrMalformed, len(rest)-n)
	}
	return Entry{Op: OpTerm, Term: term}, nil
}

// decodeCheckpoint decodes the rest of an OpCheckpoint entry (after the op byte).
func decodeCheckpoint(rest []byte) (Entry, error) {
	if len(rest) == 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: checkpoint without a kind", ErrMalformed)
	}
	e := Entry{Op: OpCheckpoint, Checkpoint: Checkpoint{Kind: CheckpointKind(rest[0])}}
	rest = rest[1:]
	switch e.Checkpoint.Kind {
	case CheckpointMark:
		if len(rest) != 0 {
			return Entry{}, fmt.Errorf("apply: decode entry: %w: %d bytes after a checkpoint mark", ErrMalformed, len(rest))
		}
		return e, nil
	case CheckpointResult:
	default:
		return Entry{}, fmt.Errorf("apply: decode entry: %w: unknown checkpoint %s", ErrMalformed, e.Checkpoint.Kind)
	}
	seq, n, err := decodeLen(rest, "checkpoint seq")
	if err != nil {
		return Entry{}, err
	}
	if seq == 0 {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: checkpoint result for seq 0", ErrMalformed)
	}
	rest = rest[n:]
	keys, n, err := decodeLen(rest, "checkpoint keys")
	if err != nil {
		return Entry{}, err
	}
	rest = rest[n:]
	if len(rest) != DigestSize {
		return Entry{}, fmt.Errorf("apply: decode entry: %w: checkpoint digest of %d bytes, want %d", ErrMalformed,
			len(rest), DigestSize)
	}
	e.Checkpoint.Seq, e.Checkpoint.Keys = seq, keys
	copy(e.Checkpoint.Digest[:], rest)
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
