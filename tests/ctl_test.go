//go:build e2e

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/store"
	testbin "github.com/replikv/replikv/internal/testutil/binaries"
	"github.com/replikv/replikv/internal/testutil/freeport"
	"github.com/replikv/replikv/internal/testutil/testca"
)

// Exit codes of replikvctl (internal/ctl), spelled out: the test checks the binary's interface, not the package.
const (
	ctlOK          = 0
	ctlError       = 1
	ctlUsage       = 2
	ctlMismatch    = 3
	ctlUnreachable = 4
	ctlNotFound    = 5
	ctlPrecond     = 6
)

// ctlTool runs the replikvctl binary against a cluster, with a fixed environment.
type ctlTool struct {
	t   *testing.T
	bin string
	env []string // REPLIKV_URL, REPLIKV_TOKEN, ... on top of baseEnv()
}

// ctlResult is one run of replikvctl.
type ctlResult struct {
	code     int
	out, err string
}

func newCtl(t *testing.T, env ...string) *ctlTool {
	t.Helper()
	bin, err := testbin.BuildCtl(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &ctlTool{t: t, bin: bin, env: env}
}

// run runs replikvctl with args and stdin, and fails the test if it runs for a minute or prints a secret of its
// environment.
func (c *ctlTool) run(stdin string, args ...string) ctlResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(baseEnv(), c.env...)
	cmd.Dir = c.t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("replikvctl %s: still running after a minute", strings.Join(args, " "))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		c.t.Fatalf("replikvctl %s: %v", strings.Join(args, " "), err)
	}
	r := ctlResult{code: cmd.ProcessState.ExitCode(), out: out.String(), err: errb.String()}
	checkNoSecrets(c.t, "replikvctl's output", r.out+r.err, secretsOf(args, c.env))
	return r
}

// must runs replikvctl and fails the test unless it exits with code.
func (c *ctlTool) must(code int, stdin string, args ...string) ctlResult {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != code {
		c.t.Fatalf("replikvctl %s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code,
			code, r.out, r.err)
	}
	return r
}

