package ctl

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
)

// onboarding returns a follower whose status walks through an onboarding, one step per poll, then stays ready.
func onboarding(t *testing.T) string {
	t.Helper()
	steps := []api.Status{
		{State: api.StateStarting},
		{State: api.StateRestoring, Progress: &api.Progress{BytesTotal: 4096}},
		{State: api.StateRestoring, Progress: &api.Progress{BytesDone: 1024, BytesTotal: 4096}},
		{State: api.StateRestoring, Progress: &api.Progress{BytesDone: 2048, BytesTotal: 4096}},
		{State: api.StateCatchingUp, AppliedSeq: 100, Lag: 900, Progress: &api.Progress{TargetSeq: 1000}},
		{State: api.StateCatchingUp, AppliedSeq: 600, Lag: 500, Progress: &api.Progress{TargetSeq: 1100}},
		{State: api.StateCatchingUp, AppliedSeq: 1100, Lag: 100, Progress: &api.Progress{TargetSeq: 1200}},
		{State: api.StateReady, AppliedSeq: 1200},
	}
	var mu sync.Mutex
	i := 0
	f := newMemNode(api.RoleFollower, "f1")
	f.statusFn = func() api.Status {
		mu.Lock()
		defer mu.Unlock()
		st := steps[min(i, len(steps)-1)]
		i++
		st.Role, st.ID = api.RoleFollower, "f1"
		return st
	}
	return serve(t, f, "").URL
}

func TestRun_Watch(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t.Run("Lines", func(t *testing.T) {
		r := runCLIWith(t, IO{Now: stepClock(start, time.Second)}, nil, "--url", onboarding(t), "watch",
			"--interval", "1ms")
		wantCode(t, r, ExitOK)
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(lines) != 8 {
			t.Fatalf("%d lines:\n%s", len(lines), r.out)
		}
		for i, want := range []string{
			"03:04:05 f1 starting",
			"f1 restoring snapshot 0 B / 4.0 KiB (0%)",
			"f1 restoring snapshot 1.0 KiB / 4.0 KiB (25%) 1.0 KiB/s ETA 3.0s",
			"f1 restoring snapshot 2.0 KiB / 4.0 KiB (50%) 1.0 KiB/s ETA 2.0s",
			"f1 catching_up seq 100 / 1000 (lag 900)",
			"f1 catching_up seq 600 / 1100 (lag 500) 500 entries/s ETA",
			"f1 catching_up seq 1100 / 1200 (lag 100) 500 entries/s ETA 0.2s",
			"f1 ready at seq 1200",
		} {
			mustContain(t, "line", lines[i], want)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		r := runCLIWith(t, IO{Now: stepClock(start, time.Second)}, nil, "--url", onboarding(t), "watch",
			"--interval", "1ms", "-o", "json")
		wantCode(t, r, ExitOK)
		var samples []Sample
		sc := bufio.NewScanner(strings.NewReader(r.out))
		for sc.Scan() {
			var s Sample
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Fatalf("%v: %s", err, sc.Text())
			}
			samples = append(samples, s)
		}
		if len(samples) != 8 || samples[7].State != stateReady || samples[2].Rate != 1024 ||
			samples[2].ETASeconds == nil || *samples[2].ETASeconds != 3 || samples[6].Rate != 500 {
			t.Fatalf("%+v", samples)
		}
	})
	t.Run("Bar", func(t *testing.T) {
		cio := IO{Now: stepClock(start, time.Second), IsTerminal: func(io.Writer) bool { return true }}
		r := runCLIWith(t, cio, nil, "--url", onboarding(t), "watch", "--interval", "1ms")
		wantCode(t, r, ExitOK)
		mustContain(t, "bar output", r.out, "\r", "50%", "|", "restoring", "catching_up", "ready at seq 1200")
	})
	t.Run("ByIDFromLeader", func(t *testing.T) {
		c := newTestCluster(t, 1, 3)
		r := runCLI(t, nil, "", "--url", c.lurl, "watch", "f1", "--interval", "1ms")
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, "f1 ready at seq 3")
	})
	t.Run("Unreachable", func(t *testing.T) {
		r := runCLI(t, nil, "", "--url", closedURL(t), "watch", "--interval", "5ms", "--give-up", "30ms")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stderr", r.err, "watch: no answer for")
	})
	t.Run("MaxWait", func(t *testing.T) {
		c := newTestCluster(t, 1, 3)
		c.followers[0].state = api.StateCatchingUp
		r := runCLI(t, nil, "", "--url", c.furls[0], "watch", "--interval", "5ms", "--max-wait", "50ms")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "not ready within --max-wait")
	})
}

func TestEstimator(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var e estimator
	obs := func(d time.Duration, s Sample) Sample {
		s.Time = t0.Add(d)
		e.observe(&s)
		return s
	}
	if s := obs(0, Sample{State: stateCatchingUp, AppliedSeq: 0, Lag: 1000}); s.Rate != 0 || s.ETASeconds != nil {
		t.Fatalf("first sample: %+v", s)
	}
	// 400 applied in 2 s while the log grew by 200: the lag shrinks by 100/s.
	s := obs(2*time.Second, Sample{State: stateCatchingUp, AppliedSeq: 400, Lag: 800})
	if s.Rate != 200 || s.ETASeconds == nil || *s.ETASeconds != 8 {
		t.Fatalf("%+v", s)
	}
	// A lag that grows has no ETA.
	if s := obs(4*time.Second, Sample{State: stateCatchingUp, AppliedSeq: 500, Lag: 1200}); s.ETASeconds != nil {
		t.Fatalf("growing lag: %+v", s)
	}
	// Samples older than the window are dropped; a new state starts over.
	if s := obs(5*time.Second, Sample{State: stateReady, AppliedSeq: 600}); s.Rate != 0 {
		t.Fatalf("new state: %+v", s)
	}
	e = estimator{}
	obs(0, Sample{State: stateRestoring, BytesDone: 0, BytesTotal: 100})
	obs(5*time.Second, Sample{State: stateRestoring, BytesDone: 10, BytesTotal: 100})
	s = obs(12*time.Second, Sample{State: stateRestoring, BytesDone: 38, BytesTotal: 100})
	if s.Rate != 4 || *s.ETASeconds != 15.5 { // (38-10)/7 s: the first sample is out of the window
		t.Fatalf("%+v", s)
	}
}
