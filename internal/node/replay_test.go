package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
	"github.com/replikv/replikv/internal/testutil/testlog"
)

// A replay whose consumer cannot be created (the request goes unanswered, as while a JetStream cluster elects the
// stream's leader) gives up within replayIdleTimeout, so that a resync retries at once instead of waiting out its
// whole timeout. The test withholds the permission to create consumers: the server then answers nothing.
func TestReplayLog_ConsumerCreateUnanswered(t *testing.T) {
	const stream = "REPLAY"
	perms := journal.FollowerPermissions(stream)
	var pub []string
	for _, s := range perms.Publish {
		if !strings.Contains(s, "CONSUMER.CREATE") {
			pub = append(pub, s)
		}
	}
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
		Users: []journal.User{
			{Name: "writer", Password: "writer-pw", Permissions: journal.LeaderPermissions(stream)},
			{Name: "reader", Password: "reader-pw", Permissions: journal.Permissions{Publish: pub, Subscribe: perms.Subscribe}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	connect := func(user, pw string) *journal.Conn {
		jc, err := journal.Connect(t.Context(), journal.Config{URL: emb.ClientURL(), Stream: stream, User: user,
			Password: pw, Logger: testlog.New(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(jc.Close)
		return jc
	}
	w := connect("writer", "writer-pw")
	if _, err := w.EnsureStream(t.Context()); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		ack, err := w.PublishAsync(t.Context(), apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("k"),
			Value: []byte("v")}), seq-1, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ack.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = replayLog(ctx, connect("reader", "reader-pw"), db, newSeqNotifier(0), 3)
	took := time.Since(start)
	if err == nil || !errors.Is(err, api.ErrUnavailable) && !errors.Is(err, journal.ErrUnavailable) {
		t.Fatalf("replayLog = %v, want an unavailable error", err)
	}
	if took > replayIdleTimeout+2*time.Second {
		t.Fatalf("replayLog gave up after %s, want about %s", took, replayIdleTimeout)
	}
	if db.Applied() != 0 {
		t.Fatalf("applied %d without a consumer", db.Applied())
	}
}
