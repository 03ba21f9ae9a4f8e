package journal

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/smalldisk"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

// nats-server stops a stream for good when its store fails a write. The embedded server restarts itself once its
// disk has room again, so the log takes writes again with nothing acknowledged lost and no process restart.
func TestEmbedded_RecoversFromFullDisk(t *testing.T) {
	mnt := smalldisk.Mount(t, 96<<20)
	e, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: mnt, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx := testCtx(t)
	c, err := Connect(ctx, Config{URL: e.ClientURL(), Stream: "FULL", InProcess: e, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	filler := smalldisk.LeaveFree(t, mnt, 8<<20)

	payload := make([]byte, 512<<10)
	publish := func(last uint64, timeout time.Duration) (uint64, error) {
		if _, err := rand.Read(payload); err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ack, err := c.PublishAsync(pctx, payload, last, "")
		if err != nil {
			return 0, err
		}
		return ack.Wait(pctx)
	}
	var acked uint64
	var failed error
	for i := 0; i < 100 && failed == nil; i++ {
		// A full disk stops the stream, so its publishes time out. A slow write on a busy machine (seconds, seen in
		// CI) must not pass for that: the timeout is well above one.
		seq, err := publish(acked, 10*time.Second)
		if err != nil {
			failed = err
			break
		}
		acked = seq
	}
	if failed == nil {
		t.Fatal("100 entries of 512 KiB never filled the disk")
	}
	t.Logf("publish %d failed on the full disk: %v", acked+1, failed)
	// The stream stays stopped while the disk is full.
	if _, err := publish(acked, time.Second); err == nil {
		t.Fatal("a publish succeeded on the full disk")
	}
	if e.Restarts() != 0 {
		t.Fatalf("restarted %d times while the disk is full", e.Restarts())
	}
	waitFor(t, 5*time.Second, "the store failure reported", func() bool { return e.StoreFailure() != nil })
	if err := e.StoreFailure(); !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("StoreFailure = %v, want the disk's error", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitFor(t, 60*time.Second, "a publish after space returned", func() bool {
		info, err := c.Info(ctx)
		if err != nil {
			t.Logf("info: %v", err)
			return false
		}
		_, err = publish(info.LastSeq, 2*time.Second)
		t.Logf("publish after %d: %v", info.LastSeq, err)
		return err == nil
	})
	t.Logf("the log took writes again %s after space returned (%d restart)", time.Since(back), e.Restarts())
	if e.Restarts() != 1 || e.StoreFailure() != nil {
		t.Fatalf("restarts = %d, store failure %v; want 1 restart and no failure", e.Restarts(), e.StoreFailure())
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.FirstSeq != 1 || info.LastSeq < acked+1 {
		t.Fatalf("log after recovery %+v, want entries 1..%d and more", info, acked+1)
	}
	for seq := uint64(1); seq <= acked; seq++ {
		if m, err := c.Entry(ctx, seq); err != nil || len(m.Data) != len(payload) {
			t.Fatalf("acknowledged entry %d: %v (%d bytes)", seq, err, len(m.Data))
		}
	}
}
