// Package smalldisk gives tests a small file system to fill: a tmpfs mounted for the test (the tests run as root;
// where mounting is refused the test is skipped, saying why) and filler files that take its space and give it back.
package smalldisk

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a fresh directory, unmounted (lazily if something still holds it) when the
// test ends, and returns the directory.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root and CAP_SYS_ADMIN): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", dir, err, bytes.TrimSpace(out))
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// Free returns the bytes still free on dir's file system.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// LeaveFree writes a filler file in dir that leaves about free bytes on its file system, and returns the file's path
// (remove it to give the space back).
func LeaveFree(t testing.TB, dir string, free int64) string {
	t.Helper()
	n := Free(t, dir) - free
	if n <= 0 {
		t.Fatalf("only %d bytes free on %s, want more than %d", Free(t, dir), dir, free)
	}
	path := filepath.Join(dir, "filler")
	WriteFiller(t, path, n)
	return path
}

// WriteFiller writes a file of n bytes, or until the disk is full if n < 0.
func WriteFiller(t testing.TB, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for written := int64(0); n < 0 || written < n; {
		k := len(buf)
		if n >= 0 {
			k = int(min(int64(k), n-written))
		}
		m, err := f.Write(buf[:k])
		written += int64(m)
		if err != nil {
			if n < 0 && errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("write filler: %v", err)
		}
	}
}
