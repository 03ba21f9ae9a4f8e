package journaltest

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// PublishRawHeartbeats publishes each payload as it is on the heartbeat subject of stream (replikv.<stream>.heartbeat),
// as a broken or forged follower could, bypassing the journal's encoder. It logs in as user with password when user
// is not empty, and returns once the server has received every payload.
func PublishRawHeartbeats(t testing.TB, url, stream, user, password string, payloads ...[]byte) {
	t.Helper()
	var opts []nats.Option
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("journaltest: connect: %v", err)
	}
	defer nc.Close()
	for _, p := range payloads {
		if err := nc.Publish("replikv."+stream+".heartbeat", p); err != nil {
			t.Fatalf("journaltest: publish heartbeat: %v", err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("journaltest: flush: %v", err)
	}
}
