package node

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/journal"
)

// A full disk is a fault a node must survive by itself: it answers writes with a clear error, stops claiming to be
// ready, stays up (healthz, status), logs without flooding, and recovers with nothing acknowledged lost once space
// returns. These tests put a node's data dir on a small tmpfs (the tests run as root; elsewhere they skip, saying
// why) and fill it with a filler file that is removed to give the space back.

// mountSmallDisk mounts a tmpfs of size bytes on a fresh directory, unmounted (lazily if busy) when the test ends.
func mountSmallDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root and CAP_SYS_ADMIN): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if err := exec.Command("umount", dir).Run(); err != nil {
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fillDisk writes a filler file that leaves about free bytes on the file system of dir, and returns its path.
func fillDisk(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	n := avail - free
	if n <= 0 {
		t.Fatalf("only %d bytes free on %s, want more than %d", avail, dir, free)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatalf("filler: %v", err)
		}
		n -= k
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func bigValue(t *testing.T) []byte {
	v := make([]byte, 512<<10)
	if _, err := rand.Read(v); err != nil {
		t.Fatal(err)
	}
	return v
}

// readyz returns /readyz's status code and the node's status error.
func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	code, _, _ := do(t, http.MethodGet, url+"/readyz", nil)
	var st statusBody
	getJSON(t, url+"/v1/status", &st)
	return code, st.Error
}

func TestLeader_DiskFull(t *testing.T) {
	mnt := mountSmallDisk(t, 96<<20)
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	l := startLeader(t, filepath.Join(mnt, "leader"), t.TempDir(), "--nats-url", emb.ClientURL())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), t.TempDir(), emb.ClientURL())
	furl := base(f.HTTPAddr())
	filler := fillDisk(t, mnt, 24<<20)

	// Write until the store's disk is full: then writes answer 507 disk_full, fast, and readiness says why.
	value := bigValue(t)
	var full bool
	for i := 0; i < 200 && !full; i++ {
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/big-"+strconv.Itoa(i), value)
		switch {
		case code == http.StatusOK:
		case code == http.StatusInsufficientStorage:
			mustContain(t, string(b), `"disk_full"`)
			full = true
		case code == http.StatusServiceUnavailable && errCode(t, b) == "outcome_unknown":
			// The write that found the disk full: in the log, not applied here yet.
		default:
			t.Fatalf("write %d on a filling disk: %d %s", i, code, b)
		}
	}
	if !full {
		t.Fatal("200 writes of 512 KiB never filled the disk")
	}
	start := time.Now()
	code, b, _ := do(t, http.MethodPut, url+"/v1/kv/more", []byte("x"))
	if code != http.StatusInsufficientStorage || time.Since(start) > time.Second {
		t.Fatalf("write on a full disk: %d %s after %s", code, b, time.Since(start))
	}
	if code, why := readyz(t, url); code != http.StatusServiceUnavailable || !strings.Contains(why, "disk full") {
		t.Fatalf("readyz on a full disk: %d %q", code, why)
	}
	if code, _, _ := do(t, http.MethodGet, url+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz on a full disk: %d", code)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitState(t, url, stateReady, 20*time.Second)
	if code, b := put(t, url, "after", "1"); code != http.StatusOK {
		t.Fatalf("write after space returned: %d %d", code, b)
	}
	t.Logf("writes accepted again %s after space returned", time.Since(back))
	digestsEqual(t, url, furl, 30*time.Second)
}

func TestFollower_DiskFull(t *testing.T) {
	mnt := mountSmallDisk(t, 96<<20)
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	f := startFollower(t, filepath.Join(mnt, "follower"), t.TempDir(), l.NATSURL())
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	filler := fillDisk(t, mnt, 24<<20)

	value := bigValue(t)
	var why string
	for i := 0; i < 120; i++ {
		if code, v := put(t, url, "big-"+strconv.Itoa(i), string(value)); code != http.StatusOK {
			t.Fatalf("leader write %d: %d %d", i, code, v)
		}
		var st statusBody
		getJSON(t, furl+"/v1/status", &st)
		if strings.Contains(st.Error, "disk full") {
			why = st.Error
			break
		}
	}
	if why == "" {
		eventually(t, 10*time.Second, func() string {
			if _, why = readyz(t, furl); !strings.Contains(why, "disk full") {
				return fmt.Sprintf("follower error %q", why)
			}
			return ""
		})
	}
	if code, _ := readyz(t, furl); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz of a follower with a full disk: %d", code)
	}
	if code, _, _ := do(t, http.MethodGet, furl+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz of a follower with a full disk: %d", code)
	}
	// Eventual reads go on from what it has.
	if code, _, _ := do(t, http.MethodGet, furl+"/v1/kv/big-0", nil); code != http.StatusOK {
		t.Fatalf("eventual read of a follower with a full disk: %d", code)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitState(t, furl, stateReady, 30*time.Second)
	t.Logf("follower ready again %s after space returned", time.Since(back))
	digestsEqual(t, url, furl, 30*time.Second)
}

