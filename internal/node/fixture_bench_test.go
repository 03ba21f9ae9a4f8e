package node_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/metrics"
	"github.com/replikv/replikv/internal/node"
)

// benchStream is the stream name the benchmarks' nodes use.
const benchStream = "REPLIKV"

// noEnv isolates the benchmarks' configurations from the REPLIKV_* and AWS_* environment.
func noEnv(string) string { return "" }

// startBenchLeader starts an in-process leader with an embedded NATS server (file storage in a temporary
// directory, default sync interval), a local snapshot directory and no scheduled snapshots, and waits until it is
// ready. Cleanup closes it.
func startBenchLeader(b *testing.B) *node.Leader {
	b.Helper()
	dir := b.TempDir()
	cfg, err := config.ParseLeader([]string{
		"--data-dir", filepath.Join(dir, "leader"),
		"--http-addr", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:0",
		"--snapshot-interval", "0",
		"--snapshots", "file://" + filepath.Join(dir, "snapshots"),
		"--stream", benchStream,
	}, noEnv, io.Discard)
	if err != nil {
		b.Fatalf("leader config: %v", err)
	}
	l, err := node.StartLeader(b.Context(), cfg, zap.NewNop())
	if err != nil {
		b.Fatalf("start leader: %v", err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Errorf("close leader: %v", err)
		}
	})
	waitState(b, l.Status, "ready", 60*time.Second)
	return l
}

// startNoopServer serves the API handler with the leader as Node and an api.NoopWriter as Writer, on the same
// server stack (api.Listen) as the leader: the no-op PUT baseline. Cleanup shuts it down.
func startNoopServer(b *testing.B, n api.Node) string {
	b.Helper()
	return serveNoop(b, api.Config{Node: n, Writer: &api.NoopWriter{}, Metrics: metrics.New(api.RoleLeader),
		Logger: zap.NewNop()})
}

// serveNoop serves api.NewHandler(cfg) on the nodes' server stack (api.Listen) on a loopback port and returns its
// address: the no-op baselines. Cleanup shuts it down.
func serveNoop(b *testing.B, cfg api.Config) string {
	b.Helper()
	h, err := api.NewHandler(cfg)
	if err != nil {
		b.Fatalf("noop handler: %v", err)
	}
	srv, err := api.Listen("127.0.0.1:0", h, zap.NewNop())
	if err != nil {
		b.Fatalf("noop listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("noop shutdown: %v", err)
		}
		if err := <-served; err != nil {
			b.Errorf("noop serve: %v", err)
		}
	})
	return srv.Addr()
}

// waitState polls status every 10 ms until its state is want, failing the benchmark after timeout or when the node
// reports failed or degraded.
func waitState(b *testing.B, status func() api.Status, want string, timeout time.Duration) {
	b.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st := status()
		switch st.State {
		case want:
			return
		case "failed", "degraded":
			b.Fatalf("node is %s: %s", st.State, st.Error)
		}
		select {
		case <-deadline.C:
			b.Fatalf("node still %s after %v, want %s (%s)", st.State, timeout, want, st.Error)
		case <-tick.C:
		}
	}
}

// benchValue returns a value of n bytes.
func benchValue(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// entrySize is the size of the log entry the leader publishes for a PUT of key and value: the payload the raw
// JetStream ceiling publishes, so both move the same bytes.
func entrySize(key string, value []byte) int {
	return len(apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte(key), Value: value}))
}

// backlog is an embedded NATS server whose log stream holds n valid replikv entries (PUTs of distinct keys), written
// straight to the stream with the journal's pipelined publisher (no leader involved, so it is fast).
type backlog struct {
	url string
	n   int
}

// newBacklog starts the server and publishes the entries; cleanup stops the server.
func newBacklog(b *testing.B, n int, value []byte) *backlog {
	b.Helper()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: b.TempDir()})
	if err != nil {
		b.Fatalf("embedded nats: %v", err)
	}
	b.Cleanup(emb.Close)
	ctx := b.Context()
	jc, err := journal.Connect(ctx, journal.Config{URL: emb.ClientURL(), Stream: benchStream})
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer jc.Close()
	if _, err := jc.EnsureStream(ctx); err != nil {
		b.Fatalf("ensure stream: %v", err)
	}
	if err := publishEntries(ctx, jc, n, value); err != nil {
		b.Fatal(err)
	}
	info, err := jc.Info(ctx)
	if err != nil {
		b.Fatalf("stream info: %v", err)
	}
	if info.LastSeq != uint64(n) || info.Msgs != uint64(n) {
		b.Fatalf("stream holds %d entries up to seq %d, want %d", info.Msgs, info.LastSeq, n)
	}
	return &backlog{url: emb.ClientURL(), n: n}
}

// publishEntries publishes n PUT entries (keys "backlog-<i>") on an empty stream: one goroutine publishes with
// expected-last-sequence, another (owned here) awaits the acks in order.
func publishEntries(ctx context.Context, jc *journal.Conn, n int, value []byte) error {
	acks := make(chan *journal.Ack, 8192)
	var wg sync.WaitGroup
	var ackErr error
	wg.Go(func() {
		for a := range acks {
			if _, err := a.Wait(ctx); err != nil && ackErr == nil {
				ackErr = err
			}
		}
	})
	var pubErr error
	for i := range n {
		data := apply.AppendEntry(nil, apply.Entry{Op: apply.OpPut, Key: []byte("backlog-" + strconv.Itoa(i)), Value: value})
		a, err := jc.PublishAsync(ctx, data, uint64(i), "")
		if err != nil {
			pubErr = err
			break
		}
		acks <- a
	}
	close(acks)
	wg.Wait()
	if pubErr != nil {
		return fmt.Errorf("bench: publish backlog: %w", pubErr)
	}
	if ackErr != nil {
		return fmt.Errorf("bench: publish backlog: %w", ackErr)
	}
	return nil
}

// startBenchFollower starts an in-process follower on an empty data dir and an empty snapshot directory, so it
// replays the log from seq 1, unpaced unless paced (--catchup-rate at its default). The caller closes it.
func startBenchFollower(b *testing.B, natsURL, id string, paced bool) *node.Follower {
	b.Helper()
	dir := b.TempDir()
	// An existing, empty snapshot directory: "no snapshot yet", so the follower replays the log from seq 1.
	if err := os.Mkdir(filepath.Join(dir, "snapshots"), 0o755); err != nil {
		b.Fatal(err)
	}
	args := []string{
		"--data-dir", filepath.Join(dir, "follower"),
		"--http-addr", "127.0.0.1:0",
		"--nats-url", natsURL,
		"--snapshots", "file://" + filepath.Join(dir, "snapshots"),
		"--stream", benchStream,
		"--id", id,
	}
	if !paced {
		args = append(args, "--catchup-rate", "0") // apply capacity (pacing is for onboarding next to a busy leader)
	}
	cfg, err := config.ParseFollower(args, noEnv, io.Discard)
	if err != nil {
		b.Fatalf("follower config: %v", err)
	}
	f, err := node.StartFollower(b.Context(), cfg, zap.NewNop())
	if err != nil {
		b.Fatalf("start follower: %v", err)
	}
	return f
}