func mustHave(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

// TestCtl_EndToEnd runs every replikvctl command against a real leader and two followers with a token, and checks
// what each prints and its exit code.
func TestCtl_EndToEnd(t *testing.T) {
	t.Parallel()
	const token = "ctl-e2e-s3cr3t-token"
	c := newCluster(t, clusterOpts{token: token})
	ld := c.startLeader()
	f1 := c.startFollower("f1")
	f2 := c.startFollower("f2")
	f1.api().waitReady(t)
	f2.api().waitReady(t)
	all := strings.Join([]string{ld.URL(), f1.URL(), f2.URL()}, ",")
	ctl := newCtl(t, "REPLIKV_TOKEN="+token, "REPLIKV_URL="+all)

	// Writes through a follower are redirected to the leader, token included.
	r := ctl.must(ctlOK, "", "--url", f1.URL(), "put", "greeting", "hello")
	mustHave(t, "put", r.out, "put greeting version")
	var greeting uint64
	if _, err := fmt.Sscanf(r.out, "put greeting version %d", &greeting); err != nil {
		t.Fatalf("put output %q: %v", r.out, err)
	}
	ctl.must(ctlOK, "from stdin", "--url", f2.URL(), "put", "piped")
	path := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(path, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ctl.must(ctlOK, "", "put", "filed", "--file", path, "-o", "json")
	var w struct {
		Key     string `json:"key"`
		Version uint64 `json:"version"`
		Status  int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.out), &w); err != nil || w.Key != "filed" || w.Version == 0 || w.Status != 200 {
		t.Fatalf("put -o json: %v %q", err, r.out)
	}

	// Reads, on a follower at the write's version.
	for key, want := range map[string]string{"greeting": "hello", "piped": "from stdin", "filed": "from a file"} {
		r = ctl.must(ctlOK, "", "--url", f2.URL(), "get", key, "--min-seq", fmt.Sprint(w.Version))
		if r.out != want {
			t.Fatalf("get %s: %q, want %q", key, r.out, want)
		}
	}
	ctl.must(ctlNotFound, "", "get", "absent")
	ctl.must(ctlPrecond, "", "put", "greeting", "again", "--if-absent")
	ctl.must(ctlPrecond, "", "put", "greeting", "again", "--if-match", fmt.Sprint(greeting+100))
	ctl.must(ctlOK, "", "put", "greeting", "again", "--if-match", fmt.Sprint(greeting))

	// list reads every page.
	for i := range 23 {
		ld.api().put(t, fmt.Sprintf("list/%02d", i), []byte{byte('a' + i)})
	}
	r = ctl.must(ctlOK, "", "list", "list/", "--page-size", "5", "--values", "-o", "json")
	var doc struct {
		Items []struct {
			Key   string `json:"key"`
			Value []byte `json:"value"`
		} `json:"items"`
		Next string `json:"next"`
		Seq  uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil || len(doc.Items) != 23 || doc.Next != "" || doc.Seq == 0 {
		t.Fatalf("list: %v: %d items, next %q\n%s", err, len(doc.Items), doc.Next, r.out)
	}
	for i, it := range doc.Items {
		if it.Key != fmt.Sprintf("list/%02d", i) || string(it.Value) != string(rune('a'+i)) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	r = ctl.must(ctlOK, "", "list", "list/", "--limit", "3")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[3], "list/02") {
		t.Fatalf("list --limit 3:\n%s", r.out)
	}

	// del, then del again.
	mustHave(t, "del", ctl.must(ctlOK, "", "del", "piped").out, "deleted piped version")
	ctl.must(ctlNotFound, "", "del", "piped")

	// txn through a follower: the operations from stdin go to the leader in one entry; the keys are read back on the
	// other follower at its version.
	ops := fmt.Sprintf("# two puts and a delete\nput txn/a \"with space\" if-absent\nput txn/b --b64 AP8=\n"+
		"del filed if-match=%d\n", w.Version)
	r = ctl.must(ctlOK, ops, "--url", f1.URL(), "txn", "-o", "json")
	var tx struct {
		Version uint64 `json:"version"`
		Ops     int    `json:"ops"`
		Status  int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.out), &tx); err != nil || tx.Ops != 3 || tx.Version <= w.Version || tx.Status != 200 {
		t.Fatalf("txn -o json: %v %q", err, r.out)
	}
	for key, want := range map[string]string{"txn/a": "with space", "txn/b": "\x00\xff"} {
		r = ctl.must(ctlOK, "", "--url", f2.URL(), "get", key, "--min-seq", fmt.Sprint(tx.Version), "-o", "json")
		var g struct {
			Version uint64 `json:"version"`
			Value   []byte `json:"value"`
		}
		if err := json.Unmarshal([]byte(r.out), &g); err != nil || string(g.Value) != want || g.Version != tx.Version {
			t.Fatalf("get %s after txn: %v %q, want %q at version %d", key, err, r.out, want, tx.Version)
		}
	}
	ctl.must(ctlNotFound, "", "--url", f2.URL(), "get", "filed", "--min-seq", fmt.Sprint(tx.Version))
	// A failed condition (from a file) writes nothing and names the operation; so does a delete of an absent key.
	opsFile := filepath.Join(t.TempDir(), "ops.txt")
	if err := os.WriteFile(opsFile, []byte("put txn/c 1\nput txn/a again if-match=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ctl.must(ctlPrecond, "", "--url", f2.URL(), "txn", "--file", opsFile)
	mustHave(t, "txn stderr", r.err, `ops[1] put "txn/a" (`+opsFile+`:2)`, fmt.Sprintf("version %d", tx.Version))
	ctl.must(ctlNotFound, "", "get", "txn/c")
	r = ctl.must(ctlNotFound, "put txn/c 1\ndel filed\n", "txn")
	mustHave(t, "txn stderr", r.err, `ops[1] del "filed"`)
	ctl.must(ctlUsage, "put txn/c \"unterminated\n", "txn")
	// The API's JSON body, as is.
	r = ctl.must(ctlOK, fmt.Sprintf(`{"ops":[{"op":"put","key":"txn/b","value":"json","if_match":%d}]}`, tx.Version),
		"--url", f1.URL(), "txn", "--json")
	mustHave(t, "txn --json", r.out, "committed 1 operation(s) at version")
	if r = ctl.must(ctlOK, "", "get", "txn/b"); r.out != "json" {
		t.Fatalf("get txn/b: %q", r.out)
	}

	// Snapshots, through whichever --url is the leader.
	r = ctl.must(ctlOK, "", "--url", f1.URL()+","+ld.URL(), "snapshots", "create", "-o", "json")
	var m struct {
		Seq  uint64 `json:"seq"`
		Keys uint64 `json:"keys"`
	}
	if err := json.Unmarshal([]byte(r.out), &m); err != nil || m.Seq == 0 || m.Keys != 26 {
		t.Fatalf("snapshots create: %v %q", err, r.out)
	}
	r = ctl.must(ctlOK, "", "snapshots", "list")
	mustHave(t, "snapshots list", r.out, "SEQ", fmt.Sprint(m.Seq))

	// status: one table of the whole cluster.
	ldID := ld.api().status(t).ID
	r = ctl.must(ctlOK, "", "status")
	mustHave(t, "status", r.out, ldID, "leader", "f1", "f2", "follower", "ready", f1.URL(),
		fmt.Sprintf("newest snapshot: seq %d", m.Seq))
	r = ctl.must(ctlOK, "", "status", "-o", "json")
	var st struct {
		Leader string `json:"leader"`
		Nodes  []struct {
			ID, Role, State, Source string
		} `json:"nodes"`
		NewestSnapshot *struct{ Seq uint64 } `json:"newest_snapshot"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil || st.Leader != ldID || len(st.Nodes) != 3 ||
		st.NewestSnapshot == nil || st.NewestSnapshot.Seq != m.Seq {
		t.Fatalf("status -o json: %v\n%s", err, r.out)
	}
	for _, n := range st.Nodes {
		if n.Source != "node" || n.State != "ready" {
			t.Fatalf("status node %+v", n)
		}
	}
	// Only the leader's URL: the followers come from its list, with the URLs their heartbeats carry.
	r = ctl.must(ctlOK, "", "--url", ld.URL(), "status")
	mustHave(t, "status from the leader alone", r.out, "f1", "f2", f1.URL(), f2.URL())

	// verify: every node equal at one sequence, found from all URLs, from the leader's alone, or from a follower's
	// alone (the leader through the follower's leader_url).
	r = ctl.must(ctlOK, "", "verify")
	mustHave(t, "verify", r.out, "reference", "all 3 node(s) equal")
	mustHave(t, "verify from the leader", ctl.must(ctlOK, "", "--url", ld.URL(), "verify").out, "all 3 node(s) equal")
	mustHave(t, "verify from a follower", ctl.must(ctlOK, "", "--url", f2.URL(), "verify").out, "all 3 node(s) equal")

	// watch a follower that is ready: it says so and ends.
	mustHave(t, "watch", ctl.must(ctlOK, "", "watch", f1.URL()).out, "f1 ready at seq")
	mustHave(t, "watch by id", ctl.must(ctlOK, "", "--url", ld.URL(), "watch", "f2").out, "f2 ready at seq")

	// Tokens and reachability.
	noToken := newCtlFrom(ctl, "REPLIKV_URL="+ld.URL())
	r = noToken.must(ctlError, "", "get", "greeting")
	mustHave(t, "stderr", r.err, "401", "REPLIKV_TOKEN")
	wrong := newCtlFrom(ctl, "REPLIKV_URL="+ld.URL(), "REPLIKV_TOKEN=not-the-token")
	wrong.must(ctlError, "", "put", "k", "v")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noToken.must(ctlOK, "", "--token-file", tokenFile, "get", "greeting")
	gone := freeURL(t)
	ctl.must(ctlUnreachable, "", "--url", gone, "get", "greeting")
	r = ctl.must(ctlUnreachable, "", "--url", all+","+gone, "status")
	mustHave(t, "status with a node down", r.out, "unreachable", gone)
	ctl.must(ctlUsage, "", "status", "--no-such-flag")
	ctl.must(ctlUsage, "", "-o", "yaml", "status")
	mustHave(t, "completion", ctl.must(ctlOK, "", "completion", "bash").out, "replikvctl")
}

// TestCtl_WatchOnboarding: replikvctl watch follows a new follower's onboarding from a snapshot to ready.
func TestCtl_WatchOnboarding(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader()
	for i := range 2000 {
		ld.api().put(t, fmt.Sprintf("w/%05d", i), bytes.Repeat([]byte{'x'}, 200))
	}
	ld.api().snapshot(t)
	ctl := newCtl(t, "REPLIKV_URL="+ld.URL())
	f := c.newFollower("late")
	f.start(false)
	r := ctl.must(ctlOK, "", "watch", f.URL(), "--interval", "50ms", "--max-wait", "90s")
	mustHave(t, "watch", r.out, "late ready at seq")
	t.Logf("replikvctl watch:\n%s", r.out)
	r = ctl.must(ctlOK, "", "--url", ld.URL()+","+f.URL(), "verify")
	mustHave(t, "verify", r.out, "all 2 node(s) equal")
}

// TestCtl_VerifyMismatch: a follower whose store was edited while it was stopped resumes from its applied sequence
// with the extra key (no checkpoint comes to find it out: snapshots are on demand only). verify brings both nodes
// to the leader's sequence, finds the digests differ, says which node, and exits 3.
func TestCtl_VerifyMismatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	ld := c.startLeader()
	for i := range 50 {
		ld.api().put(t, fmt.Sprintf("k/%02d", i), []byte("v"))
	}
	f := c.startFollower("edited")
	f.api().waitReady(t)
	ctl := newCtl(t, "REPLIKV_URL="+ld.URL()+","+f.URL())
	ctl.must(ctlOK, "", "verify")

	f.stop()
	db, err := store.Open(store.StoreDir(flagValue(f.args, "data-dir")), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seq, mark := db.Mark()
	if err := db.Apply(seq, []apply.Mutation{{Key: []byte("intruder"), Value: []byte("x"), Version: 1}}, mark); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f.restart(false)
	f.api().waitReady(t)
	ld.api().put(t, "after", []byte("restart")) // the follower applies it: both nodes move on to the same seq

	ctl = newCtl(t, "REPLIKV_URL="+ld.URL()+","+f.URL())
	r := ctl.must(ctlMismatch, "", "verify")
	mustHave(t, "verify", r.out, "MISMATCH", "edited")
	mustHave(t, "verify stderr", r.err, "digest mismatch", "edited")
	r = ctl.must(ctlMismatch, "", "verify", "-o", "json")
	var out struct {
		Seq    uint64 `json:"seq"`
		Result string `json:"result"`
		Nodes  []struct {
			ID     string `json:"id"`
			Seq    uint64 `json:"seq"`
			Keys   uint64 `json:"keys"`
			Result string `json:"result"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(r.out), &out); err != nil {
		t.Fatal(err)
	}
	if out.Result != "mismatch" || len(out.Nodes) != 2 || out.Nodes[1].ID != "edited" || out.Nodes[1].Result != "MISMATCH" ||
		out.Nodes[0].Seq != out.Nodes[1].Seq || out.Nodes[1].Keys != out.Nodes[0].Keys+1 {
		t.Fatalf("verify -o json: %+v", out)
	}
}

// newCtlFrom is another replikvctl with the same binary and another environment.
func newCtlFrom(c *ctlTool, env ...string) *ctlTool {
	return &ctlTool{t: c.t, bin: c.bin, env: env}
}

// freeURL is the URL of a loopback port nothing listens on (a moment ago).
func freeURL(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("http://127.0.0.1:%d", freeport.Must(t))
}

// TestCtl_TLS: against nodes that speak HTTPS and require client certificates, replikvctl works with --cacert,
// --cert and --key (a write through the follower is redirected to the leader's https:// URL), and fails with exit
// code 4 without them.
func TestCtl_TLS(t *testing.T) {
	t.Parallel()
	files := testca.WriteFiles(t)
	tlsFlags := []string{"--tls-cert=" + files.CertFile, "--tls-key=" + files.KeyFile, "--tls-client-ca=" + files.CAFile}
	c := newCluster(t, clusterOpts{})
	ld := c.newLeader(tlsFlags...)
	c.runLeader(ld)
	f := c.newFollower("tls1", tlsFlags...)
	f.start(false)
	https := func(p *proc) string { return "https://" + strings.TrimPrefix(p.URL(), "http://") }
	ctl := newCtl(t, "REPLIKV_URL="+https(ld)+","+https(f), "REPLIKV_CACERT="+files.CAFile,
		"REPLIKV_CERT="+files.CertFile, "REPLIKV_KEY="+files.KeyFile)

	ctl.must(ctlOK, "", "--url", https(ld), "watch", "--max-wait", "90s", "--interval", "100ms")
	ctl.must(ctlOK, "", "--url", https(f), "watch", "--max-wait", "90s", "--interval", "100ms")
	r := ctl.must(ctlOK, "", "--url", https(f), "put", "secure", "yes")
	mustHave(t, "put", r.out, "put secure version")
	if r = ctl.must(ctlOK, "", "--url", https(f), "get", "secure", "--consistency", "strong"); r.out != "yes" {
		t.Fatalf("get: %q", r.out)
	}
	mustHave(t, "status", ctl.must(ctlOK, "", "status").out, "tls1", https(ld))
	ctl.must(ctlOK, "", "verify")

	noClientCert := newCtlFrom(ctl, "REPLIKV_URL="+https(ld), "REPLIKV_CACERT="+files.CAFile)
	noClientCert.must(ctlUnreachable, "", "get", "secure")
	noCA := newCtlFrom(ctl, "REPLIKV_URL="+https(ld), "REPLIKV_CERT="+files.CertFile, "REPLIKV_KEY="+files.KeyFile)
	r = noCA.must(ctlUnreachable, "", "get", "secure")
	mustHave(t, "stderr", r.err, "certificate")
}
