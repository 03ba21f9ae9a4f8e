//go:build e2e

package tests

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestIdempotency_RetryAfterLostAnswerOnNewLeader runs a leader and a --failover auto follower on a NATS server of
// the test process. A client writes through a proxy that forwards requests to the leader and drops every answer:
// the write is committed (the follower serves it) but the client never hears so. The leader is SIGKILLed, the
// follower takes over, and the client retries with the same Idempotency-Key, through the new leader and through the
// old one restarted (which follows and redirects): both retries answer the first write's version, marked replayed,
// and the key keeps that version: the write was applied once. The same key with another value is refused with 422.
func TestIdempotency_RetryAfterLostAnswerOnNewLeader(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.useTestNATS()
	ttlFlag := "--lease-ttl=2s"
	leader := c.startLeader("--nats-url="+c.natsURL, ttlFlag)
	follower := c.startFollower("fa", "--failover=auto", ttlFlag)
	follower.api().waitReady(t)

	u, err := url.Parse(leader.URL())
	if err != nil {
		t.Fatal(err)
	}
	deaf := startDeafProxy(t, u.Host)
	lossy := &client{base: "http://" + deaf.addr(), hc: &http.Client{Timeout: 30 * time.Second}}
	const key, ikey = "idem/k", "order-7f3a"
	hdr := http.Header{"Idempotency-Key": {ikey}}
	lost := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := lossy.do(ctx, http.MethodPut, kvPath(key), []byte("v1"), hdr)
		if err == nil {
			t.Errorf("the deaf proxy let an answer through: %s", r)
			err = errors.New("answered")
		}
		lost <- err
	}()
	// The write is committed once the follower serves it.
	var version string
	eventually(t, 20*time.Second, func() (bool, string) {
		r := follower.api().call(t, http.MethodGet, kvPath(key), nil, nil)
		version = r.Header.Get("ETag")
		return r.Code == http.StatusOK && string(r.Body) == "v1", "follower: " + r.String()
	})
	leader.kill()
	<-lost // the proxy closed the client's connection when the leader's went away
	t.Logf("the write's answer was lost; the follower serves it at version %s", version)
	nodes := []*proc{leader, follower}
	if leaderOf(t, nodes) != 1 {
		t.Fatal("the follower does not lead after the leader was killed")
	}

	retry := func(via *client, value string) *response {
		t.Helper()
		var r *response
		eventually(t, 20*time.Second, func() (bool, string) {
			r = via.call(t, http.MethodPut, kvPath(key), []byte(value), hdr)
			return r.Code != http.StatusServiceUnavailable, "retry: " + r.String()
		})
		return r
	}
	follow := &http.Client{Timeout: 30 * time.Second} // follows a 307, re-sending the body and the header
	r := retry(&client{base: follower.URL(), hc: follow}, "v1")
	if r.Code != http.StatusOK || r.Header.Get("ETag") != version || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry on the new leader: %s, ETag %s, Idempotent-Replayed %q; want 200 at %s, replayed", r,
			r.Header.Get("ETag"), r.Header.Get("Idempotent-Replayed"), version)
	}

	leader.restart(false)
	leader.api().waitReady(t)
	r = retry(&client{base: leader.URL(), hc: follow}, "v1")
	if r.Code != http.StatusOK || r.Header.Get("ETag") != version || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry through the restarted old leader: %s, ETag %s; want 200 at %s, replayed", r,
			r.Header.Get("ETag"), version)
	}
	if r := retry(&client{base: follower.URL(), hc: follow}, "v2"); r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("the key with another value: %s, want 422", r)
	}
	for _, n := range nodes {
		got := n.api().must(t, http.MethodGet, kvPath(key)+"?consistency=strong", nil, nil, http.StatusOK)
		if string(got.Body) != "v1" || got.Header.Get("ETag") != version {
			t.Fatalf("%s: %s at %s; want v1 at %s, written once", n.name, got, got.Header.Get("ETag"), version)
		}
	}
	waitDigestEqual(t, follower.api(), leader.api())
}

// deafProxy forwards every connection to one upstream and drops every byte the upstream answers: requests arrive,
// answers never do. When the upstream closes a connection, the proxy closes the client's.
type deafProxy struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startDeafProxy(t *testing.T, upstream string) *deafProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &deafProxy{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			uc, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = cc.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, cc, uc)
			mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(uc, cc) }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(io.Discard, uc); _ = cc.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *deafProxy) addr() string { return p.ln.Addr().String() }
