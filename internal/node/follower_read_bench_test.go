package node_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/testutil/httpload"
)

// BenchmarkFollower_Get measures a ready follower's read throughput through the HTTP API: GETs (eventual
// consistency, the default) of 10,000 existing keys with 128-byte values, from 64 keep-alive connections with one
// request in flight each, on an in-process follower of an in-process leader (embedded NATS): 100,000 per round. In
// the same round, in 4 chunks whose order alternates:
//   - the same handler and server stack as the follower's (api.NewHandler with the follower as Node and Redirector,
//     api.Listen) whose views hold one value in memory instead of reading the store (noopReadNode): the no-op GET,
//     the HTTP layer alone. x_vs_noop = follower / no-op, goal >= 0.8;
//   - 20,000 strong GETs (consistency=strong) on the follower, each of which asks NATS for the log's last sequence:
//     x_strong_vs_noop, no goal.
//
// Run it with
//
//	go test -run '^$' -bench Follower_Get -benchtime 3x ./internal/node
func BenchmarkFollower_Get(b *testing.B) {
	const (
		clients   = 64
		keys      = 10_000
		valueSize = 128
		perRound  = 100_000 // eventual reads per side and round
		strongN   = 20_000  // strong reads per round
		chunks    = 4       // alternations per round
		warmup    = 5_000
	)
	l := startBenchLeader(b)
	ctx := b.Context()
	value := benchValue(valueSize)
	ld, err := newPutLoad(ctx, l.HTTPAddr(), clients, value)
	if err != nil {
		b.Fatal(err)
	}
	_, err = ld.run(ctx, "k", keys)
	ld.close()
	if err != nil {
		b.Fatal(err)
	}
	f := startBenchFollower(b, l.NATSURL(), "bench-reader", true)
	b.Cleanup(func() {
		if err := f.Close(); err != nil {
			b.Errorf("close follower: %v", err)
		}
	})
	waitState(b, f.Status, api.StateReady, 60*time.Second)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = f.WaitApplied(wctx, l.Applied())
	cancel()
	if err != nil {
		b.Fatalf("follower did not apply the leader's %d entries: %v", l.Applied(), err)
	}
	noopAddr := serveNoop(b, api.Config{Node: noopReadNode{Node: f, value: value}, Redirector: f,
		Metrics: metrics.New(api.RoleFollower), Logger: zap.NewNop()})

	// The paths of the reads, built once: read i asks for key (i * 7919) mod keys, so that consecutive reads hit keys
	// far apart.
	paths := func(query string) []string {
		ps := make([]string, keys)
		for i := range ps {
			ps[i] = "/v1/kv/k" + strconv.Itoa(i*7919%keys) + query
		}
		return ps
	}
	eventual, strong := paths(""), paths("?consistency=strong")
	// read dials its connections first (a pool left idle while the other sides run could outlast the server's idle
	// timeout on a slow machine); the time counts from the first request.
	read := func(addr string, ps []string, n int) (time.Duration, error) {
		p, err := httpload.DialPool(ctx, addr, clients)
		if err != nil {
			return 0, err
		}
		defer p.Close()
		return p.Run(ctx, n, func(c *httpload.PutConn, _, i int) error {
			got, err := c.Get(ps[i%len(ps)])
			if err == nil && got != valueSize {
				err = fmt.Errorf("bench: GET %s: %d bytes, want %d", ps[i%len(ps)], got, valueSize)
			}
			return err
		})
	}
	for _, w := range []struct {
		addr string
		ps   []string
	}{{f.HTTPAddr(), eventual}, {noopAddr, eventual}, {f.HTTPAddr(), strong}} {
		if _, err := read(w.addr, w.ps, warmup); err != nil {
			b.Fatal(err)
		}
	}

	// Each round runs the sides in chunks, in an order that alternates from chunk to chunk, so that a neighbour's
	// load on the machine falls on every side alike.
	var tFollower, tNoop, tStrong time.Duration
	rounds, chunk := 0, 0
	for b.Loop() {
		for range chunks {
			sides := []func() error{
				func() error { d, err := read(noopAddr, eventual, perRound/chunks); tNoop += d; return err },
				func() error { d, err := read(f.HTTPAddr(), eventual, perRound/chunks); tFollower += d; return err },
				func() error { d, err := read(f.HTTPAddr(), strong, strongN/chunks); tStrong += d; return err },
			}
			runSides(b, chunk, sides)
			chunk++
		}
		rounds++
	}
	n := float64(rounds * perRound)
	follower, noop := n/tFollower.Seconds(), n/tNoop.Seconds()
	strongRate := float64(rounds*strongN) / tStrong.Seconds()
	b.ReportMetric(follower, "follower_reads/s")
	b.ReportMetric(noop, "noop_reads/s")
	b.ReportMetric(strongRate, "strong_reads/s")
	b.ReportMetric(follower/noop, "x_vs_noop")
	b.ReportMetric(strongRate/noop, "x_strong_vs_noop")
}

// noopReadNode is a node as the API's Node (the follower, for status and the Replikv-Seq of answers) whose views
// answer every key with one value held in memory instead of reading the store: the no-op GET baseline, what
// api.NoopWriter is to writes.
type noopReadNode struct {
	api.Node
	value []byte
}

// View implements api.Node.
func (n noopReadNode) View(context.Context) (api.View, error) {
	return noopView{seq: n.Applied(), value: n.value}, nil
}

// noopView is noopReadNode's view: every key holds value at version seq, lists are empty.
type noopView struct {
	seq   uint64
	value []byte
}

func (v noopView) Seq() uint64                                { return v.seq }
func (v noopView) Get([]byte) ([]byte, uint64, error)         { return v.value, v.seq, nil }
func (v noopView) Digest() (keys uint64, d string, err error) { return 0, "", nil }
func (v noopView) Close() error                               { return nil }
func (v noopView) List([]byte, []byte, int, bool) ([]api.Item, []byte, error) {
	return nil, nil, nil
}
