package node

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/testutil/smalldisk"
)

// A full disk is a fault a node must survive by itself: it answers writes with a clear error, stops claiming to be
// ready, stays up (healthz, status), logs without flooding, and recovers with nothing acknowledged lost once space
// returns. These tests put a node's data dir on a small tmpfs (the tests run as root; elsewhere they skip, saying
// why) and fill it with a filler file that is removed to give the space back.

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
	mnt := smalldisk.Mount(t, 96<<20)
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
	filler := smalldisk.LeaveFree(t, mnt, 24<<20)

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
	mnt := smalldisk.Mount(t, 96<<20)
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	f := startFollower(t, filepath.Join(mnt, "follower"), t.TempDir(), l.NATSURL())
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 20*time.Second)
	filler := smalldisk.LeaveFree(t, mnt, 24<<20)

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
// does; either way writes answer with an error, readiness says why, and nothing acknowledged is lost. Once space
// returns the leader takes writes again by itself: when the embedded server's stream failed a write, the server
// restarts in place.
func TestLeader_DiskFullEmbedded(t *testing.T) {
	mnt := smalldisk.Mount(t, 160<<20)
	dataDir, snapDir := filepath.Join(mnt, "leader"), t.TempDir()
	l := startLeader(t, dataDir, snapDir)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL())
	furl := base(f.HTTPAddr())
	filler := smalldisk.LeaveFree(t, mnt, 40<<20)

	acked := writeUntilRefused(t, url, 300, http.StatusInsufficientStorage, http.StatusServiceUnavailable)
	eventually(t, 10*time.Second, func() string {
		if code, why := readyz(t, url); code != http.StatusServiceUnavailable {
			return fmt.Sprintf("readyz %d (%q) on a full disk", code, why)
		}
		return ""
	})
	_, why := readyz(t, url)
	t.Logf("status error on a full disk: %s", why)
	recoverOnceSpaceReturns(t, url, filler, acked)
	digestsEqual(t, url, furl, 30*time.Second)
}

// writeUntilRefused writes 512 KiB values to the leader at url (keys big-<i>) until one is refused with one of
// refused codes, at most max writes; a refusal must come within 10 s, any other answer fails the test. It returns the
// acknowledged keys.
func writeUntilRefused(t *testing.T, url string, max int, refused ...int) map[string]bool {
	t.Helper()
	value := bigValue(t)
	acked := map[string]bool{}
	for i := range max {
		key := "big-" + strconv.Itoa(i)
		start := time.Now()
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/"+key, value)
		switch {
		case code == http.StatusOK:
			acked[key] = true
		case slices.Contains(refused, code):
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("write on a full disk took %s", d)
			}
			t.Logf("first refused write: %d %s", code, b)
			return acked
		default:
			t.Fatalf("write %d on a filling disk: %d %s", i, code, b)
		}
	}
	t.Fatalf("%d writes of 512 KiB never filled the disk", max)
	return nil
}

// recoverOnceSpaceReturns checks that a leader with a full disk still answers /healthz, removes filler, and waits
// (60 s at most, each write answered within 10 s) until the leader takes writes again, is ready, and still holds
// every acknowledged key.
func recoverOnceSpaceReturns(t *testing.T, url, filler string, acked map[string]bool) {
	t.Helper()
	if code, _, _ := do(t, http.MethodGet, url+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz on a full disk: %d", code)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	eventually(t, 60*time.Second, func() string {
		start := time.Now()
		code, b, _ := do(t, http.MethodPut, url+"/v1/kv/after", []byte("1"))
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("a write took %s to answer %d while the leader recovers", d, code)
		}
		if code != http.StatusOK {
			return fmt.Sprintf("write after space returned: %d %s", code, b)
		}
		return ""
	})
	t.Logf("writes accepted again %s after space returned", time.Since(back))
	waitState(t, url, stateReady, 10*time.Second)
	for key := range acked {
		if code, _, _ := do(t, http.MethodGet, url+"/v1/kv/"+key, nil); code != http.StatusOK {
			t.Fatalf("acknowledged %s lost: %d", key, code)
		}
	}
}

// A follower started on a disk already too full to open its store stays up: it answers healthz and status (failed,
// disk full), and opens the store and catches up by itself once space returns.
func TestFollower_StartsOnFullDisk(t *testing.T) {
	mnt := smalldisk.Mount(t, 96<<20)
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
	filler := smalldisk.LeaveFree(t, mnt, 4<<20)
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

// When the embedded NATS server's own disk fills, nats-server stops the log's stream: writes answer with an error
// (the log never confirmed them), readiness says the log is the problem, and once space returns the embedded server
// restarts in place and the leader takes writes again by itself, with nothing acknowledged lost.
func TestLeader_EmbeddedLogDiskFull(t *testing.T) {
	dataDir, snapDir := t.TempDir(), t.TempDir()
	mnt := smalldisk.Mount(t, 64<<20)
	// The embedded server's store is dataDir/nats: put it on the small disk, the leader's store stays roomy.
	if err := os.Symlink(mnt, filepath.Join(dataDir, "nats")); err != nil {
		t.Fatal(err)
	}
	l := startLeader(t, dataDir, snapDir)
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), t.TempDir(), l.NATSURL())
	furl := base(f.HTTPAddr())
	filler := smalldisk.LeaveFree(t, mnt, 8<<20)

	acked := writeUntilRefused(t, url, 100, http.StatusServiceUnavailable, http.StatusGatewayTimeout)
	eventually(t, 15*time.Second, func() string {
		if code, why := readyz(t, url); code != http.StatusServiceUnavailable {
			return fmt.Sprintf("readyz %d (%q) with the log's disk full", code, why)
		}
		return ""
	})
	eventually(t, 10*time.Second, func() string {
		if _, why := readyz(t, url); !strings.Contains(why, "no space left on device") {
			return fmt.Sprintf("status error %q does not name the log's full disk", why)
		}
		return ""
	})
	recoverOnceSpaceReturns(t, url, filler, acked)
	digestsEqual(t, url, furl, 30*time.Second)
}
