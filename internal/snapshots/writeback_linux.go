//go:build linux

package snapshots

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [0, off) of f to disk, after waiting for the writeback it started
// on the earlier part (sync_file_range with WAIT_BEFORE|WRITE, as RocksDB's and pebble's bytes-per-sync do). It
// neither syncs metadata nor waits for the new range, and it promises no durability: the fsync at the end does.
func startWriteback(f *os.File, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), 0, off, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return serr
}
