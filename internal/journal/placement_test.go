package journal

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/natscluster"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

// serverOf returns the name of the server that leads stream name.
func serverOf(t *testing.T, c *Conn, name string) string {
	t.Helper()
	s, err := c.jetStream().Stream(testCtx(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	ci := s.CachedInfo().Cluster
	if ci == nil {
		t.Fatalf("stream %s has no cluster info", name)
	}
	return ci.Leader
}

// TestPlacement_Cluster: on a cluster of a server tagged "log" and one tagged "catchup", the log stream and the lease
// bucket go where StreamTags say and the catch-up mirror where MirrorTags say, whichever server the client is
// connected to; the mirror still copies the log across servers.
func TestPlacement_Cluster(t *testing.T) {
	urls := natscluster.Start(t, "log", "catchup")
	// Connected to the mirror's server, so that placement, not the connection, decides.
	c, err := Connect(testCtx(t), Config{URL: urls[1], Stream: "PLACED", Name: t.Name(), Logger: testlog.New(t),
		StreamTags: []string{"log"}, MirrorTags: []string{"catchup"}})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	ctx := testCtx(t)
	if _, err := c.EnsureStream(ctx); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	if err := c.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatalf("EnsureCatchUpMirror: %v", err)
	}
	if _, err := c.AcquireLease(ctx, LeaderInfo{ID: "leader-1", URL: "http://leader-1"}, time.Minute); err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	for name, want := range map[string]string{"PLACED": "log", mirrorName("PLACED"): "catchup", "KV_" + leaseBucket("PLACED"): "log"} {
		if got := serverOf(t, c, name); got != want {
			t.Errorf("stream %s is on server %q, want %q", name, got, want)
		}
	}
	publishN(t, c, 0, 50)
	waitMirror(t, c, 50)
}

// TestPlacement_FreshLeaseBucketOnAnotherServer: a leader connected to one server of a cluster acquires the lease
// in a bucket that was just created on another. The create returns before the hosting server's subscriptions have
// crossed the route, so the first read or write of the bucket can find no responders; AcquireLease must wait for
// them instead of failing. About one fresh bucket in fifty hit that window on this machine, so the test makes a
// hundred.
func TestPlacement_FreshLeaseBucketOnAnotherServer(t *testing.T) {
	urls := natscluster.Start(t, "log", "catchup")
	for i := range 100 {
		c, err := Connect(testCtx(t), Config{URL: urls[1], Stream: fmt.Sprintf("FRESH%d", i), Name: t.Name(),
			Logger: testlog.New(t), StreamTags: []string{"log"}})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		_, err = c.AcquireLease(testCtx(t), LeaderInfo{ID: "leader-1", URL: "http://leader-1"}, time.Minute)
		c.Close()
		if err != nil {
			t.Fatalf("AcquireLease in fresh bucket %d: %v", i, err)
		}
	}
}

// TestPlacement_Unsatisfiable: tags no server carries make creating the stream fail with an error that says so, and
// nothing is created.
func TestPlacement_Unsatisfiable(t *testing.T) {
	urls := natscluster.Start(t, "log", "catchup")
	c, err := Connect(testCtx(t), Config{URL: urls[0], Stream: "NOWHERE", Name: t.Name(), Logger: testlog.New(t),
		StreamTags: []string{"nowhere"}})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	_, err = c.EnsureStream(testCtx(t))
	if err == nil {
		t.Fatal("EnsureStream with tags no server has: no error")
	}
	t.Logf("EnsureStream: %v", err)
	if _, err := c.Info(testCtx(t)); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Info after a refused create: %v, want ErrNoStream", err)
	}
}

// TestPlacement_SingleServer: a server that is not part of a cluster has nowhere else to put a stream; tags do not
// stop the log or the mirror from being created there.
func TestPlacement_SingleServer(t *testing.T) {
	e := startServer(t)
	c, err := Connect(testCtx(t), Config{URL: e.ClientURL(), Stream: "SINGLE", Name: t.Name(), Logger: testlog.New(t),
		StreamTags: []string{"log"}, MirrorTags: []string{"catchup"}})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	if _, err := c.EnsureStream(testCtx(t)); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	if err := c.EnsureCatchUpMirror(testCtx(t)); err != nil {
		t.Fatalf("EnsureCatchUpMirror: %v", err)
	}
	publishN(t, c, 0, 10)
	waitMirror(t, c, 10)
}

func TestValidateTags(t *testing.T) {
	for _, tags := range [][]string{nil, {}, {"az:b"}, {"log", "ssd"}, {"x"}} {
		if err := ValidateTags(tags); err != nil {
			t.Errorf("ValidateTags(%q) = %v, want nil", tags, err)
		}
	}
	long := fmt.Sprintf("%065d", 0)
	for _, tags := range [][]string{{""}, {"a b"}, {"a,b"}, {"a\tb"}, {"a\x00"}, {long}, {"log", "log"}, {"ssd", "SSD"}} {
		if err := ValidateTags(tags); !errors.Is(err, ErrMalformed) {
			t.Errorf("ValidateTags(%q) = %v, want ErrMalformed", tags, err)
		}
	}
	_, err := Connect(testCtx(t), Config{URL: "nats://127.0.0.1:1", Stream: "S", MirrorTags: []string{"a b"}})
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Connect with a bad mirror tag: %v, want ErrMalformed", err)
	}
}
