package node

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/replikv/replikv/internal/testutil/freeport"
)

// startNATSOn starts a JetStream server on 127.0.0.1:port with the given max_payload (0: the server's default).
func startNATSOn(t *testing.T, port int, maxPayload int32) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: t.TempDir(), MaxPayload: maxPayload, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
}

// The leader warns about a NATS server whose max_payload cannot carry the largest entries once it reaches the
// server, with the server's value, even when the server was down when the leader started; and never about a server
// it has not reached yet or one with the default limit.
func TestLeader_MaxPayloadWarning(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxPayload int32
		warn       bool
	}{
		{"Small", 64 << 10, true},
		{"Default", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freeport.Must(t)
			log, logs := observedLogger(t)
			l := startLeaderLog(t, log, t.TempDir(), t.TempDir(), "--nats-url", "nats://127.0.0.1:"+strconv.Itoa(port))
			lurl := base(l.HTTPAddr())
			// Down at start: the leader reports why it is not ready yet.
			eventually(t, 20*time.Second, func() string {
				var st statusBody
				getJSON(t, lurl+"/v1/status", &st)
				if st.State == stateStarting && st.Error != "" {
					return ""
				}
				return "state " + st.State + ", error " + strconv.Quote(st.Error)
			})
			startNATSOn(t, port, tc.maxPayload)
			waitState(t, lurl, stateReady, 30*time.Second)
			var warned []string
			for _, e := range logs.All() {
				if strings.Contains(e.Message, "max_payload") {
					warned = append(warned, e.Message+" "+strconv.FormatInt(e.ContextMap()["max_payload"].(int64), 10))
				}
			}
			switch {
			case tc.warn && (len(warned) != 1 || !strings.HasSuffix(warned[0], " "+strconv.Itoa(int(tc.maxPayload)))):
				t.Fatalf("want one max_payload warning with %d, got %q", tc.maxPayload, warned)
			case !tc.warn && len(warned) != 0:
				t.Fatalf("want no max_payload warning, got %q", warned)
			}
		})
	}
}
