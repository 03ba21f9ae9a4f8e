package apply

import "errors"

// Sentinel errors. Functions in this package wrap them with detail; compare with errors.Is.
var (
	// ErrInvalidKey means a key is empty, longer than MaxKeyLen, not valid UTF-8 or contains a NUL byte.
	ErrInvalidKey = errors.New("invalid key")
	// ErrValueTooLarge means a value is longer than MaxValueLen.
	ErrValueTooLarge = errors.New("value too large")
	// ErrMalformed means encoded bytes are not a well-formed entry of their version (truncated, unknown op,
	// trailing bytes, non-canonical lengths). It is never retried: the bytes will not change.
	ErrMalformed = errors.New("malformed entry")
	// ErrUnsupportedVersion means an entry was written in a format version this build does not know. A follower
	// must stop applying (and report failed) rather than skip it.
	ErrUnsupportedVersion = errors.New("unsupported entry version")
	// ErrPrecondition means an If-Match or If-None-Match condition does not hold (HTTP 412).
	ErrPrecondition = errors.New("precondition failed")
	// ErrNotFound means a delete names a key that does not exist (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrTxnTooLarge means a transaction has more than MaxTxnOps operations or an entry longer than MaxTxnLen bytes
	// (HTTP 413).
	ErrTxnTooLarge = errors.New("transaction too large")
)
