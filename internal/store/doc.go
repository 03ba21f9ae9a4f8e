// Package store is replikv's local engine, built on pebble.
//
// # Key layout
//
// Every pebble key starts with a one-byte prefix, so that the data is one bounded range:
//
//	"d" + key   a live key; the value is uvarint(version) followed by the value bytes
//	"m" + name  metadata, outside the data range ("d" < "e" <= "m"):
//	  "mapplied"   the last applied log sequence, 8 bytes big-endian
//	  "msnapshot"  the snapshot sequence (restored from, or last created), 8 bytes big-endian
//
// Deleted keys are pebble deletes (no tombstone of ours): a key absent from the data range does not exist.
//
// # Atomicity and durability
//
// Apply writes the mutations of a batch of log entries together with the new applied sequence in one pebble batch,
// so the data and the applied sequence can never disagree. Batches are not synced: the replication log is the source
// of truth, pebble's WAL recovers a consistent prefix after a crash, and recovery replays the log from applied+1.
//
// # Concurrency
//
// One goroutine (the apply loop or the leader's committer) owns the write side and calls Apply; any number of
// goroutines may read (Get, Version, View) at the same time. Close waits for calls in progress, including a View's
// Iterate, and makes every later call return ErrClosed.
//
// # Data directory
//
// <dataDir>/store is the live store and <dataDir>/restore a restore being loaded by a Loader. Install swaps a finished
// restore in with directory renames, and CleanStale removes what a crash left behind, so a half-loaded store is never
// opened.
package store
