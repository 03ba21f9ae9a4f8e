package store

import "errors"

// Sentinel errors; compare with errors.Is.
var (
	// ErrNotFound means the key does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed means the DB or View was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnordered means a Loader got a key that is not strictly greater than the one before.
	ErrUnordered = errors.New("store: keys out of order")
	// ErrSeqRegression means Apply got a sequence lower than the one already applied.
	ErrSeqRegression = errors.New("store: sequence regression")
	// ErrCorrupt means a stored record cannot be decoded (a bad version prefix or meta value).
	ErrCorrupt = errors.New("store: corrupt record")
)
