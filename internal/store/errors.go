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
	// ErrDiskFull means the store's disk (or quota) has no room: a write was refused before it reached pebble, or
	// Open or a Loader found too little free space. See DB.Apply and DB.Err for what the owner does next.
	ErrDiskFull = errors.New("store: disk full")
)
