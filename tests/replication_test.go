//go:build e2e

package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestReplication_LogReplay: a leader and two followers that replay the log from seq 1 (no snapshot exists) under
// concurrent writes end with the leader's exact state; followers redirect writes and serve read-your-writes and
// strong reads.
func TestReplication_LogReplay(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader()
	lc := ld.api()
	f1 := c.startFollower("f1")
	lg := startLoad(t, lc, loadOpts{})
	lg.waitAcked(t, 1500)
	f2 := c.startFollower("f2") // joins mid-load, still from seq 1
	lg.waitAcked(t, 3000)

	f1c, f2c := f1.api(), f2.api()
	for _, f := range []*client{f1c, f2c} {
		st, _ := f.waitReady(t)
		if st.Role != "follower" || st.SnapshotSeq != 0 {
			t.Fatalf("%s: status %+v, want role follower and snapshot_seq 0 (log replay)", f.base, st)
		}
	}

	t.Run("Followers", func(t *testing.T) {
		eventually(t, 30*time.Second, func() (bool, string) {
			fs := lc.followers(t)
			ready := map[string]bool{}
			for _, f := range fs {
				if _, err := time.Parse(time.RFC3339, f.LastSeen); err != nil {
					return false, fmt.Sprintf("last_seen %q of %s: %v", f.LastSeen, f.ID, err)
				}
				ready[f.ID] = f.State == "ready"
			}
			return ready["f1"] && ready["f2"], fmt.Sprintf("followers %+v, want f1 and f2 ready", fs)
		})
	})

	t.Run("Redirect", func(t *testing.T) {
		path := kvPath("redirect/a key") + "?x=1&y=two"
		r := f1c.must(t, http.MethodPut, path, []byte("v"), nil, http.StatusTemporaryRedirect)
		loc, err := url.Parse(r.Header.Get("Location"))
		if err != nil {
			t.Fatalf("Location %q: %v", r.Header.Get("Location"), err)
		}
		want, _ := url.Parse(lc.base + path)
		if loc.Scheme != want.Scheme || loc.Host != want.Host || loc.Path != want.Path || loc.RawQuery != want.RawQuery {
			t.Fatalf("Location %q, want %q", loc, want)
		}
		f1c.must(t, http.MethodDelete, path, nil, nil, http.StatusTemporaryRedirect)
		// Following the redirect (curl -L) writes on the leader.
		follow := &http.Client{Timeout: 10 * time.Second}
		req, _ := http.NewRequest(http.MethodPut, f1c.base+path, bytes.NewReader([]byte("via-redirect")))
		resp, err := follow.Do(req)
		if err != nil {
			t.Fatalf("PUT following the redirect: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT following the redirect: %d, want 200", resp.StatusCode)
		}
		got := lc.must(t, http.MethodGet, kvPath("redirect/a key"), nil, nil, http.StatusOK)
		if string(got.Body) != "via-redirect" {
			t.Fatalf("leader has %q after the redirected PUT", got.Body)
		}
	})

	t.Run("ReadYourWrites", func(t *testing.T) {
		for i := range 20 {
			key, val := fmt.Sprintf("ryw/%d", i), fmt.Sprintf("value-%d", i)
			w := lc.put(t, key, []byte(val))
			r := f2c.must(t, http.MethodGet, kvPath(key)+"?min_seq="+strconv.FormatUint(w.Version, 10), nil, nil, http.StatusOK)
			if string(r.Body) != val || r.Header.Get("ETag") != strconv.Quote(strconv.FormatUint(w.Version, 10)) {
				t.Fatalf("min_seq read of %s: %q etag %s, want %q version %d", key, r.Body, r.Header.Get("ETag"), val, w.Version)
			}
			if s := r.seqHeader(); s < int64(w.Version) {
				t.Fatalf("min_seq=%d read answered with Replikv-Seq %d", w.Version, s)
			}
		}
	})

	t.Run("StrongRead", func(t *testing.T) {
		for i := range 20 {
			key, val := fmt.Sprintf("strong/%d", i), fmt.Sprintf("value-%d", i)
			w := lc.put(t, key, []byte(val))
			r := f1c.must(t, http.MethodGet, kvPath(key)+"?consistency=strong", nil, nil, http.StatusOK)
			if string(r.Body) != val {
				t.Fatalf("strong read of %s: %q, want %q", key, r.Body, val)
			}
			if s := r.seqHeader(); s < int64(w.Version) {
				t.Fatalf("strong read after version %d answered with Replikv-Seq %d", w.Version, s)
			}
		}
	})

	t.Run("MinSeqTimeout", func(t *testing.T) {
		st := f1c.status(t)
		far := st.AppliedSeq + 1_000_000
		r := f1c.must(t, http.MethodGet, fmt.Sprintf("/v1/digest?min_seq=%d&timeout=200ms", far), nil, nil,
			http.StatusGatewayTimeout)
		if e := decode[errorDoc](t, r); e.Code != "timeout" {
			t.Fatalf("min_seq past the log: %s, want code timeout", r)
		}
	})

	ledger := lg.stop()
	ledger.requireDefinite(t)
	ld1 := waitDigestEqual(t, lc, f1c)
	waitDigestEqual(t, lc, f2c)
	for _, n := range []*client{lc, f1c, f2c} {
		verifyLoad(t, n, ledger)
	}

	t.Run("DigestDefinition", func(t *testing.T) {
		items, seqs := lc.list(t, "")
		for _, s := range seqs {
			if s != ld1.Seq {
				t.Fatalf("list pages at seq %v, digest at %d (no writes in between)", seqs, ld1.Seq)
			}
		}
		if uint64(len(items)) != ld1.Keys {
			t.Fatalf("list has %d keys, digest says %d", len(items), ld1.Keys)
		}
		if got := computeDigest(items); got != ld1.Digest {
			t.Fatalf("digest recomputed from the list %s, leader says %s", got, ld1.Digest)
		}
	})
}

// computeDigest is the contract's state digest over items in key order.
func computeDigest(items []listItem) string {
	h := sha256.New()
	var buf []byte
	for _, it := range items {
		buf = binary.AppendUvarint(buf[:0], uint64(len(it.Key)))
		buf = append(buf, it.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(it.Value)))
		buf = append(buf, it.Value...)
		buf = binary.AppendUvarint(buf, it.Version)
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}
