//go:build e2e

package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/testutil/versitygw"
)

const (
	streamName = "REPLIKV" // the default --stream
	s3Bucket   = "replikv"
	s3Prefix   = "e2e/snaps"
)

// clusterOpts chooses the shared setup of one test's nodes.
type clusterOpts struct {
	s3    bool   // snapshots in a real versitygw (s3://), else a local directory (file://)
	token string // --auth-token for every node
}

// cluster is one test's set of nodes: a snapshot store, the environment and flags every node shares, and the first
// leader's embedded NATS URL that followers connect to. Only the test goroutine uses it.
type cluster struct {
	t       *testing.T
	hc      *http.Client
	env     []string // the binaries' environment: no REPLIKV_* or AWS_* from the outside, plus S3 credentials
	common  []string // flags every node gets
	s3      *versitygw.Server
	snapDir string // file:// root (without s3)
	natsURL string // the first leader's embedded NATS
	nodes   int
}

func newCluster(t *testing.T, opts clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, hc: newHTTPClient(t), env: baseEnv()}
	if opts.s3 {
		c.s3 = versitygw.Start(t)
		makeBucket(t, c.s3, s3Bucket)
		c.env = append(c.env, "AWS_ACCESS_KEY_ID="+c.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+c.s3.SecretKey)
		c.common = append(c.common, "--snapshots=s3://"+s3Bucket+"/"+s3Prefix, "--s3-endpoint="+c.s3.Endpoint,
			"--s3-insecure=true")
	} else {
		c.snapDir = t.TempDir()
		c.common = append(c.common, "--snapshots=file://"+c.snapDir)
	}
	if opts.token != "" {
		c.common = append(c.common, "--auth-token="+opts.token)
	}
	return c
}

// useTestNATS runs the cluster's NATS server in the test process (JetStream, on a free port) instead of a leader's
// embedded one: nodes can then be frozen or killed, the leader too, while the log stays up.
func (c *cluster) useTestNATS() {
	c.t.Helper()
	emb, err := journal.StartEmbedded(journal.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: c.t.TempDir()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(emb.Close)
	c.natsURL = emb.ClientURL()
}

// baseEnv is the test process's environment without any REPLIKV_* or AWS_* variable, so nothing from the outside
// configures the binaries.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REPLIKV_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// withDefaults appends each default flag that args do not set.
func withDefaults(args []string, defaults ...string) []string {
	out := append([]string(nil), args...)
	for _, d := range defaults {
		name, _, _ := strings.Cut(strings.TrimLeft(d, "-"), "=")
		if !hasFlag(out, name) {
			out = append(out, d)
		}
	}
	return out
}

// newLeader prepares (does not start) a leader with its own data dir, HTTP and embedded NATS on free ports and
// snapshots only on demand; args override any of these.
func (c *cluster) newLeader(args ...string) *proc {
	c.t.Helper()
	c.nodes++
	defaults := append([]string{
		"--data-dir=" + c.t.TempDir(),
		"--http-addr=127.0.0.1:0",
		"--nats-listen=127.0.0.1:0",
		"--snapshot-interval=0",
	}, c.common...)
	return newProc(c.t, fmt.Sprintf("leader%d", c.nodes), binaries.leader, withDefaults(args, defaults...), c.env, c.hc)
}

// runLeader starts a prepared leader; the first embedded NATS URL becomes the cluster's.
func (c *cluster) runLeader(p *proc) {
	c.t.Helper()
	embedded := flagValue(p.args, "nats-url") == ""
	p.start(embedded)
	if embedded && c.natsURL == "" {
		c.natsURL = p.NATSURL()
	}
}

// startLeader is newLeader plus runLeader, and waits until the leader is ready (it answers writes with 503 while
// it starts).
func (c *cluster) startLeader(args ...string) *proc {
	c.t.Helper()
	p := c.newLeader(args...)
	c.runLeader(p)
	if st, _ := p.api().waitReady(c.t); st.Role != "leader" {
		c.t.Fatalf("%s: status role %q, want leader", p.name, st.Role)
	}
	return p
}

// newFollower prepares (does not start) a follower with the given id, its own data dir and a free HTTP port,
// connected to the cluster's NATS; args override any of these.
func (c *cluster) newFollower(id string, args ...string) *proc {
	c.t.Helper()
	if c.natsURL == "" {
		c.t.Fatalf("follower %s: no leader started", id)
	}
	c.nodes++
	defaults := append([]string{
		"--id=" + id,
		"--data-dir=" + c.t.TempDir(),
		"--http-addr=127.0.0.1:0",
		"--nats-url=" + c.natsURL,
	}, c.common...)
	return newProc(c.t, id, binaries.follower, withDefaults(args, defaults...), c.env, c.hc)
}

// startFollower is newFollower plus start.
func (c *cluster) startFollower(id string, args ...string) *proc {
	c.t.Helper()
	p := c.newFollower(id, args...)
	p.start(false)
	return p
}

// snapshotFile is the local path of a snapshot object (name "data" or "manifest.json"): under the file:// root, or
// the file versitygw keeps for the object.
func (c *cluster) snapshotFile(seq uint64, name string) string {
	rel := filepath.Join(streamName, fmt.Sprintf("%020d", seq), name)
	if c.s3 != nil {
		return filepath.Join(c.s3.Dir, s3Bucket, filepath.FromSlash(s3Prefix), rel)
	}
	return filepath.Join(c.snapDir, rel)
}

// snapshotSeqsOnDisk lists the snapshot directories (by sequence) present in the store, in ascending order.
func (c *cluster) snapshotSeqsOnDisk() []string {
	c.t.Helper()
	dir := filepath.Dir(filepath.Dir(c.snapshotFile(1, "data")))
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.t.Fatalf("read snapshot store %s: %v", dir, err)
	}
	var seqs []string
	for _, e := range entries {
		if e.IsDir() {
			seqs = append(seqs, e.Name())
		}
	}
	return seqs
}

// makeBucket creates the bucket the nodes' s3:// URL names (the binaries expect it to exist).
func makeBucket(t *testing.T, s *versitygw.Server, bucket string) {
	t.Helper()
	mc, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		t.Fatalf("minio client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("make bucket %s: %v", bucket, err)
	}
}

// hostPort is the host:port of a URL such as nats://127.0.0.1:4222.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("parse url %q: %v", raw, err)
	}
	return u.Host
}
