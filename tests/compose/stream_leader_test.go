//go:build compose

package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// envStreamLeaderKills is the variable that sets how many times
// stepKillStreamLeader kills the log stream's leader.
const envStreamLeaderKills = "REPLIKV_COMPOSE_STREAM_LEADER_KILLS"

// defaultStreamLeaderKills is the number of kills without envStreamLeaderKills:
// few, because make test-compose runs the suite twice.
const defaultStreamLeaderKills = 3

// maxWriteGap is the longest a kill of the stream's leader may stop the
// writes: JetStream elects a new one in about 6 s, the leader must go on as
// soon as it can. NATS draws each election timeout between 4 and 9 s, so an
// election can take longer: then the bound is the election time (as the
// monitor saw it) plus electionSlack.
const (
	maxWriteGap   = 10 * time.Second
	electionSlack = 2 * time.Second
)

// streamName is the leader's default stream, which docker-compose.yml keeps.
const streamName = "REPLIKV"

// natsServices are the NATS nodes of docker-compose.yml; each one's
// server_name is its service name.
var natsServices = []string{"nats1", "nats2", "nats3"}

// streamLeaderKills reads envStreamLeaderKills.
func streamLeaderKills() (int, error) {
	v := os.Getenv(envStreamLeaderKills)
	if v == "" {
		return defaultStreamLeaderKills, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a count, 0 or more", envStreamLeaderKills, v)
	}
	return n, nil
}

// stepKillStreamLeader kills the NATS node that leads the log stream, kills
// times under load, and measures from the client side the longest pause
// between two acknowledged writes from 1 s before each kill until writes go
// on under a new stream leader: it must stay within maxWriteGap (or the
// election time plus electionSlack, when the election took longer). After each
// kill the node starts again and the stream must be healthy (a leader, every
// replica current) before the next. At the end nothing acknowledged may be
// lost and the followers must converge.
func stepKillStreamLeader(t *testing.T, sc *scenario, kills int) {
	if kills == 0 {
		t.Skipf("%s=0", envStreamLeaderKills)
	}
	mon := sc.startNATSMonitor(t)
	gaps := make([]time.Duration, 0, kills)
	for i := range kills {
		var victim string
		poll(t, 3*time.Minute, "log stream healthy", func(ctx context.Context) error {
			var err error
			victim, err = mon.healthy(ctx)
			return err
		})
		sc.waitAcks(t, 200, time.Minute)
		id := sc.containers(t, victim, 1)[0]
		killed := time.Now()
		sc.dockerCmd(t, "kill", id)
		var successor string
		poll(t, 2*time.Minute, "a new stream leader", func(ctx context.Context) error {
			var err error
			successor, err = mon.leader(ctx)
			return err
		})
		elected := time.Since(killed)
		// Acknowledged writes under the new stream leader end the window.
		sc.waitAcks(t, 200, 2*time.Minute)
		gap, end := sc.led.maxAckGap(killed.Add(-time.Second), time.Now())
		gaps = append(gaps, gap)
		t.Logf("kill %d of %d: %s led the stream; %s leads %v after the kill; longest pause between acknowledged writes %v, ended %v after the kill",
			i+1, kills, victim, successor, elected.Round(100*time.Millisecond), gap.Round(10*time.Millisecond),
			end.Sub(killed).Round(10*time.Millisecond))
		if bound := max(maxWriteGap, elected+electionSlack); gap > bound {
			t.Errorf("kill %d of %d (%s): no write acknowledged for %v, want at most %v (the election took %v)",
				i+1, kills, victim, gap.Round(10*time.Millisecond), bound, elected.Round(100*time.Millisecond))
		}

		started := time.Now()
		sc.dockerCmd(t, "start", id)
		poll(t, 3*time.Minute, "log stream healthy after "+victim+" restarted", func(ctx context.Context) error {
			_, err := mon.healthy(ctx)
			return err
		})
		gap, _ = sc.led.maxAckGap(started, time.Now())
		t.Logf("%s restarted; stream healthy after %v; longest pause meanwhile %v", victim,
			time.Since(started).Round(100*time.Millisecond), gap.Round(10*time.Millisecond))
	}
	t.Logf("longest pause per stream leader kill: %v (at most %v)", gaps, maxWriteGap)
	sc.settle(t)
}

