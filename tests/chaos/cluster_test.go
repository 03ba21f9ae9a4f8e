//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/replikv/replikv/internal/testutil/freeport"
	"github.com/replikv/replikv/internal/testutil/tcpproxy"
	"github.com/replikv/replikv/internal/testutil/versitygw"
)

const (
	streamName = "REPLIKV" // the binaries' default --stream
	bucket     = "replikv-chaos"
	tmpfsSize  = "256m" // the disk-full follower's data disk; filled with ballast during the fault
)

// node is a leader or follower process with its own proxies to NATS and S3 and a fixed HTTP port, so that its URL
// survives restarts.
type node struct {
	*proc
	url       string
	natsProxy *tcpproxy.Proxy
	s3Proxy   *tcpproxy.Proxy
	dataDir   string
}

// cluster is everything one run started: nats-server, versitygw, the leader, the followers and their proxies.
type cluster struct {
	dir       string // the run directory: logs, data dirs, reports
	nats      *proc
	natsURL   string // direct, not proxied: for the harness's own log reader
	natsAddr  string
	gw        *versitygw.Server
	leader    *node
	followers []*node
	// tmpfsMount is the mount point of the tmpfs that holds diskFollower's data dir, "" if mounting was refused.
	tmpfsMount   string
	diskFollower *node
}

// startCluster starts the whole system and waits until every node is ready.
func startCluster(ctx context.Context, t *testing.T, dir string) *cluster {
	t.Helper()
	c := &cluster{dir: dir}

	natsPort, monPort := freeport.Must(t), freeport.Must(t)
	c.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	c.nats = newProc(t, dir, "nats-server", bins.nats, []string{
		"-js", "-sd", filepath.Join(dir, "nats-store"), "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort),
		"-m", strconv.Itoa(monPort),
	}, os.Environ(), fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", monPort))
	if err := c.nats.start(); err != nil {
		t.Fatal(err)
	}
	if err := c.nats.waitReady(ctx, readyTimeout); err != nil {
		t.Fatalf("%v\n%s", err, c.nats.tail(30))
	}

	c.gw = versitygw.Start(t)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", natsPort)
	c.natsAddr = natsAddr

	c.leader = c.newNode(t, "leader", bins.leader, natsAddr, filepath.Join(dir, "leader-data"),
		"--snapshot-interval=20s",
		// Nothing is compacted during a run: the checker reads the whole log from sequence 1 to resolve unknown
		// outcomes, and the final check replays a follower from sequence 1. The leader purges the log below its
		// oldest retained snapshot, so the first snapshot is taken at sequence 1 (below) and kept for the whole run.
		"--snapshot-keep=1000000",
	)
	c.startNode(ctx, t, c.leader)
	if err := pinLog(ctx, c.leader); err != nil {
		t.Fatal(err)
	}

	c.tmpfsMount = filepath.Join(dir, "f2-disk")
	if err := mountTmpfs(c.tmpfsMount); err != nil {
		t.Logf("FAULT KIND disk-full SKIPPED: mount -t tmpfs refused (%v); f2 uses a plain directory", err)
		c.tmpfsMount = ""
	} else {
		mnt := c.tmpfsMount
		t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) }) // after the follower's kill (LIFO)
	}
	for i := 1; i <= 2; i++ {
		name := "f" + strconv.Itoa(i)
		data := filepath.Join(dir, name+"-data")
		if i == 2 && c.tmpfsMount != "" {
			data = filepath.Join(c.tmpfsMount, "data")
		}
		f := c.newNode(t, name, bins.follower, natsAddr, data, "--id="+name)
		c.followers = append(c.followers, f)
		if i == 2 && c.tmpfsMount != "" {
			c.diskFollower = f
		}
	}
	for _, f := range c.followers {
		c.startNode(ctx, t, f)
	}
	return c
}

// newNode prepares a leader or follower with its proxies; it does not start it.
func (c *cluster) newNode(t *testing.T, name, bin, natsAddr, dataDir string, extra ...string) *node {
	return c.newNodeSnapshots(t, name, bin, natsAddr, dataDir, "s3://"+bucket+"/snap", extra...)
}

