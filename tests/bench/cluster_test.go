//go:build bench

package bench

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/testutil/freeport"
	"github.com/replikv/replikv/internal/testutil/httpload"
)

const (
	// stream is the stream name the benchmark nodes use (the default).
	stream = "REPLIKV"
	// valueSize is the value size of the onboarding benchmarks.
	valueSize = 128
	// bulkConns is the number of keep-alive connections that load the initial keys.
	bulkConns = 64
	// liveRate is the live write load: a steady, moderate 2,000 writes/s, spread over -bench.livewriters connections.
	liveRate = 2000
	// readyTimeout bounds a follower's onboarding.
	readyTimeout = 10 * time.Minute
)

// keyName is the i-th key of the initial data set (the same names in replikv and in Redis).
func keyName(i int) string { return fmt.Sprintf("key-%09d", i) }

// values produces random values of one size: incompressible like real data, unlike a repeated pattern that zstd
// (replikv's snapshots) and LZF (Redis's RDB) would shrink to almost nothing. It is owned by one goroutine; the
// slice next returns is reused by the following call.
type values struct {
	rng *rand.ChaCha8
	buf []byte
}

func newValues(seed uint64, size int) *values {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &values{rng: rand.NewChaCha8(s), buf: make([]byte, size)}
}

func (v *values) next() []byte {
	_, _ = v.rng.Read(v.buf)
	return v.buf
}

// cluster is a leader binary with its NATS server (embedded, or a process of its own: startLogServer) and a local
// snapshot directory, loaded with keys.
type cluster struct {
	dir     string
	snapDir string
	leader  *proc
	ln      *node
	addr    string
	natsURL string
	// followerURL, if set, is the NATS server followers connect to instead of natsURL (another server of a cluster).
	followerURL string
	keys        int
	// mirror is set when the leader keeps a catch-up mirror (--catchup-mirror): followers must catch up from it.
	mirror bool
	// followerData is where followers keep their data dirs: dir, or a directory of its own under -bench.followerdir.
	followerData string
}