// natsMonitor reads the NATS servers' monitoring endpoints through a natsmon
// container (tests/compose/natsmon): the servers publish no port, and their
// backend network is internal.
type natsMonitor struct {
	c    *client
	base string // natsmon's URL; /<server>/<path> reaches the server
}

// startNATSMonitor starts a natsmon container on both networks of the stack,
// publishing its port on 127.0.0.1. It is removed when the test ends; it
// carries the project's labels so that compose down --remove-orphans
// removes it too, should the test be killed first.
func (sc *scenario) startNATSMonitor(t *testing.T) *natsMonitor {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sc.docker)
	defer cancel()
	frontend, err := sc.s.network(ctx, "frontend")
	if err != nil {
		t.Fatal(err)
	}
	backend, err := sc.s.network(ctx, "backend")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"create", "--label", "com.docker.compose.project=" + sc.s.project,
		"--label", "com.docker.compose.oneoff=False", "--network", frontend, "--publish", "127.0.0.1::8222",
		monitorImage, "-listen", ":8222", "-port", "8222"}
	id := sc.dockerCmd(t, append(args, natsServices...)...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sc.docker)
		defer cancel()
		if _, err := sc.s.docker(ctx, "rm", "--force", id); err != nil {
			t.Errorf("remove the NATS monitor: %v", err)
		}
	})
	sc.dockerCmd(t, "network", "connect", backend, id)
	sc.dockerCmd(t, "start", id)
	base, err := sc.s.baseURL(ctx, id, 8222)
	if err != nil {
		t.Fatal(err)
	}
	return &natsMonitor{c: sc.c, base: base}
}

// peer is a stream replica as the stream's leader sees it.
type peer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// streamView is what one NATS server knows of the log stream.
type streamView struct {
	Leader   string `json:"leader"`
	Replicas []peer `json:"replicas"` // the other replicas; complete on the leader only
}

// stream asks one server (a service name) for its view of the log stream.
func (m *natsMonitor) stream(ctx context.Context, server string) (streamView, error) {
	var jsz struct {
		AccountDetails []struct {
			Streams []struct {
				Name    string      `json:"name"`
				Cluster *streamView `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := m.c.getJSON(ctx, m.base+"/"+server+"/jsz?accounts=true&streams=true", &jsz); err != nil {
		return streamView{}, fmt.Errorf("%s: %w", server, err)
	}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			if s.Name == streamName && s.Cluster != nil {
				return *s.Cluster, nil
			}
		}
	}
	return streamView{}, fmt.Errorf("%s: no replica of stream %s", server, streamName)
}

// leader returns the server that leads the log stream by its own account;
// the servers that cannot answer (one is killed) are skipped.
func (m *natsMonitor) leader(ctx context.Context) (string, error) {
	var leaders []string
	var errs []error
	for _, server := range natsServices {
		v, err := m.stream(ctx, server)
		switch {
		case err != nil:
			errs = append(errs, err)
		case v.Leader == server:
			leaders = append(leaders, server)
		}
	}
	switch len(leaders) {
	case 1:
		return leaders[0], nil
	case 0:
		return "", fmt.Errorf("no server leads stream %s: %w", streamName, errors.Join(errs...))
	default:
		return "", fmt.Errorf("servers %v all lead stream %s", leaders, streamName)
	}
}

// healthy returns the stream's leader if every other replica is current.
func (m *natsMonitor) healthy(ctx context.Context) (string, error) {
	leader, err := m.leader(ctx)
	if err != nil {
		return "", err
	}
	v, err := m.stream(ctx, leader)
	if err != nil {
		return "", err
	}
	if len(v.Replicas) != len(natsServices)-1 {
		return "", fmt.Errorf("stream %s leader %s sees replicas %+v, want %d", streamName, leader, v.Replicas,
			len(natsServices)-1)
	}
	for _, p := range v.Replicas {
		if !p.Current || p.Offline {
			return "", fmt.Errorf("stream %s leader %s: replica %+v is not current", streamName, leader, p)
		}
	}
	return leader, nil
}
