package node_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/journal"
)

// The "core" benchmarks. Each one measures replikv and its ceiling or peer in the same run, alternating them, and
// reports the ratio: on a noisy 2-core machine only ratios mean something. Run them with
//
//	go test -run '^$' -bench . -benchtime 3x ./internal/node
//
// (one iteration is a full round of every side; scripts/bench.sh does this). The custom metrics are the result;
// ns/op is the time of one whole round.

// BenchmarkLeader_Ingest measures the leader's write rate through the HTTP API: 64 keep-alive clients, one
// request in flight each, PUTs of distinct keys with 128-byte values, against an in-process leader with its
// embedded NATS server. In the same round it measures
//   - the same handler and server stack (api.NewHandler + api.Listen, the leader as Node) answering a no-op PUT
//     (api.NoopWriter): x_vs_noop = leader / no-op, goal >= 0.8;
//   - raw JetStream async publishing of the same number of entries of the same size on a fresh stream of the same
//     configuration on the same server (journal.PublishCeiling): x_vs_jetstream = leader / JetStream.
func BenchmarkLeader_Ingest(b *testing.B) {
	const (
		clients   = 64
		valueSize = 128
		perRound  = 100_000
		warmup    = 5_000
	)
	l := startBenchLeader(b)
	noopAddr := startNoopServer(b, l)
	ctx := b.Context()
	value := benchValue(valueSize)
	leaderLoad, err := newPutLoad(ctx, l.HTTPAddr(), clients, value)
	if err != nil {
		b.Fatal(err)
	}
	defer leaderLoad.close()
	noopLoad, err := newPutLoad(ctx, noopAddr, clients, value)
	if err != nil {
		b.Fatal(err)
	}
	defer noopLoad.close()
	for _, ld := range []*putLoad{leaderLoad, noopLoad} {
		if _, err := ld.run(ctx, "warmup-", warmup); err != nil {
			b.Fatal(err)
		}
	}
	size := entrySize("ingest-0-"+strconv.Itoa(perRound/2), value)

	var tLeader, tNoop, tJS time.Duration
	rounds := 0
	for b.Loop() {
		prefix := fmt.Sprintf("ingest-%d-", rounds)
		sides := []func() error{
			func() error { d, err := noopLoad.run(ctx, prefix, perRound); tNoop += d; return err },
			func() error { d, err := leaderLoad.run(ctx, prefix, perRound); tLeader += d; return err },
			func() error {
				d, err := journal.PublishCeiling(ctx, l.NATSURL(), fmt.Sprintf("CEILING_%d", rounds), perRound, size)
				tJS += d
				return err
			},
		}
		runSides(b, rounds, sides)
		rounds++
	}
	if want := uint64(warmup + rounds*perRound); l.Applied() != want {
		b.Fatalf("leader applied seq %d, want %d (every write answered 200)", l.Applied(), want)
	}
	n := float64(rounds * perRound)
	b.ReportMetric(n/tLeader.Seconds(), "leader_writes/s")
	b.ReportMetric(n/tNoop.Seconds(), "noop_writes/s")
	b.ReportMetric(n/tJS.Seconds(), "jetstream_msgs/s")
	b.ReportMetric(tNoop.Seconds()/tLeader.Seconds(), "x_vs_noop")
	b.ReportMetric(tJS.Seconds()/tLeader.Seconds(), "x_vs_jetstream")
}

// BenchmarkFollower_Apply measures how fast a new follower replays a backlog of 500,000 real replikv entries (PUTs
// of distinct keys, 128-byte values) from seq 1 without a snapshot: from StartFollower to applied == last. In the
// same round a bare ordered consumer drains the same backlog (journal.ConsumeCeiling):
// x_vs_consumer = follower / consumer, goal >= 0.8.
func BenchmarkFollower_Apply(b *testing.B) {
	const entries = 500_000
	bl := newBacklog(b, entries, benchValue(128))
	ctx := b.Context()
	var tFollower, tConsumer time.Duration
	rounds := 0
	for b.Loop() {
		follower := func() error {
			d, err := replayOnce(b, bl, "bench-follower-"+strconv.Itoa(rounds), false)
			tFollower += d
			return err
		}
		consumer := func() error {
			d, err := journal.ConsumeCeiling(ctx, bl.url, benchStream, bl.n)
			tConsumer += d
			return err
		}
		sides := []func() error{follower, consumer}
		runSides(b, rounds, sides)
		rounds++
	}
	n := float64(rounds * entries)
	b.ReportMetric(n/tFollower.Seconds(), "follower_entries/s")
	b.ReportMetric(n/tConsumer.Seconds(), "consumer_entries/s")
	b.ReportMetric(tConsumer.Seconds()/tFollower.Seconds(), "x_vs_consumer")
}

// BenchmarkFollower_ApplyDefaultPacing measures catch-up at the default --catchup-rate from a log nobody writes to
// (the leader idle): the same 500,000-entry backlog as BenchmarkFollower_Apply, replayed by a follower at defaults
// and by an unpaced one (--catchup-rate 0), alternating. x_default_vs_unpaced = unpaced time / default time, goal
// >= 0.8: pacing yields to a busy leader and costs nothing when there is none.
func BenchmarkFollower_ApplyDefaultPacing(b *testing.B) {
	const entries = 500_000
	bl := newBacklog(b, entries, benchValue(128))
	var tDefault, tUnpaced time.Duration
	rounds := 0
	for b.Loop() {
		run := func(paced bool, total *time.Duration) func() error {
			return func() error {
				d, err := replayOnce(b, bl, fmt.Sprintf("bench-follower-%d-%v", rounds, paced), paced)
				*total += d
				return err
			}
		}
		sides := []func() error{run(true, &tDefault), run(false, &tUnpaced)}
		runSides(b, rounds, sides)
		rounds++
	}
	n := float64(rounds * entries)
	b.ReportMetric(n/tDefault.Seconds(), "default_entries/s")
	b.ReportMetric(n/tUnpaced.Seconds(), "unpaced_entries/s")
	b.ReportMetric(tUnpaced.Seconds()/tDefault.Seconds(), "x_default_vs_unpaced")
}

// replayOnce starts a follower on an empty data dir, waits until it has applied the whole backlog, checks that it
// holds every key, closes it, and returns the time from start to applied == last.
func replayOnce(b *testing.B, bl *backlog, id string, paced bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	f := startBenchFollower(b, bl.url, id, paced)
	defer func() { _ = f.Close() }()
	if err := f.WaitApplied(ctx, uint64(bl.n)); err != nil {
		return 0, fmt.Errorf("bench: follower %s did not apply the backlog: %w (status %+v)", id, err, f.Status())
	}
	elapsed := time.Since(start)
	view, err := f.View(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: follower view: %w", err)
	}
	keys, _, err := view.Digest()
	_ = view.Close()
	if err != nil {
		return 0, fmt.Errorf("bench: follower digest: %w", err)
	}
	if keys != uint64(bl.n) {
		return 0, fmt.Errorf("bench: follower holds %d keys, want %d", keys, bl.n)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("bench: close follower: %w", err)
	}
	return elapsed, nil
}

// runSides runs the sides of one benchmark round, in reverse order every other round so that drift (a warming cache, a
// growing store) does not favour one side; the first error fails the benchmark.
func runSides(b *testing.B, round int, sides []func() error) {
	b.Helper()
	if round%2 == 1 {
		slices.Reverse(sides)
	}
	for _, side := range sides {
		if err := side(); err != nil {
			b.Fatal(err)
		}
	}
}
