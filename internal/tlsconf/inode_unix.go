//go:build unix

package tlsconf

import (
	"os"
	"syscall"
)

// inode returns fi's inode number: a file renamed over another one has another inode even when its size and
// modification time (which the file system may keep at a coarse resolution) are the same.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino) // uint32 on some platforms
	}
	return 0
}