// The leader's data dir holds its embedded JetStream too: the log's server runs out of room first, or the store
// does; either way writes answer with an error, readiness says why, and nothing acknowledged is lost. When the store
// filled first the leader recovers by itself; when the embedded server's stream failed a write, nats-server keeps
// that stream stopped until the server restarts (the README says so), so the test restarts the leader then.
func TestLeader_DiskFullEmbedded(t *testing.T) {
	mnt := mountSmallDisk(t, 160<<20)
	dataDir, snapDir := filepath.Join(mnt, "leader"), t.TempDir()
	l := startLeader(t, dataDir, snapDir)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL())
	furl := base(f.HTTPAddr())
	filler := fillDisk(t, mnt, 40<<20)

	value := bigValue(t)
	acked := map[string]bool{}
	var refused string
	for i := 0; i < 300 && refused == ""; i++ {
		key := "big-" + strconv.Itoa(i)
		start := time.Now()
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/"+key, value)
		switch {
		case code == http.StatusOK:
			acked[key] = true
		case code == http.StatusInsufficientStorage || code == http.StatusServiceUnavailable:
			if time.Since(start) > 10*time.Second {
				t.Fatalf("write on a full disk took %s", time.Since(start))
			}
			refused = fmt.Sprintf("%d %s", code, b)
		default:
			t.Fatalf("write %d on a filling disk: %d %s", i, code, b)
		}
	}
	if refused == "" {
		t.Fatal("300 writes of 512 KiB never filled the disk")
	}
	t.Logf("first refused write: %s", refused)
	eventually(t, 10*time.Second, func() string {
		if code, why := readyz(t, url); code != http.StatusServiceUnavailable {
			return fmt.Sprintf("readyz %d (%q) on a full disk", code, why)
		}
		return ""
	})
	_, why := readyz(t, url)
	t.Logf("status error on a full disk: %s", why)
	if code, _, _ := do(t, http.MethodGet, url+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz on a full disk: %d", code)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	recovered := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !recovered; {
		start := time.Now()
		code, _, _ := do(t, http.MethodPut, url+"/v1/kv/after", []byte("1"))
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("a write took %s to answer %d while the leader recovers", d, code)
		}
		recovered = code == http.StatusOK
	}
	if recovered {
		t.Logf("writes accepted again %s after space returned", time.Since(back))
	} else {
		if _, why := readyz(t, url); !strings.Contains(why, "replication log") {
			t.Fatalf("writes still refused 15 s after space returned, and the status does not blame the log: %q", why)
		}
		t.Logf("the embedded server's stream stopped on the full disk (%s); restarting the leader", why)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = startLeader(t, dataDir, snapDir, "--nats-listen", strings.TrimPrefix(l.NATSURL(), "nats://"))
		url = base(l.HTTPAddr())
		eventually(t, 60*time.Second, func() string {
			code, b, _ := do(t, http.MethodPut, url+"/v1/kv/after", []byte("1"))
			if code != http.StatusOK {
				return fmt.Sprintf("write after the restart: %d %s", code, b)
			}
			return ""
		})
	}
	waitState(t, url, stateReady, 10*time.Second)
	for key := range acked {
		if code, _, _ := do(t, http.MethodGet, url+"/v1/kv/"+key, nil); code != http.StatusOK {
			t.Fatalf("acknowledged %s lost: %d", key, code)
		}
	}
	digestsEqual(t, url, furl, 30*time.Second)
}

// A follower started on a disk already too full to open its store stays up: it answers healthz and status (failed,
// disk full), and opens the store and catches up by itself once space returns.
func TestFollower_StartsOnFullDisk(t *testing.T) {
	mnt := mountSmallDisk(t, 96<<20)
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	put(t, url, "a", "1")
	dataDir, snapDir := filepath.Join(mnt, "follower"), t.TempDir()
	f := startFollower(t, dataDir, snapDir, l.NATSURL())
	waitState(t, base(f.HTTPAddr()), stateReady, 20*time.Second)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	filler := fillDisk(t, mnt, 4<<20)
	put(t, url, "b", "2")

	f = startFollower(t, dataDir, snapDir, l.NATSURL())
	furl := base(f.HTTPAddr())
	eventually(t, 10*time.Second, func() string {
		if code, why := readyz(t, furl); code != http.StatusServiceUnavailable || !strings.Contains(why, "disk full") {
			return fmt.Sprintf("readyz %d, error %q", code, why)
		}
		return ""
	})
	if code, _, _ := do(t, http.MethodGet, furl+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitState(t, furl, stateReady, 30*time.Second)
	digestsEqual(t, url, furl, 30*time.Second)
}
