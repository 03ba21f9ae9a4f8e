// Package apply is replikv's pure core: the log entry format, key and value validation, write preconditions, the
// mapping from log entries to store mutations, sequence classification for the apply loop, and the state digest.
//
// It imports only the standard library and does no I/O, so every rule that decides what the store contains can be
// tested with plain values and fuzzed. Everything here is safe for concurrent use except Digest, which belongs to one
// goroutine.
package apply
