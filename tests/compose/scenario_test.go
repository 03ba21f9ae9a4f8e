//go:build compose

package compose

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// scenario is the state one end-to-end run carries from step to step: the
// stack, the ledger of acknowledged writes and the running load.
type scenario struct {
	s      *stack
	c      *client // checks
	lc     *client // the write load
	led    *ledger
	ld     *load
	gen    int
	docker time.Duration // timeout of one docker command
	leader string        // the leader's URL once a follower took over; empty: the leader service's
}

// leaderURL is the URL of the node that leads: the leader service, or the follower that took over from it.
func (sc *scenario) leaderURL() string {
	if sc.leader != "" {
		return sc.leader
	}
	return sc.s.leaderURL()
}

func newScenario(s *stack) *scenario {
	return &scenario{
		s:      s,
		c:      newClient(30*time.Second, 4),
		lc:     newClient(10*time.Second, defaultLoad.writers),
		led:    newLedger(),
		docker: 3 * time.Minute,
	}
}

// startLoad starts a new write load (the previous one must be stopped).
func (sc *scenario) startLoad() {
	sc.gen++
	sc.ld = startLoad(sc.lc, sc.leaderURL(), sc.led, defaultLoad, sc.gen)
}

// stopLoad stops the running load, if any, and fails the test if a writer
// saw an answer no server may give.
func (sc *scenario) stopLoad(t *testing.T) {
	t.Helper()
	if sc.ld != nil {
		sc.ld.stop()
		sc.ld = nil
	}
	if err := sc.led.violations(); err != nil {
		t.Fatal(err)
	}
}

// close stops everything the scenario started (not the stack).
func (sc *scenario) close() {
	if sc.ld != nil {
		sc.ld.stop()
	}
	sc.c.close()
	sc.lc.close()
}

// dockerCmd runs a docker command and fails the test on error.
func (sc *scenario) dockerCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sc.docker)
	defer cancel()
	out, err := sc.s.docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// composeCmd runs a compose command and fails the test on error.
func (sc *scenario) composeCmd(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*sc.docker)
	defer cancel()
	if _, err := sc.s.compose(ctx, args...); err != nil {
		t.Fatal(err)
	}
}

// containers returns the service's container ids and fails the test when
// there are not want of them.
func (sc *scenario) containers(t *testing.T, service string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sc.docker)
	defer cancel()
	ids, err := sc.s.containers(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != want {
		t.Fatalf("service %s has %d containers, want %d", service, len(ids), want)
	}
	return ids
}

// followerURL resolves a follower container's base URL (its host port
// changes at every start).
func (sc *scenario) followerURL(ctx context.Context, id string) (string, error) {
	return sc.s.baseURL(ctx, id, 8081)
}

// followerStatus returns a follower's status object.
func (sc *scenario) followerStatus(t *testing.T, id string) status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	base, err := sc.followerURL(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sc.c.status(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitAcks waits until the load has acknowledged n more writes.
func (sc *scenario) waitAcks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	start, _ := sc.led.counts()
	poll(t, timeout, fmt.Sprintf("%d more acknowledged writes", n), func(context.Context) error {
		acked, failed := sc.led.counts()
		if acked-start < n {
			return fmt.Errorf("%d acknowledged (%d failed) since the wait began", acked-start, failed)
		}
		return nil
	})
}

// waitReady waits until the node at the URL that resolve returns answers
// /readyz with 200.
func (sc *scenario) waitReady(t *testing.T, what string, timeout time.Duration, resolve func(context.Context) (string, error)) {
	t.Helper()
	poll(t, timeout, what+" ready", func(ctx context.Context) error {
		base, err := resolve(ctx)
		if err != nil {
			return err
		}
		return sc.c.ready(ctx, base)
	})
}

func (sc *scenario) waitLeaderReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	sc.waitReady(t, "leader", timeout, func(context.Context) (string, error) { return sc.leaderURL(), nil })
}

func (sc *scenario) waitFollowerReady(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	sc.waitReady(t, "follower "+id, timeout, func(ctx context.Context) (string, error) {
		return sc.followerURL(ctx, id)
	})
}

