package journal

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/replikv/replikv/internal/testutil/testlog"
)

// The users of the authentication tests. The documented configuration (docs/deployment.md) uses the same names.
const (
	leaderUser       = "replikv-leader"
	followerUser     = "replikv-follower"
	leaderPassword   = "leader-Secret-1"
	followerPassword = "follower-Secret-2"
)

// authUsers are the embedded server's users for stream: the leader's and the followers'.
func authUsers(stream string) []User {
	return []User{
		{Name: leaderUser, Password: leaderPassword, Permissions: LeaderPermissions(stream)},
		{Name: followerUser, Password: followerPassword, Permissions: FollowerPermissions(stream)},
	}
}

func TestValidateNodeID(t *testing.T) {
	for id, ok := range map[string]bool{
		"f1":                        true,
		"host-1a2b3c4d":             true,
		"été/ü.日本":                  true,
		strings.Repeat("x", 256):    true,
		"":                          false,
		strings.Repeat("x", 257):    false,
		"two words":                 false,
		"tab\there":                 false,
		"new\nline":                 false,
		"nul\x00":                   false,
		"bell\a":                    false,
		"esc\x1b[31mred":            false,
		"nbsp\u00a0":                false,
		"bidi\u202e":                false,
		"bad utf-8 \xff":            false,
		"zero\u200bwidth":           false,
		"line\u2028separator":       false,
		"del\x7f":                   false,
		"ok-with_punct:@+=~!#$%^&*": true,
	} {
		err := ValidateNodeID(id)
		if ok && err != nil {
			t.Errorf("ValidateNodeID(%q) = %v, want nil", id, err)
		}
		if !ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("ValidateNodeID(%q) = %v, want ErrMalformed", id, err)
		}
	}
}

// Heartbeats whose id is malformed do not decode, so the leader drops them (and counts them, see
// Config.OnMalformedHeartbeat).
func TestDecodeHeartbeat_MalformedID(t *testing.T) {
	for _, id := range []string{`two words`, `tab\there`, `nul\u0000`, `esc\u001b[2J`, `bidi\u202e`, `del\u007f`} {
		b := []byte(`{"id":"` + id + `","state":"ready","applied":1}`)
		if h, err := DecodeHeartbeat(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeHeartbeat(%s) = %+v, %v; want ErrMalformed", b, h, err)
		}
	}
}

