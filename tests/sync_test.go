//go:build e2e

package tests

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestSync_Followers: with --sync-followers=1 a 200 write is already applied on the ready follower when the answer
// arrives, and says "replicated":1. With the follower stopped, a write answers 202 with "replicated":0 after about
// --sync-timeout, and is committed all the same.
func TestSync_Followers(t *testing.T) {
	t.Parallel()
	const syncTimeout = 2 * time.Second
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader("--sync-followers=1", "--sync-timeout="+syncTimeout.String())
	lc := ld.api()
	f := c.startFollower("f1")
	fc := f.api()
	fc.waitReady(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, fl := range lc.followers(t) {
			if fl.ID == "f1" && fl.State == "ready" {
				return true, ""
			}
		}
		return false, "leader does not list f1 as ready"
	})

	t.Run("Confirmed", func(t *testing.T) {
		for i := range 50 {
			key, val := fmt.Sprintf("sync/%d", i%10), fmt.Sprintf("v%d", i)
			r := lc.must(t, http.MethodPut, kvPath(key), []byte(val), nil, http.StatusOK)
			w := decode[writeDoc](t, r)
			if w.Replicated == nil || *w.Replicated != 1 {
				t.Fatalf("sync write %s: body %s, want \"replicated\":1", key, r.Body)
			}
			got := fc.must(t, http.MethodGet, kvPath(key), nil, nil, http.StatusOK) // eventual read
			if string(got.Body) != val {
				t.Fatalf("follower has %q for %s right after the 200, want %q", got.Body, key, val)
			}
		}
	})

	f.stop()
	t.Run("TimedOut", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		r, err := lc.do(ctx, http.MethodPut, kvPath("sync/alone"), []byte("unconfirmed"), nil)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("write without followers: %v", err)
		}
		if r.Code != http.StatusAccepted {
			t.Fatalf("write without followers: %s, want 202", r)
		}
		w := decode[writeDoc](t, r)
		if w.Replicated == nil || *w.Replicated != 0 || w.Key != "sync/alone" || w.Version == 0 {
			t.Fatalf("202 body %s, want key, version and \"replicated\":0", r.Body)
		}
		if took < syncTimeout*3/4 || took > syncTimeout+3*time.Second {
			t.Fatalf("202 after %v, want about the sync timeout %v", took, syncTimeout)
		}
		got := lc.must(t, http.MethodGet, kvPath("sync/alone"), nil, nil, http.StatusOK)
		if string(got.Body) != "unconfirmed" {
			t.Fatalf("leader has %q for the 202 write", got.Body)
		}
	})

	t.Run("Recovered", func(t *testing.T) {
		f.restart(false)
		fc := f.api()
		fc.waitReady(t)
		eventually(t, 60*time.Second, func() (bool, string) {
			r := lc.call(t, http.MethodPut, kvPath("sync/back"), []byte("again"), nil)
			return r.Code == http.StatusOK, fmt.Sprintf("write after the follower came back: %s", r)
		})
		got := fc.must(t, http.MethodGet, kvPath("sync/back"), nil, nil, http.StatusOK)
		if string(got.Body) != "again" {
			t.Fatalf("follower has %q right after the confirmed write", got.Body)
		}
	})
}