// converge waits until every follower reports the leader's digest at the
// leader's sequence. Call it with the load stopped.
func (sc *scenario) converge(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), sc.docker)
	ids, err := sc.s.containers(ctx, "follower")
	urls := make(map[string]string)
	for _, id := range ids {
		if err == nil {
			urls[id], err = sc.followerURL(ctx, id)
		}
	}
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	poll(t, timeout, "followers converge on the leader's digest", func(ctx context.Context) error {
		want, err := sc.c.digest(ctx, sc.leaderURL())
		if err != nil {
			return fmt.Errorf("leader digest: %w", err)
		}
		for id, u := range urls {
			got, err := sc.c.digest(ctx, u)
			switch {
			case err != nil:
				return fmt.Errorf("follower %s digest: %w", id, err)
			case got.Seq == want.Seq && got != want:
				return permanent(fmt.Errorf("follower %s digest %+v, leader %+v", id, got, want))
			case got != want:
				return fmt.Errorf("follower %s at seq %d, leader at %d", id, got.Seq, want.Seq)
			}
		}
		return nil
	})
}

// verifyLeader checks every acknowledged write on the leader and returns the
// sequence the leader's listing was taken at. Call it with the load stopped.
func (sc *scenario) verifyLeader(t *testing.T) uint64 {
	t.Helper()
	// A leader answers reads only while its lease is renewed: after a NATS node was killed, the lease bucket's own
	// stream may still be electing a leader (seconds after the log's stream is healthy), and reads answer 503 or 504
	// meanwhile. Ask again until they are answered.
	var d digest
	var items map[string]item
	poll(t, time.Minute, "the leader's digest and keys", func(ctx context.Context) error {
		var err error
		if d, err = sc.c.digest(ctx, sc.leaderURL()); err != nil {
			return err
		}
		items, err = sc.c.list(ctx, sc.leaderURL(), loadPrefix, nil)
		return err
	})
	if err := sc.led.verify(items); err != nil {
		t.Fatalf("leader: %v", err)
	}
	return d.Seq
}

// verifyFollower checks every acknowledged write on a follower, reading at
// sequence minSeq or later.
func (sc *scenario) verifyFollower(t *testing.T, id string, minSeq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	base, err := sc.followerURL(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"min_seq": {strconv.FormatUint(minSeq, 10)}, "timeout": {"60s"}}
	items, err := sc.c.list(ctx, base, loadPrefix, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.led.verify(items); err != nil {
		t.Fatalf("follower %s: %v", id, err)
	}
}

// settle stops the load, checks every acknowledged write on the leader and
// on the first follower, waits for all followers to converge, and starts a
// new load.
func (sc *scenario) settle(t *testing.T) {
	t.Helper()
	sc.stopLoad(t)
	seq := sc.verifyLeader(t)
	ids := sc.containers(t, "follower", 3)
	sc.verifyFollower(t, ids[0], seq)
	sc.converge(t, 3*time.Minute)
	sc.startLoad()
}

// newWriteReachesFollowers writes a marker through the leader and waits
// until every follower serves it.
func (sc *scenario) newWriteReachesFollowers(t *testing.T, key string) {
	t.Helper()
	value := []byte(key + "@" + time.Now().Format(time.RFC3339Nano))
	var version uint64
	poll(t, time.Minute, "marker write on the leader", func(ctx context.Context) error {
		var err error
		version, err = sc.c.put(ctx, sc.leaderURL(), key, value)
		return err
	})
	for _, id := range sc.containers(t, "follower", 3) {
		poll(t, 2*time.Minute, "marker on follower "+id, func(ctx context.Context) error {
			base, err := sc.followerURL(ctx, id)
			if err != nil {
				return err
			}
			q := url.Values{"min_seq": {strconv.FormatUint(version, 10)}, "timeout": {"5s"}}
			got, v, err := sc.c.get(ctx, base, key, q)
			if err != nil {
				return err
			}
			if string(got) != string(value) || v != version {
				return permanent(fmt.Errorf("got v%d %q, want v%d %q", v, got, version, value))
			}
			return nil
		})
	}
}

// expectStatus fails the test unless err is an API error with the status
// and code.
func expectStatus(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var apiErr *apiError
	if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("%s: got %v, want http %d %s", what, err, status, code)
	}
}
