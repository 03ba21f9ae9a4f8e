// Package journaltest injects faults into a replikv log on a JetStream server for tests of the packages above the
// journal, which do not touch JetStream themselves.
package journaltest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StopCatchUpMirror makes the catch-up mirror of stream (<stream>_catchup) stop copying the log while readers keep
// reading what it holds: the server turns the mirror into a plain stream (mirror promotion). It stands for a mirror
// cut off from its log, or stuck far behind it.
func StopCatchUpMirror(t testing.TB, url, stream string) {
	t.Helper()
	updateCatchUpMirror(t, url, stream, func(cfg *jetstream.StreamConfig) {
		if cfg.Mirror == nil || cfg.Mirror.Name != stream {
			t.Fatalf("journaltest: stream %s is not a mirror of %s", cfg.Name, stream)
		}
		cfg.Mirror = nil
	}, nil)
}

// WriteToCatchUpMirror publishes entries to the stream named like the catch-up mirror of stream after
// StopCatchUpMirror made it a plain stream: writes of its own, which the log does not hold. It gives the stream a
// subject of its own for that.
func WriteToCatchUpMirror(t testing.TB, url, stream string, entries ...[]byte) {
	t.Helper()
	subject := stream + "_catchup.impostor"
	updateCatchUpMirror(t, url, stream, func(cfg *jetstream.StreamConfig) {
		if cfg.Mirror != nil {
			t.Fatalf("journaltest: stream %s still mirrors %s", cfg.Name, cfg.Mirror.Name)
		}
		cfg.Subjects = []string{subject}
	}, func(ctx context.Context, js jetstream.JetStream) {
		for _, e := range entries {
			if _, err := js.Publish(ctx, subject, e); err != nil {
				t.Fatalf("journaltest: publish to %s: %v", subject, err)
			}
		}
	})
}

// DeleteLog deletes the log stream and, if there is one, its catch-up mirror: an operator who resets the log (a
// leader started afterwards creates an empty one, with a history of its own). The lease bucket is left alone.
func DeleteLog(t testing.TB, url, stream string) {
	t.Helper()
	withJetStream(t, url, func(ctx context.Context, js jetstream.JetStream) {
		for _, name := range []string{stream + "_catchup", stream} {
			if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Fatalf("journaltest: delete %s: %v", name, err)
			}
		}
	})
}

// updateCatchUpMirror changes the configuration of stream's catch-up mirror with change, then runs after (if not
// nil) on the same connection.
func updateCatchUpMirror(t testing.TB, url, stream string, change func(*jetstream.StreamConfig),
	after func(context.Context, jetstream.JetStream)) {
	t.Helper()
	withJetStream(t, url, func(ctx context.Context, js jetstream.JetStream) {
		name := stream + "_catchup"
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("journaltest: stream %s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		change(&cfg)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("journaltest: update %s: %v", name, err)
		}
		if after != nil {
			after(ctx, js)
		}
	})
}

// withJetStream runs fn on a JetStream connection to url, with a 10-second deadline.
func withJetStream(t testing.TB, url string, fn func(context.Context, jetstream.JetStream)) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("journaltest: connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("journaltest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fn(ctx, js)
}
