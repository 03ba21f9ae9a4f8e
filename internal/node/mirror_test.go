package node

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/journal/journaltest"
	"github.com/replikv/replikv/internal/testutil/natscluster"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	msgMirrorCatchUp  = "catching up from the log's mirror"
	msgMirrorDone     = "caught up from the mirror; following the log"
	msgMirrorFallback = "catching up from the log instead of its mirror"
	msgDiverged       = "the store may hold entries the log does not; re-bootstrapping from a snapshot"
)

// observedLogger logs to the test's logger and records every entry at info and above.
func observedLogger(t *testing.T) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return zap.New(zapcore.NewTee(testLogger(t).Core(), core)), logs
}

// putMany writes n keys prefix/<i> from 8 writers.
func putMany(t *testing.T, lurl, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				put(t, lurl, fmt.Sprintf("%s/%04d", prefix, i), "v")
			}
		}()
	}
	wg.Wait()
}

// startMirrorLeader starts a leader with --catchup-mirror holding n entries (keys pre/<i>), and returns it, its URL
// and its snapshot directory.
func startMirrorLeader(t *testing.T, n int) (*Leader, string, string) {
	t.Helper()
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--catchup-mirror")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	putMany(t, lurl, "pre", n)
	return l, lurl, snapDir
}

func TestFollower_CatchesUpFromMirror(t *testing.T) {
	l, lurl, snapDir := startMirrorLeader(t, 600)
	followViaMirror(t, lurl, snapDir, l.NATSURL())
}

// followViaMirror starts a follower with empty storage on natsURL and checks that it catches up from the mirror
// once, without falling back, and then follows the log itself: live writes arrive and the digests converge.
func followViaMirror(t *testing.T, lurl, snapDir, natsURL string) {
	t.Helper()
	log, logs := observedLogger(t)
	f := startFollowerLog(t, log, t.TempDir(), snapDir, natsURL)
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 30*time.Second)
	eventually(t, 10*time.Second, func() string {
		if logs.FilterMessage(msgMirrorCatchUp).Len() != 1 || logs.FilterMessage(msgMirrorDone).Len() != 1 {
			return fmt.Sprintf("logged %q %d times and %q %d times, want once each", msgMirrorCatchUp,
				logs.FilterMessage(msgMirrorCatchUp).Len(), msgMirrorDone, logs.FilterMessage(msgMirrorDone).Len())
		}
		return ""
	})
	if n := logs.FilterMessage(msgMirrorFallback).Len(); n != 0 {
		t.Fatalf("fell back to the log %d times: %v", n, logs.FilterMessage(msgMirrorFallback).All())
	}
	putMany(t, lurl, "live", 200)
	digestsEqual(t, lurl, furl, 20*time.Second)
}

