//go:build linux

package snapshots

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [from, to) of f to disk (sync_file_range with WRITE only). It does
// not wait for the writes, syncs no metadata and promises no durability: the fsync at the end does.
func startWriteback(f *os.File, from, to int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), from, to-from, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return serr
}