// SubscribeHeartbeats passes every heartbeat it drops to Config.OnMalformedHeartbeat, and the valid ones to fn.
func TestConn_SubscribeHeartbeats_CountsMalformed(t *testing.T) {
	e := startServer(t)
	var mu sync.Mutex
	var dropped []error
	leader, err := Connect(testCtx(t), Config{URL: e.ClientURL(), Stream: "HB", Logger: testlog.New(t),
		OnMalformedHeartbeat: func(err error) {
			mu.Lock()
			dropped = append(dropped, err)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(leader.Close)
	got := make(chan Heartbeat, 16)
	stop, err := leader.SubscribeHeartbeats(func(h Heartbeat) { got <- h })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if err := leader.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	follower := connect(t, e.ClientURL(), "HB")
	bad := []string{
		`{"id":"two words","state":"ready"}`,
		`{"id":"ctl\u0007","state":"ready"}`,
		`{"id":"` + strings.Repeat("x", 257) + `","state":"ready"}`,
		`{"id":"","state":"ready"}`,
		`garbage`,
	}
	for _, b := range bad {
		if err := follower.conn().Publish(heartbeatSubject("HB"), []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := follower.PublishHeartbeat(Heartbeat{ID: "f1", State: StateReady, Applied: 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h.ID != "f1" {
			t.Fatalf("heartbeat from %q, want f1", h.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the valid heartbeat did not arrive")
	}
	// The subscription delivers in order: every malformed one was handled before the valid one.
	mu.Lock()
	defer mu.Unlock()
	if len(dropped) != len(bad) {
		t.Fatalf("dropped %d heartbeats (%v), want %d", len(dropped), dropped, len(bad))
	}
	for _, err := range dropped {
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("dropped with %v, want ErrMalformed", err)
		}
	}
	if len(got) != 0 {
		t.Fatalf("a malformed heartbeat reached fn: %+v", <-got)
	}
}

func TestStartEmbedded_BadUsers(t *testing.T) {
	perms := FollowerPermissions("S")
	for name, users := range map[string][]User{
		"NoPassword":  {{Name: "u", Permissions: perms}},
		"NoName":      {{Password: "Secret-9", Permissions: perms}},
		"SpaceInName": {{Name: "a b", Password: "Secret-9", Permissions: perms}},
		"Twice":       {{Name: "u", Password: "Secret-9", Permissions: perms}, {Name: "u", Password: "Secret-9", Permissions: perms}},
		"NoPublish":   {{Name: "u", Password: "Secret-9", Permissions: Permissions{Subscribe: perms.Subscribe}}},
		"NoSubscribe": {{Name: "u", Password: "Secret-9", Permissions: Permissions{Publish: perms.Publish}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Users: users})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("StartEmbedded = %v, want ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "Secret-9") {
				t.Fatalf("error shows a password: %v", err)
			}
		})
	}
}

// With users, the embedded server refuses clients without credentials or with wrong ones, gives each role what it
// needs, and refuses a follower's credentials every write of the log, the lease and the streams.
func TestEmbedded_Auth(t *testing.T) {
	const stream = "AUTH"
	e, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Users: authUsers(stream),
		Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	// The leader connects in memory, and logs in as a TCP client does.
	checkAuth(t, e.ClientURL(), stream, e)

	// A restart in place (after a store failure) keeps the users.
	if err := e.restart(); err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(e.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Fatalf("without credentials after a restart: %v, want an authorization violation", err)
	}
	nc, err := nats.Connect(e.ClientURL(), nats.UserInfo(followerUser, followerPassword))
	if err != nil {
		t.Fatalf("follower after a restart: %v", err)
	}
	nc.Close()
}

// The nats-server configuration docs/deployment.md gives for an external NATS is the one LeaderPermissions and
// FollowerPermissions make, and a real nats-server process run with it gives each role what it needs and no more.
func TestNATSServer_DocumentedPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server")
	}
	b, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := documentedAuthorization(t, string(b))
	if got, want := confLines(doc), confLines(authorizationConf("REPLIKV")); !slices.Equal(got, want) {
		t.Fatalf("docs/deployment.md's authorization block is not what LeaderPermissions and FollowerPermissions "+
			"make; want:\n%s", authorizationConf("REPLIKV"))
	}
	p := startNATSProcConf(t, doc, "NATS_LEADER_PASSWORD="+leaderPassword, "NATS_FOLLOWER_PASSWORD="+followerPassword)
	checkAuth(t, "nats://"+p.addr(), "REPLIKV", nil)
}

// documentedAuthorization returns the ```conf block of doc that holds "authorization {".
func documentedAuthorization(t *testing.T, doc string) string {
	t.Helper()
	for _, block := range strings.Split(doc, "```conf\n")[1:] {
		block, _, ok := strings.Cut(block, "```")
		if ok && strings.Contains(block, "authorization {") {
			return block
		}
	}
	t.Fatal("docs/deployment.md has no ```conf block with an authorization { } section")
	return ""
}

// confLines are the lines of a configuration without indentation, blank lines and comment lines.
func confLines(conf string) []string {
	var out []string
	for line := range strings.Lines(conf) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// authorizationConf renders the nats-server authorization block of the two roles for stream, with the passwords
// taken from the server's environment ($NATS_LEADER_PASSWORD, $NATS_FOLLOWER_PASSWORD).
func authorizationConf(stream string) string {
	var b strings.Builder
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range []struct {
		name, password string
		perms          Permissions
	}{
		{leaderUser, "$NATS_LEADER_PASSWORD", LeaderPermissions(stream)},
		{followerUser, "$NATS_FOLLOWER_PASSWORD", FollowerPermissions(stream)},
	} {
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: %s\n      permissions: {\n", u.name, u.password)
		for _, l := range []struct {
			kind     string
			subjects []string
		}{{"publish", u.perms.Publish}, {"subscribe", u.perms.Subscribe}} {
			fmt.Fprintf(&b, "        %s: { allow: [\n", l.kind)
			for _, s := range l.subjects {
				fmt.Fprintf(&b, "          %q\n", s)
			}
			b.WriteString("        ] }\n")
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// observed returns a logger that logs to the test and records warnings and errors.
func observed(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	return zap.New(zapcore.NewTee(testlog.New(t).Core(), core)), logs
}

// checkAuth checks the authentication and permissions of the server at url, whose users are leaderUser and
// followerUser with the permissions of their roles for stream (a fresh one). inProcess, when not nil, is the server,
// which the leader then connects to in memory.
func checkAuth(t *testing.T, url, stream string, inProcess *Embedded) {
	t.Run("Refused", func(t *testing.T) {
		for name, opts := range map[string][]nats.Option{
			"NoCredentials":    nil,
			"WrongPassword":    {nats.UserInfo(followerUser, "wrong")},
			"OtherUsersSecret": {nats.UserInfo(followerUser, leaderPassword)},
			"UnknownUser":      {nats.UserInfo("nobody", followerPassword)},
		} {
			nc, err := nats.Connect(url, opts...)
			if err == nil {
				nc.Close()
				t.Fatalf("%s: connected", name)
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("%s: %v, want an authorization violation", name, err)
			}
		}
		// A Conn refused keeps trying, and its calls say why they fail.
		c, err := Connect(testCtx(t), Config{URL: url, Stream: stream, Logger: testlog.New(t), User: followerUser,
			Password: "wrong"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		ctx := testCtx(t)
		waitFor(t, 10*time.Second, "Info to say the credentials were refused", func() bool {
			_, err := c.Info(ctx)
			return errors.Is(err, ErrAuth) && errors.Is(err, ErrUnavailable)
		})
	})

	ctx := testCtx(t)
	llog, llogs := observed(t)
	flog, flogs := observed(t)
	lc, err := Connect(ctx, Config{URL: url, Stream: stream, Name: "leader", Logger: llog, InProcess: inProcess,
		User: leaderUser, Password: leaderPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.Close)
	fc, err := Connect(ctx, Config{URL: url, Stream: stream, Name: "follower", Logger: flog,
		User: followerUser, Password: followerPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fc.Close)
	waitFor(t, 10*time.Second, "both connected", func() bool { return lc.Connected() && fc.Connected() })

	// Everything the leader does.
	if _, err := lc.EnsureStream(ctx); err != nil {
		t.Fatalf("leader: EnsureStream: %v", err)
	}
	lease, err := lc.AcquireLease(ctx, LeaderInfo{ID: "leader-1", URL: "http://leader:8080"}, 10*time.Second)
	if err != nil {
		t.Fatalf("leader: AcquireLease: %v", err)
	}
	if err := lc.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatalf("leader: EnsureCatchUpMirror: %v", err)
	}
	heartbeats := make(chan Heartbeat, 16)
	stopHB, err := lc.SubscribeHeartbeats(func(h Heartbeat) { heartbeats <- h })
	if err != nil {
		t.Fatalf("leader: SubscribeHeartbeats: %v", err)
	}
	defer stopHB()
	if err := lc.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 10
	publishN(t, lc, 0, n)
	if m, err := lc.Entry(ctx, 3); err != nil || string(m.Data) != string(entry(3)) {
		t.Fatalf("leader: Entry(3) = %q, %v", m.Data, err)
	}
	readAll(t, lc, n)

	// Everything a follower does.
	if info, err := fc.Info(ctx); err != nil || info.LastSeq != n {
		t.Fatalf("follower: Info = %+v, %v; want last seq %d", info, err, n)
	}
	if m, err := fc.Entry(ctx, 5); err != nil || string(m.Data) != string(entry(5)) {
		t.Fatalf("follower: Entry(5) = %q, %v", m.Data, err)
	}
	readAll(t, fc, n)
	waitFor(t, 10*time.Second, "the mirror holds the log", func() bool {
		info, err := fc.CatchUpMirrorInfo(ctx)
		return err == nil && info.LastSeq == n
	})
	readAll(t, fc, n, FromCatchUpMirror())
	if info, err := fc.Leader(ctx); err != nil || info.ID != "leader-1" {
		t.Fatalf("follower: Leader = %+v, %v", info, err)
	}
	if err := fc.PublishHeartbeat(Heartbeat{ID: "f1", State: StateReady, Applied: n}); err != nil {
		t.Fatalf("follower: PublishHeartbeat: %v", err)
	}
	select {
	case h := <-heartbeats:
		if h.ID != "f1" || h.Applied != n {
			t.Fatalf("leader received %+v", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the leader received no heartbeat")
	}

	// The leader's pressure reports reach a follower.
	reports := make(chan Pressure, 16)
	stopPressure, err := fc.SubscribePressure(func(p Pressure) { reports <- p })
	if err != nil {
		t.Fatalf("follower: SubscribePressure: %v", err)
	}
	defer stopPressure()
	if err := fc.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	sent := Pressure{Epoch: lease.Epoch(), Writes: n, P99: 3 * time.Millisecond, Window: 250 * time.Millisecond,
		SentAt: time.Now()}
	if err := lc.PublishPressure(sent); err != nil {
		t.Fatalf("leader: PublishPressure: %v", err)
	}
	select {
	case p := <-reports:
		if !pressureEqual(p, sent) {
			t.Fatalf("follower received %+v, want %+v", p, sent)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower received no pressure report")
	}

	t.Run("FollowerCannotWrite", func(t *testing.T) { checkFollowerDenied(t, url, lc, stream, n) })

	// The leader compacts the log and its mirror, gives up the lease and removes the mirror.
	if purged, err := lc.Purge(ctx, 5); err != nil || purged != 4 {
		t.Fatalf("leader: Purge = %d, %v; want 4", purged, err)
	}
	if info, err := fc.CatchUpMirrorInfo(ctx); err != nil || info.FirstSeq != 5 {
		t.Fatalf("mirror after purge: %+v, %v; want first seq 5", info, err)
	}
	lease.Close(ctx)
	if _, err := fc.Leader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("follower: Leader after release = %v, want ErrNoLeader", err)
	}
	if err := lc.RemoveCatchUpMirror(ctx); err != nil {
		t.Fatalf("leader: RemoveCatchUpMirror: %v", err)
	}
	if _, err := fc.CatchUpMirrorInfo(ctx); !errors.Is(err, ErrNoStream) {
		t.Fatalf("mirror after removal: %v, want ErrNoStream", err)
	}

	// Neither role was refused anything it needs: a missing permission shows as a warning (an asynchronous
	// permissions violation) or an error in its log.
	for role, logs := range map[string]*observer.ObservedLogs{"leader": llogs, "follower": flogs} {
		for _, e := range logs.All() {
			t.Errorf("%s logged %s %q %v", role, e.Level, e.Message, e.ContextMap())
		}
	}
}

// readAll reads the n entries of the log (or of its mirror with opts) from the start, then stops the subscription,
// which deletes its consumer.
func readAll(t *testing.T, c *Conn, n uint64, opts ...SubscribeOption) {
	t.Helper()
	sub, err := c.Subscribe(testCtx(t), 1, 0, opts...)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	for seq := uint64(1); seq <= n; seq++ {
		if m := receive(t, sub, 5*time.Second); m.Seq != seq || string(m.Data) != string(entry(seq)) {
			t.Fatalf("read %d %q, want %d %q", m.Seq, m.Data, seq, entry(seq))
		}
	}
	sub.Stop()
}

// checkFollowerDenied checks that the follower's credentials can write nothing: not the log, not the lease, no
// stream, no consumer of another stream, no pressure report in the leader's name, and that they cannot listen to
// other followers' heartbeats. The log (whose leader connection is lc) holds n entries.
func checkFollowerDenied(t *testing.T, url string, lc *Conn, stream string, n uint64) {
	var mu sync.Mutex
	var violations []string
	nc, err := nats.Connect(url, nats.UserInfo(followerUser, followerPassword),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				violations = append(violations, err.Error())
				mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bucket := leaseBucket(stream)
	kv, mirror := kvStream(bucket), mirrorName(stream)
	denied := []struct{ subject, body string }{
		{logSubject(stream), "forged entry"},
		{pressureSubject(stream), `{"epoch":1,"writes":1000000,"p99_us":3600000000,"window_ms":1}`},
		{"$KV." + bucket + "." + leaseKey, `{"id":"rogue","url":"http://rogue"}`},
		{jsAPI + "STREAM.CREATE." + stream + "2", `{"name":"` + stream + `2","subjects":["x.>"]}`},
		{jsAPI + "STREAM.UPDATE." + stream, `{"name":"` + stream + `","subjects":["replikv.` + stream + `.>"]}`},
		{jsAPI + "STREAM.PURGE." + stream, `{}`},
		{jsAPI + "STREAM.DELETE." + stream, ``},
		{jsAPI + "STREAM.MSG.DELETE." + stream, `{"seq":1}`},
		{jsAPI + "STREAM.PURGE." + kv, `{}`},
		{jsAPI + "STREAM.DELETE." + kv, ``},
		{jsAPI + "STREAM.PURGE." + mirror, `{}`},
		{jsAPI + "STREAM.DELETE." + mirror, ``},
		{jsAPI + "STREAM.UPDATE." + mirror, `{"name":"` + mirror + `"}`},
		{jsAPI + "CONSUMER.CREATE." + kv + ".c", `{"stream_name":"` + kv + `","config":{"name":"c"}}`},
		{jsAPI + "INFO", ``},
	}
	reply := nc.NewRespInbox()
	for _, d := range denied {
		if err := nc.PublishRequest(d.subject, reply, []byte(d.body)); err != nil {
			t.Fatal(err)
		}
	}
	// Listening to the heartbeats would show other followers' ids and progress.
	if _, err := nc.Subscribe(heartbeatSubject(stream), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a permissions violation for each", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(violations) >= len(denied)+1
	})
	mu.Lock()
	all := strings.Join(violations, "\n")
	mu.Unlock()
	for _, d := range denied {
		if !strings.Contains(all, `Publish to "`+d.subject+`"`) {
			t.Errorf("no permissions violation for a publish to %s; violations:\n%s", d.subject, all)
		}
	}
	if !strings.Contains(all, `Subscription to "`+heartbeatSubject(stream)+`"`) {
		t.Errorf("no permissions violation for a subscription to the heartbeats; violations:\n%s", all)
	}

	// Nothing changed: the log, its mirror and the lease are the leader's.
	ctx := testCtx(t)
	if info, err := lc.Info(ctx); err != nil || info.LastSeq != n || info.Msgs != n {
		t.Fatalf("log after the follower's attempts: %+v, %v; want %d entries", info, err, n)
	}
	if info, err := lc.CatchUpMirrorInfo(ctx); err != nil || info.Msgs != n {
		t.Fatalf("mirror after the follower's attempts: %+v, %v; want %d entries", info, err, n)
	}
	if info, err := lc.Leader(ctx); err != nil || info.ID != "leader-1" {
		t.Fatalf("lease after the follower's attempts: %+v, %v", info, err)
	}
}