// A follower whose catch-up mirror disappears mid-way goes on from the log, and loses nothing.
func TestFollower_FallsBackWhenMirrorRemoved(t *testing.T) {
	// At 500 entries/s the catch-up takes about 2 s, long enough to remove the mirror during it.
	mirrorFallback(t, "500", 30*time.Second, func(l *Leader, _ string) {
		if err := connectJournal(t, l.NATSURL()).RemoveCatchUpMirror(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// mirrorFallback starts a leader with --catchup-mirror holding 1,200 entries and taking a trickle of writes, and a
// follower with empty storage that catches up from the mirror at rate entries/s, and runs disturb once the follower has
// started reading the mirror.
// It checks that the follower then goes on from the log, once and before it reached the mirror's end, becomes ready
// within readyWithin and converges, and returns the error the follower logged when it left the mirror.
func mirrorFallback(t *testing.T, rate string, readyWithin time.Duration, disturb func(l *Leader, lurl string)) string {
	t.Helper()
	l, lurl, snapDir := startMirrorLeader(t, 1200)
	// The catch-up is paced only while the log grows (an idle log lets it read as fast as it can and finish before
	// the disturbance): a busy leader's trickle of writes until then.
	stopTrickle := trickle(t, lurl, 20*time.Millisecond)
	log, logs := observedLogger(t)
	f := startFollowerLog(t, log, t.TempDir(), snapDir, l.NATSURL(), "--catchup-rate", rate, "--catchup-pacing", "fixed")
	furl := base(f.HTTPAddr())
	eventually(t, 10*time.Second, func() string {
		if logs.FilterMessage(msgMirrorCatchUp).Len() == 0 {
			return "the follower did not start catching up from the mirror"
		}
		return ""
	})
	disturb(l, lurl)
	stopTrickle()
	st := waitState(t, furl, stateReady, readyWithin)
	if logs.FilterMessage(msgMirrorDone).Len() != 0 {
		t.Fatalf("the follower finished its catch-up from the mirror before it was disturbed (applied %d)", st.AppliedSeq)
	}
	fallbacks := logs.FilterMessage(msgMirrorFallback).All()
	if len(fallbacks) != 1 {
		t.Fatalf("logged %q %d times, want once", msgMirrorFallback, len(fallbacks))
	}
	digestsEqual(t, lurl, furl, 20*time.Second)
	return fmt.Sprint(fallbacks[0].ContextMap()["error"])
}

// A follower whose catch-up mirror is promoted and then takes entries of its own (valid ones, which the log does not
// hold) while the follower reads it re-bootstraps instead of going on from the log with them, and converges.
func TestFollower_RebootstrapsWhenMirrorDiverges(t *testing.T) {
	l, lurl, snapDir := startMirrorLeader(t, 1200)
	log, logs := observedLogger(t)
	f := startFollowerLog(t, log, t.TempDir(), snapDir, l.NATSURL(), "--catchup-rate", "200", "--catchup-pacing", "fixed")
	furl := base(f.HTTPAddr())
	eventually(t, 10*time.Second, func() string {
		if logs.FilterMessage(msgMirrorCatchUp).Len() == 0 {
			return "the follower did not start catching up from the mirror"
		}
		return ""
	})
	journaltest.StopCatchUpMirror(t, l.NATSURL(), "REPLIKV")
	var foreign [][]byte
	for i := range 5 {
		foreign = append(foreign, apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut,
			Key: []byte(fmt.Sprintf("impostor/%d", i)), Value: []byte("not in the log")}))
	}
	journaltest.WriteToCatchUpMirror(t, l.NATSURL(), "REPLIKV", foreign...)
	putMany(t, lurl, "after", 300)
	waitState(t, furl, stateReady, 60*time.Second)
	digestsEqual(t, lurl, furl, 30*time.Second)
	if logs.FilterMessage(msgDiverged).Len() == 0 {
		t.Fatalf("the follower did not log %q", msgDiverged)
	}
}

// A leader started without --catchup-mirror removes the mirror an earlier run kept.
func TestLeader_RemovesCatchUpMirrorWithoutFlag(t *testing.T) {
	dataDir, snapDir := t.TempDir(), t.TempDir()
	l := startLeader(t, dataDir, snapDir, "--catchup-mirror")
	waitState(t, base(l.HTTPAddr()), stateReady, 20*time.Second)
	if _, err := connectJournal(t, l.NATSURL()).CatchUpMirrorInfo(t.Context()); err != nil {
		t.Fatalf("the leader with --catchup-mirror has no mirror: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = startLeader(t, dataDir, snapDir)
	waitState(t, base(l.HTTPAddr()), stateReady, 20*time.Second)
	if _, err := connectJournal(t, l.NATSURL()).CatchUpMirrorInfo(t.Context()); !errors.Is(err, journal.ErrNoStream) {
		t.Fatalf("mirror after a restart without --catchup-mirror: %v, want ErrNoStream", err)
	}
}

// Only the lease holder manages the mirror: a standby leader started without --catchup-mirror leaves it alone.
func TestLeader_StandbyKeepsCatchUpMirror(t *testing.T) {
	snapDir := t.TempDir()
	l1 := startLeader(t, t.TempDir(), snapDir, "--catchup-mirror")
	waitState(t, base(l1.HTTPAddr()), stateReady, 20*time.Second)
	l2 := startLeader(t, t.TempDir(), snapDir, "--nats-url", l1.NATSURL())
	waitRole(t, base(l2.HTTPAddr()), api.RoleFollower, 20*time.Second)
	if _, err := connectJournal(t, l1.NATSURL()).CatchUpMirrorInfo(t.Context()); err != nil {
		t.Fatalf("the leader's mirror after a standby started without the flag: %v", err)
	}
}

// A stream with the mirror's name that is not a mirror of the log stops a leader with --catchup-mirror with a clear
// error instead of being used (or deleted).
func TestLeader_CatchUpMirrorNameTaken(t *testing.T) {
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	// Another replikv log named like the mirror: a plain stream, not a mirror of REPLIKV.
	other, err := journal.Connect(t.Context(), journal.Config{URL: emb.ClientURL(), Stream: "REPLIKV_catchup",
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	if _, err := other.EnsureStream(t.Context()); err != nil {
		t.Fatal(err)
	}
	l := startLeader(t, t.TempDir(), t.TempDir(), "--nats-url", emb.ClientURL(), "--catchup-mirror")
	st := waitState(t, base(l.HTTPAddr()), stateFailed, 20*time.Second)
	mustContain(t, st.Error, "not a mirror of REPLIKV")
	if _, err := other.Info(t.Context()); err != nil {
		t.Fatalf("the other stream after the leader refused it: %v", err)
	}
}

// On a cluster, --stream-tags and --catchup-mirror-tags put the log and its mirror on different servers: a follower
// connected to the mirror's server catches up from the mirror there, then follows the log on the other server.
func TestFollower_CatchesUpFromPlacedMirror(t *testing.T) {
	urls := natscluster.Start(t, "log", "catchup")
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir, "--nats-url", urls[0], "--stream-tags", "log", "--catchup-mirror",
		"--catchup-mirror-tags", "catchup")
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 30*time.Second)
	putMany(t, lurl, "pre", 600)
	followViaMirror(t, lurl, snapDir, urls[1])
}

// Placement tags no server has keep the leader from creating its stream: it stays not ready and says why, and
// creates nothing elsewhere.
func TestLeader_UnsatisfiableStreamTags(t *testing.T) {
	urls := natscluster.Start(t, "log", "catchup")
	l := startLeader(t, t.TempDir(), t.TempDir(), "--nats-url", urls[0], "--stream-tags", "nowhere")
	eventually(t, 20*time.Second, func() string {
		var st statusBody
		getJSON(t, base(l.HTTPAddr())+"/v1/status", &st)
		if st.State == stateReady || !strings.Contains(st.Error, "no suitable peers for placement") {
			return fmt.Sprintf("status %q, error %q; want not ready with the placement error", st.State, st.Error)
		}
		return ""
	})
	if _, err := connectJournal(t, urls[0]).Info(t.Context()); !errors.Is(err, journal.ErrNoStream) {
		t.Fatalf("log stream after a refused placement: %v, want ErrNoStream", err)
	}
}

// Another log named like this log's mirror (here that of a second replikv on the same NATS, --stream
// REPLIKV_catchup) is not a mirror of it: a follower catches up from its own log and never applies the other log's
// entries.
func TestFollower_IgnoresStreamNamedLikeMirror(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	other := startLeader(t, t.TempDir(), t.TempDir(), "--nats-url", l.NATSURL(), "--stream", "REPLIKV_catchup")
	ourl := base(other.HTTPAddr())
	waitState(t, ourl, stateReady, 20*time.Second)
	putMany(t, ourl, "other", 300)
	putMany(t, lurl, "pre", 200)

	log, logs := observedLogger(t)
	f := startFollowerLog(t, log, t.TempDir(), snapDir, l.NATSURL())
	furl := base(f.HTTPAddr())
	waitState(t, furl, stateReady, 30*time.Second)
	digestsEqual(t, lurl, furl, 20*time.Second)
	if n := logs.FilterMessage(msgMirrorCatchUp).Len(); n != 0 {
		t.Fatalf("the follower caught up from the other log %d times", n)
	}
	fallbacks := logs.FilterMessage(msgMirrorFallback).All()
	if len(fallbacks) != 1 {
		t.Fatalf("logged %q %d times, want once", msgMirrorFallback, len(fallbacks))
	}
	mustContain(t, fmt.Sprint(fallbacks[0].ContextMap()["error"]), "REPLIKV_catchup is not a mirror of REPLIKV")
}

// A mirror that stops copying the log in the middle of a catch-up (cut off from the log, or stuck far behind it) is
// given up after a few quiet seconds: the follower goes on from the log, becomes ready and loses nothing.
func TestFollower_FallsBackWhenMirrorStops(t *testing.T) {
	// At 200 entries/s the catch-up from the mirror takes about 6 s: the mirror stops, and the log moves on, long
	// before the follower reaches the mirror's end.
	why := mirrorFallback(t, "200", 40*time.Second, func(l *Leader, lurl string) {
		journaltest.StopCatchUpMirror(t, l.NATSURL(), "REPLIKV")
		putMany(t, lurl, "after", 300)
	})
	mustContain(t, why, "no entry from it")
}
