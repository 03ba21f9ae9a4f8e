//go:build e2e

package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/tcpproxy"
)

// TestOnboarding_S3Outage: a follower that starts while S3 is down stays not ready (/readyz 503) and, once S3 is
// back, recovers by itself and becomes ready. The log is compacted past seq 1 by then, so replaying it from the
// start is no way out.
func TestOnboarding_S3Outage(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{s3: true})
	ld := c.startLeader()
	lc := ld.api()
	writeBatch(t, lc, "before/", 300)
	s := lc.snapshot(t)
	writeBatch(t, lc, "after/", 100)

	c.s3.Stop()
	f := c.startFollower("f1")
	fc := f.api()
	const outage = 4 * time.Second
	deadline := time.Now().Add(outage)
	var states []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code, st, err := fc.readyz(ctx)
		cancel()
		if err != nil {
			t.Fatalf("follower during the S3 outage: %v", err)
		}
		if code != http.StatusServiceUnavailable || st.State == "ready" {
			t.Fatalf("follower ready without S3: /readyz %d, status %+v", code, st)
		}
		if len(states) == 0 || states[len(states)-1] != st.State {
			states = append(states, st.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("states during the outage: %v", states)

	c.s3.Restart(t)
	st, _ := fc.waitReady(t)
	if st.SnapshotSeq != s.Seq {
		t.Fatalf("follower snapshot_seq %d after the outage, want %d", st.SnapshotSeq, s.Seq)
	}
	waitDigestEqual(t, lc, fc)
}

// TestOnboarding_KillMidRestore: SIGKILL a follower in the middle of a restore (S3 reached through a throttling
// proxy so the restore takes seconds), restart it: it recovers and converges.
func TestOnboarding_KillMidRestore(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{s3: true})
	ld := c.startLeader()
	lc := ld.api()
	fill(t, lc, 20_000, 1024, 16) // ~20 MB of incompressible values
	s := lc.snapshot(t)
	if s.Bytes < 10<<20 {
		t.Fatalf("snapshot of %d bytes is too small for this test", s.Bytes)
	}
	px := tcpproxy.Start(t, c.s3.Endpoint)
	px.SetRate(2 << 20) // ~10 s for the data object

	f := c.startFollower("f1", "--s3-endpoint="+px.Addr())
	fc := f.api()
	eventually(t, 60*time.Second, func() (bool, string) {
		st := fc.status(t)
		done, total := progressInt(st, "bytes_done"), progressInt(st, "bytes_total")
		if st.State == "ready" {
			t.Fatalf("follower became ready before it could be killed mid-restore: %+v", st)
		}
		return st.State == "restoring" && done > 0 && done < total,
			fmt.Sprintf("waiting for a restore in progress, status %+v", st)
	})
	f.kill()

	px.SetRate(0)
	f.restart(false)
	fc = f.api()
	st, states := fc.waitReady(t)
	t.Logf("states after the restart: %v", states)
	if st.SnapshotSeq != s.Seq {
		t.Fatalf("snapshot_seq %d after the restart, want %d", st.SnapshotSeq, s.Seq)
	}
	waitDigestEqual(t, lc, fc)
}

// progressInt reads a numeric progress field of a status (-1 when absent).
func progressInt(st statusDoc, name string) int64 {
	v, ok := st.Progress[name].(float64)
	if !ok {
		return -1
	}
	return int64(v)
}

// TestFollower_RestartNoRedownload: a follower stopped with SIGTERM and restarted resumes from its own store: its
// status never shows restoring, snapshot_seq stays at the snapshot it first restored although a newer one exists
// by then, and the new process downloads no snapshot bytes (replikv_restore_bytes_total stays 0, while the first
// process's counter was positive).
func TestFollower_RestartNoRedownload(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{s3: true})
	ld := c.startLeader()
	lc := ld.api()
	writeBatch(t, lc, "one/", 300)
	s1 := lc.snapshot(t)
	writeBatch(t, lc, "two/", 100)

	f := c.startFollower("f1")
	fc := f.api()
	if st, _ := fc.waitReady(t); st.SnapshotSeq != s1.Seq {
		t.Fatalf("snapshot_seq %d, want %d", st.SnapshotSeq, s1.Seq)
	}
	if got := restoreBytes(t, fc); got <= 0 {
		t.Fatalf("replikv_restore_bytes_total %v after a restore, want > 0 (the signal this test relies on)", got)
	}
	f.stop()
	writeBatch(t, lc, "three/", 300)
	s2 := lc.snapshot(t)
	writeBatch(t, lc, "four/", 50)

	f.restart(false)
	fc = f.api()
	st, states := fc.waitReady(t)
	for _, s := range states {
		if s == "restoring" {
			t.Fatalf("restarted follower went through restoring: states %v", states)
		}
	}
	if st.SnapshotSeq != s1.Seq {
		t.Fatalf("restarted follower snapshot_seq %d, want %d (unchanged; %d would mean a new download)",
			st.SnapshotSeq, s1.Seq, s2.Seq)
	}
	if got := restoreBytes(t, fc); got != 0 {
		t.Fatalf("restarted follower downloaded %v snapshot bytes, want 0", got)
	}
	waitDigestEqual(t, lc, fc)
}

// restoreBytes reads replikv_restore_bytes_total from /metrics (-1 when absent).
func restoreBytes(t *testing.T, c *client) float64 {
	t.Helper()
	r := c.must(t, http.MethodGet, "/metrics", nil, nil, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "replikv_restore_bytes_total") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		return v
	}
	return -1
}