// startCluster starts the leader and writes keys keys (random 128-byte values; none if keys is 0) through its HTTP API
// with 64 keep-alive connections. A non-empty wrap is a command prefix that execs the leader (taskset: it then runs on
// those CPUs from its start, so that its Go runtime sizes itself to them). With an empty natsURL the leader runs its
// embedded NATS server; otherwise it uses the NATS server at natsURL (see startLogServer).
func startCluster(b *testing.B, keys int, wrap []string, natsURL string, leaderArgs ...string) *cluster {
	b.Helper()
	ctx := b.Context()
	dir := b.TempDir()
	c := &cluster{dir: dir, snapDir: filepath.Join(dir, "snapshots"), keys: keys, natsURL: natsURL,
		mirror: slices.Contains(leaderArgs, "--catchup-mirror"), followerData: dir}
	if *flagFollowerDir != "" {
		d, err := os.MkdirTemp(*flagFollowerDir, "replikv-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(d) })
		c.followerData = d
	}
	argv := append(slices.Clone(wrap), binaries.leader,
		"--data-dir", filepath.Join(dir, "leader"),
		"--http-addr", "127.0.0.1:0",
		"--snapshot-interval", "0",
		"--snapshots", "file://"+c.snapDir,
		"--stream", stream)
	if natsURL == "" {
		argv = append(argv, "--nats-listen", "127.0.0.1:0")
	} else {
		argv = append(argv, "--nats-url", natsURL)
	}
	argv = append(argv, leaderArgs...)
	argv = append(argv, strings.Fields(*flagLeaderArgs)...)
	c.leader = startProc(b, dir, "leader", argv[0], argv[1:]...)
	c.addr = c.leader.waitField(msgHTTPListening, "addr", startTimeout)
	if natsURL == "" {
		c.natsURL = c.leader.waitField(msgNATSListening, "url", startTimeout)
	}
	c.ln = newNode(c.addr)
	if err := waitReady(ctx, c.ln, startTimeout); err != nil {
		b.Fatal(err)
	}
	if keys == 0 {
		return c
	}
	took, err := bulkPut(ctx, c.addr, bulkConns, keys, keyName, valueSize)
	if err != nil {
		b.Fatalf("load %d keys: %v", keys, err)
	}
	b.Logf("leader: loaded %d keys in %v (%.0f writes/s, 64 connections)", keys, took.Round(time.Millisecond),
		float64(keys)/took.Seconds())
	return c
}

// startLoad starts the live write load on the leader.
func (c *cluster) startLoad(ctx context.Context, prefix string) (*pacedLoad, error) {
	return c.startLoadSized(ctx, prefix, valueSize)
}

// startLoadSized is startLoad with values of size bytes.
func (c *cluster) startLoadSized(ctx context.Context, prefix string, size int) (*pacedLoad, error) {
	return startLiveLoad(ctx, func(ctx context.Context) (writer, error) {
		pc, err := httpload.DialPut(ctx, c.addr)
		if err != nil {
			return nil, err
		}
		return httpWriter{c: pc}, nil
	}, prefix, size)
}

// follower is a follower binary onboarding from the cluster's snapshot directory and log.
type follower struct {
	b    *testing.B
	proc *proc
	dir  string // its log
	data string // its data dir
	n    *node
}

// launchFollower starts a follower with empty storage; it does not wait for anything. A non-empty wrap is a command
// prefix that execs the follower (taskset, nice: the pid stays the follower's); args are extra follower flags, before
// -bench.followerargs.
func (c *cluster) launchFollower(b *testing.B, name string, wrap []string, args ...string) *follower {
	b.Helper()
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	data := filepath.Join(c.followerData, name, "data")
	argv := append(slices.Clone(wrap), binaries.follower,
		"--data-dir", data,
		"--http-addr", "127.0.0.1:0",
		"--nats-url", cmp.Or(c.followerURL, c.natsURL),
		"--snapshots", "file://"+c.snapDir,
		"--stream", stream,
		"--id", name)
	argv = append(argv, args...)
	argv = append(argv, strings.Fields(*flagFollowerArgs)...)
	p := startProc(b, dir, name, argv[0], argv[1:]...)
	return &follower{b: b, proc: p, dir: dir, data: data}
}

// node waits for the follower's HTTP listener (onboarding runs behind it) and returns its client. It may fail the
// benchmark, so it must be called from the benchmark's goroutine.
func (f *follower) node() *node {
	if f.n == nil {
		f.n = newNode(f.proc.waitField(msgHTTPListening, "addr", startTimeout))
	}
	return f.n
}

// remove stops the follower and deletes its data.
func (f *follower) remove() {
	f.proc.stop()
	_ = os.RemoveAll(f.data)
}

// cpuSplit divides this machine in two for benchmarks that stand for two machines: the leader's side gets CPU 0,
// the followers' side the rest. ok is false on a single CPU.
func cpuSplit() (leader, followers string, ok bool) {
	n := runtime.NumCPU()
	if n < 2 {
		return "", "", false
	}
	return "0", fmt.Sprintf("1-%d", n-1), true
}

// startLogServer starts a nats-server process (the version go.mod pins) with JetStream, its storage in a temporary
// directory, on a free loopback port, and waits until its monitoring endpoint reports JetStream healthy. A non-empty
// wrap is a command prefix that execs it (taskset). It returns the client URL. The process is killed at cleanup.
func startLogServer(b *testing.B, wrap []string) string {
	b.Helper()
	n := launchNATSServer(b, wrap, "log", "")
	n.waitHealthy(b, "?js-enabled-only=true")
	return n.url
}

// startLogCluster starts a JetStream cluster of two nats-server processes, named and tagged (server_tags) "log" and
// "catchup", the first run under logWrap and the second under catchupWrap (taskset), and waits until both report
// healthy, which on a cluster includes a JetStream meta leader. It returns their client URLs.
func startLogCluster(b *testing.B, logWrap, catchupWrap []string) (logURL, catchupURL string) {
	b.Helper()
	ports := []int{freeport.Must(b), freeport.Must(b)}
	cluster := func(port int) string {
		return fmt.Sprintf("cluster { name: bench, listen: \"127.0.0.1:%d\", routes: [\"nats://127.0.0.1:%d\", \"nats://127.0.0.1:%d\"] }\n",
			port, ports[0], ports[1])
	}
	// Both start before either is waited for: neither is healthy alone.
	log := launchNATSServer(b, logWrap, "log", cluster(ports[0]))
	catchup := launchNATSServer(b, catchupWrap, "catchup", cluster(ports[1]))
	log.waitHealthy(b, "")
	catchup.waitHealthy(b, "")
	return log.url, catchup.url
}

// natsServer is a nats-server process started by launchNATSServer.
type natsServer struct {
	p      *proc
	url    string // client URL
	health string // monitoring /healthz URL
}

// launchNATSServer starts a nats-server process (the version go.mod pins) named and tagged name, with JetStream, its
// storage in a temporary directory, client and monitoring ports on free loopback ports, and extra appended to its
// configuration file. It does not wait for it. The process is killed at cleanup.
func launchNATSServer(b *testing.B, wrap []string, name, extra string) natsServer {
	b.Helper()
	dir := b.TempDir()
	port, mport := freeport.Must(b), freeport.Must(b)
	conf := fmt.Sprintf("server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\nserver_tags: [%q]\njetstream { store_dir: %q }\n%s",
		name, port, mport, name, filepath.Join(dir, "jetstream"), extra)
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	argv := append(slices.Clone(wrap), binaries.nats, "-c", confPath)
	return natsServer{
		p:      startProc(b, dir, "nats-server-"+name, argv[0], argv[1:]...),
		url:    fmt.Sprintf("nats://127.0.0.1:%d", port),
		health: fmt.Sprintf("http://127.0.0.1:%d/healthz", mport),
	}
}

// waitHealthy polls the server's /healthz with query until it answers 200.
func (n natsServer) waitHealthy(b *testing.B, query string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), startTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.health+query, nil)
		if err != nil {
			b.Fatal(err)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-n.p.Done():
			b.Fatalf("nats-server exited before it was healthy:\n%s", tailFile(n.p.logPath, 30))
		case <-ctx.Done():
			b.Fatalf("nats-server not healthy within %v:\n%s", startTimeout, tailFile(n.p.logPath, 30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
