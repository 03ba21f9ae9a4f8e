package snapshots

import "errors"

// Sentinel errors. Functions in this package wrap them with detail; compare with errors.Is.
var (
	// ErrNotFound means an object, a bucket or a root directory does not exist, or an object disappeared while it
	// was being read (for example deleted by retention during a restore).
	ErrNotFound = errors.New("not found")
	// ErrCorrupt means stored bytes are not what they should be: a malformed manifest or data stream, or data that
	// does not match its manifest (size, SHA-256, key count, state digest). Retrying the same object will not help.
	ErrCorrupt = errors.New("corrupt snapshot")
	// ErrInvalidURL means a store URL or its S3 settings cannot be used. The message says what is wrong and never
	// contains credentials.
	ErrInvalidURL = errors.New("invalid snapshot store URL")
	// ErrInvalidKey means an object key does not follow the rules of Store (see ValidKey).
	ErrInvalidKey = errors.New("invalid object key")
	// ErrEmptyLog means Repo.Create was given a source at sequence 0: there is nothing to snapshot.
	ErrEmptyLog = errors.New("nothing to snapshot at sequence 0")
)
