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
// # Disk usage
//
// A store holding N bytes of keys and values (after pebble's compression) needs about
//
//	disk ≈ 1.1·N + 5 × 1.1 × MemTableSize + DiskReserveBytes ≈ 1.1·N + 52 MiB
//
// with MemTableSize 8 MiB (memTableBytes) and the default 8 MiB reserve: the sstables with the LSM's space
// amplification (1.1·N, more while a compaction writes its outputs before it deletes its inputs), pebble's WAL files,
// each preallocated to 110% of MemTableSize (the live one, one of a memtable waiting for its flush, and up to three
// kept for reuse), and the disk reserve (see "Full disk"). Measured with 40 MB of incompressible values: 78 to 84 MB
// (du), of which 36 MB WAL.
//
// # Full disk
//
// Pebble cannot survive a failed write to its WAL or MANIFEST (it panics or calls Logger.Fatalf), so the store runs
// pebble on a file system wrapper (diskGuard) that keeps a reserve file and, on the first ENOSPC or EDQUOT, deletes
// the reserve so the WAL and MANIFEST writes in flight complete; from then on Apply returns ErrDiskFull without
// touching pebble, and flushes and compactions fail fast (pebble retries them; the store's event listener spaces the
// retries out and rate-limits their log lines) until the disk has twice the reserve free again. Nothing of a refused
// batch is applied, so the owner retries the same Apply later. If pebble fails anyway, DB.Err reports it; the owner
// then closes the store (which abandons the engine rather than hang) and opens it again. Open and NewLoader check the
// free space before pebble starts and return ErrDiskFull at once on a full disk.
//
// # Data directory
//
// <dataDir>/store is the live store and <dataDir>/restore a restore being loaded by a Loader. Install swaps a finished
// restore in with directory renames, and CleanStale removes what a crash left behind, so a half-loaded store is never
// opened.
package store