// newNodeSnapshots is newNode with another --snapshots store.
func (c *cluster) newNodeSnapshots(t *testing.T, name, bin, natsAddr, dataDir, snapshots string, extra ...string) *node {
	t.Helper()
	port := freeport.Must(t)
	n := &node{
		url:       fmt.Sprintf("http://127.0.0.1:%d", port),
		natsProxy: tcpproxy.Start(t, natsAddr),
		s3Proxy:   tcpproxy.Start(t, c.gw.Endpoint),
		dataDir:   dataDir,
	}
	args := append([]string{
		"--data-dir=" + dataDir,
		fmt.Sprintf("--http-addr=127.0.0.1:%d", port),
		"--nats-url=nats://" + n.natsProxy.Addr(),
		"--snapshots=" + snapshots,
		"--s3-endpoint=" + n.s3Proxy.Addr(),
		"--s3-insecure",
	}, extra...)
	n.proc = newProc(t, c.dir, name, bin, args, c.env(), n.url+"/readyz")
	return n
}

// env is the processes' environment: ours without REPLIKV_ settings, plus the S3 credentials.
func (c *cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REPLIKV_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, "AWS_ACCESS_KEY_ID="+c.gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+c.gw.SecretKey)
}

func (c *cluster) startNode(ctx context.Context, t *testing.T, n *node) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	if err := n.waitReady(ctx, readyTimeout); err != nil {
		t.Fatalf("%v\n%s", err, n.tail(40))
	}
}

// nodes is the leader then the followers.
func (c *cluster) nodes() []*node { return append([]*node{c.leader}, c.followers...) }

// allProxies lists every proxy of every node.
func (c *cluster) allProxies() []*tcpproxy.Proxy {
	var ps []*tcpproxy.Proxy
	for _, n := range c.nodes() {
		ps = append(ps, n.natsProxy, n.s3Proxy)
	}
	return ps
}

// mountTmpfs mounts a small tmpfs at dir (created); it fails without CAP_SYS_ADMIN.
func mountTmpfs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+tmpfsSize); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	// Prove that it is a filesystem of its own that can be written.
	probe := filepath.Join(dir, ".probe")
	if err := os.WriteFile(probe, []byte("x"), 0o644); err != nil {
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		return errors.Join(errors.New("tmpfs not writable"), err)
	}
	return os.Remove(probe)
}

// nodeByName returns the leader or follower called name.
func (c *cluster) nodeByName(name string) *node {
	for _, n := range c.nodes() {
		if n.name == name {
			return n
		}
	}
	panic("no node " + name)
}

// pinLog takes a snapshot of the empty log, which the leader takes at the log's first entry (its checkpoint mark,
// sequence 1): as the oldest retained snapshot (--snapshot-keep is high), it keeps the leader from compacting the log
// below sequence 1. Then it writes a key outside the clients' key space, right after the snapshot's checkpoint
// result.
func pinLog(ctx context.Context, leader *node) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, leader.url+"/v1/snapshots", nil)
	if err != nil {
		return err
	}
	var m struct {
		Seq uint64 `json:"seq"`
	}
	if err := doJSON(req, http.StatusCreated, &m); err != nil {
		return fmt.Errorf("pin log: snapshot: %w", err)
	}
	if m.Seq != 1 {
		return fmt.Errorf("pin log: snapshot at %d, want 1 (a log left from before?)", m.Seq)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, leader.url+"/v1/kv/setup", strings.NewReader("setup"))
	if err != nil {
		return err
	}
	var w writeAnswer
	if err := doJSON(req, http.StatusOK, &w); err != nil {
		return fmt.Errorf("pin log: %w", err)
	}
	if w.Version != 3 {
		return fmt.Errorf("pin log: the first write got version %d, want 3 (after the snapshot's checkpoint mark and result)",
			w.Version)
	}
	return nil
}
