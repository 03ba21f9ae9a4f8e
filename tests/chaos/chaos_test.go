//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

const (
	checkBudget    = 90 * time.Second // porcupine's whole budget
	quiesceTimeout = 90 * time.Second // after healing: followers caught up with the leader
	maxVisualized  = 5                // porcupine HTML files written per run
	maxPrinted     = 30               // violations printed in the test log (all are in violations.txt)
)

// TestChaos runs the fault phase under load, heals everything, and checks the history. See the package doc.
func TestChaos(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("replikv-chaos-%d-", seed))
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after every process is killed and the tmpfs unmounted.
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("chaos seed %d: logs, history and reports kept in %s", seed, dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	t.Logf("chaos seed %d (replay with -chaos.seed=%d), fault phase %v, run dir %s", seed, seed, *flagDuration, dir)
	binaries(t)

	plan := schedule(seed, *flagDuration)
	var planText strings.Builder
	for _, f := range plan {
		fmt.Fprintf(&planText, "%8.1fs %s\n", f.At.Seconds(), f)
	}
	writeFile(t, dir, "schedule.txt", planText.String())
	t.Logf("fault schedule (%d faults):\n%s", len(plan), planText.String())

	ctx := t.Context()
	c := startCluster(ctx, t, dir)
	clk := newClock()
	t.Logf("cluster ready; load and faults start")

	// Load.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	clients := make([]*client, *flagClients)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = newClient(i, seed, c, clk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i].run(loadCtx)
		}()
	}

	// Faults, each healed before the next; the last one is healed even when the phase ends during it.
	inj := &injector{c: c, clk: clk, logf: t.Logf}
	faultCtx, stopFaults := context.WithTimeout(ctx, *flagDuration)
	defer stopFaults()
	inj.run(faultCtx, plan)
	<-faultCtx.Done()
	notes := healAll(ctx, c)
	// A little more load on the healed system, so that the history ends in a steady state.
	calm := time.NewTimer(5 * time.Second)
	select {
	case <-calm.C:
	case <-ctx.Done():
	}
	stopLoad()
	wg.Wait()
	historyEnd := clk.now()
	t.Logf("load stopped at %s", clk.stamp())

	var ops []op
	for _, cl := range clients {
		ops = append(ops, cl.ops...)
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	for i := range ops {
		ops[i].ID = i
	}
	faults := inj.records()

	// Quiescence and the final system checks.
	var violations []violation
	sysBad := func(kind, format string, args ...any) {
		violations = append(violations, violation{Kind: kind, Msg: fmt.Sprintf(format, args...), From: historyEnd, To: clk.now()})
	}
	if err := waitNodes(ctx, c.nodes()); err != nil {
		sysBad("not-ready-after-heal", "%v; statuses: %s", err, statuses(c.nodes()))
	}
	if err := quiesce(ctx, c); err != nil {
		sysBad("no-quiescence", "%v; statuses: %s", err, statuses(c.nodes()))
	}
	if err := finalSnapshotAndTail(ctx, c); err != nil {
		sysBad("final-writes", "%v", err)
	}
	f3 := c.newNode(t, "f3-from-snapshot", bins.follower, c.natsAddr, filepath.Join(dir, "f3-data"), "--id=f3")
	f4 := c.newNodeSnapshots(t, "f4-from-seq1", bins.follower, c.natsAddr, filepath.Join(dir, "f4-data"),
		"file://"+filepath.Join(dir, "empty-snapshots"), "--id=f4")
	for _, n := range []*node{f3, f4} {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*node{f3, f4} {
		if err := n.waitReady(ctx, 2*readyTimeout); err != nil {
			sysBad("onboarding", "%v\n%s", err, n.tail(20))
		}
	}

	logCtx, cancelLog := context.WithTimeout(ctx, 2*time.Minute)
	l, err := readLog(logCtx, c.natsURL, clk)
	cancelLog()
	if err != nil {
		t.Fatalf("seed %d: %v (run dir %s)", seed, err, dir)
	}
	writeLog(t, dir, l)
	writeHistory(t, dir, ops, faults)
	t.Logf("log: %d entries; history: %d ops", l.last, len(ops))

	// (d, f) Digests at the log's end on every node, against the digest computed from the log itself. The leader's
	// snapshot schedule may have added a checkpoint since the log was read: a node that answers at a later sequence
	// is checked against the log read again.
	latest := l
	for _, n := range append(c.nodes(), f3, f4) {
		d, err := digest(ctx, n, l.last)
		if err == nil && d.Seq > latest.last {
			logCtx, cancelLog := context.WithTimeout(ctx, 2*time.Minute)
			if again, rerr := readLog(logCtx, c.natsURL, clk); rerr == nil {
				latest = again
			}
			cancelLog()
		}
		switch {
		case err != nil:
			sysBad("digest", "%s: %v", n.name, err)
		case d.Seq > latest.last:
			sysBad("digest", "%s: digest at seq %d, beyond the log's end %d", n.name, d.Seq, latest.last)
		case d.Digest != latest.digest(d.Seq):
			sysBad("digest", "%s: digest %s at seq %d, want %s (computed from the log)", n.name, d.Digest, d.Seq,
				latest.digest(d.Seq))
		}
	}
	if st, err := status(ctx, f3); err == nil && st.SnapshotSeq == 0 {
		sysBad("onboarding", "f3 did not restore from a snapshot (snapshot_seq 0): the snapshot-plus-tail check did not run")
	}
	if st, err := status(ctx, f4); err == nil && st.SnapshotSeq != 0 {
		sysBad("onboarding", "f4 restored from snapshot %d, want a replay from sequence 1", st.SnapshotSeq)
	}

	// (a, c) Unknown outcomes resolved from the log, acknowledged writes checked against it.
	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = keyName(i)
	}
	res := resolve(ops, l, keys, len(clients))
	violations = append(violations, res.violations...)
	// Every read a prefix of the log; monotonic reads per node run.
	violations = append(violations, checkReads(ops, l)...)
	violations = append(violations, checkMonotonic(ops)...)
	violations = append(violations, checkStaleReads(ops, l)...)
	// (b) Linearizability of writes, leader reads and strong follower reads.
	lin := checkLinearizable(res.hist, res.initClient, checkBudget)
	visualized := 0
	for _, b := range lin.Bad {
		if b.Result != porcupine.Illegal {
			violations = append(violations, violation{Kind: "linearizability-inconclusive", From: b.From, To: b.To,
				Msg: fmt.Sprintf("key %s chunk %d (%d ops): porcupine ran out of its %v budget: not proven either way",
					b.Key, b.Index, len(b.Ops), checkBudget)})
			continue
		}
		msg := fmt.Sprintf("key %s chunk %d (%d ops) is not linearizable", b.Key, b.Index, len(b.Ops))
		if b.Stuck != nil {
			msg += fmt.Sprintf("; the longest partial linearization stops before %s [%.3fs..%.3fs] (op #%v; the culprit "+
				"may be an op it already placed, e.g. a stale read: see the visualization)",
				describe(b.Stuck.Input.(kvInput), b.Stuck.Output.(kvOutput)), sec(b.Stuck.Call), sec(b.Stuck.Return), b.Stuck.Metadata)
		}
		if visualized < maxVisualized {
			visualized++
			path := filepath.Join(dir, fmt.Sprintf("porcupine-%s-chunk%d.html", b.Key, b.Index))
			b.Info.AddAnnotations(faultAnnotations(faults, b.From, b.To))
			if err := porcupine.VisualizePath(kvModel, b.Info, path); err != nil {
				msg += fmt.Sprintf("; visualization: %v", err)
			} else {
				msg += "; visualization: " + path
			}
		}
		violations = append(violations, violation{Kind: "not-linearizable", Msg: msg, From: b.From, To: b.To})
	}

	sum := summary(seed, dir, ops, faults, res, lin, violations, notes)
	writeFile(t, dir, "summary.txt", sum)
	t.Log("\n" + sum)
	if len(violations) > 0 {
		var b strings.Builder
		for i, v := range violations {
			fmt.Fprintf(&b, "%d. [%s] %s\n%s", i+1, v.Kind, v.Msg, faultsNear(faults, v.From, v.To))
		}
		writeFile(t, dir, "violations.txt", b.String())
		shown := violations[:min(len(violations), maxPrinted)]
		var s strings.Builder
		for _, v := range shown {
			fmt.Fprintf(&s, "[%s] %s\n%s", v.Kind, v.Msg, faultsNear(faults, v.From, v.To))
		}
		t.Errorf("seed %d: %d violations (first %d below; all in %s):\n%s", seed, len(violations), len(shown),
			filepath.Join(dir, "violations.txt"), s.String())
	}
}

// healAll ends every fault (proxies pass, the leader continues, exited processes restart) and returns notes about
// processes that were not running although no fault was holding them down.
func healAll(ctx context.Context, c *cluster) []string {
	var notes []string
	for _, p := range c.allProxies() {
		p.Pass()
	}
	c.leader.cont()
	if c.nats.exited() {
		notes = append(notes, "nats-server was not running after the fault phase")
		_ = restart(ctx, c.nats)
	}
	for _, n := range c.nodes() {
		if n.exited() {
			notes = append(notes, fmt.Sprintf("%s was not running after the fault phase (exit code %d); restarted", n.name,
				n.current().ExitCode()))
			if err := restart(ctx, n.proc); err != nil {
				notes = append(notes, fmt.Sprintf("%s: restart: %v", n.name, err))
			}
		}
	}
	return notes
}

// nodeStatus is the part of GET /v1/status the checks read.
type nodeStatus struct {
	State       string `json:"state"`
	AppliedSeq  uint64 `json:"applied_seq"`
	LogLastSeq  uint64 `json:"log_last_seq"`
	SnapshotSeq uint64 `json:"snapshot_seq"`
	Error       string `json:"error"`
}

var harnessClient = &http.Client{Timeout: 10 * time.Second}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return doJSON(req, http.StatusOK, v)
}

// doJSON sends req and decodes the answer into v, which must have status want.
func doJSON(req *http.Request, want int, v any) error {
	resp, err := harnessClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, v)
}

func status(ctx context.Context, n *node) (nodeStatus, error) {
	var st nodeStatus
	err := getJSON(ctx, n.url+"/v1/status", &st)
	return st, err
}

func statuses(nodes []*node) string {
	var parts []string
	for _, n := range nodes {
		st, err := status(context.Background(), n)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", n.name, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %+v", n.name, st))
	}
	return strings.Join(parts, "; ")
}

// poll calls cond until it reports true, ctx ends, or timeout passes; it returns the last error cond gave.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not within %v: %w", timeout, last)
			}
			return fmt.Errorf("not within %v", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// quiesce waits until the leader has applied the whole log and every follower has applied as much as the leader.
func quiesce(ctx context.Context, c *cluster) error {
	return poll(ctx, quiesceTimeout, func() (bool, error) {
		ls, err := status(ctx, c.leader)
		if err != nil {
			return false, err
		}
		if ls.AppliedSeq != ls.LogLastSeq {
			return false, fmt.Errorf("leader applied %d of %d", ls.AppliedSeq, ls.LogLastSeq)
		}
		for _, f := range c.followers {
			fs, err := status(ctx, f)
			if err != nil {
				return false, err
			}
			if fs.AppliedSeq != ls.AppliedSeq {
				return false, fmt.Errorf("%s applied %d, leader %d", f.name, fs.AppliedSeq, ls.AppliedSeq)
			}
		}
		return true, nil
	})
}

// finalSnapshotAndTail takes a snapshot on the leader, then writes a few keys outside the clients' key space, so
// that a follower onboarding now restores the snapshot and then catches up a tail from the log.
func finalSnapshotAndTail(ctx context.Context, c *cluster) error {
	err := poll(ctx, time.Minute, func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.leader.url+"/v1/snapshots", nil)
		resp, err := harnessClient.Do(req)
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusCreated, fmt.Errorf("POST /v1/snapshots: %d", resp.StatusCode)
	})
	if err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	for i := range 5 {
		err := poll(ctx, 30*time.Second, func() (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/v1/kv/tail-%d", c.leader.url, i),
				strings.NewReader(fmt.Sprintf("tail-%d", i)))
			resp, err := harnessClient.Do(req)
			if err != nil {
				return false, err
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK, fmt.Errorf("PUT tail-%d: %d", i, resp.StatusCode)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// digestAnswer is GET /v1/digest's answer.
type digestAnswer struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

func digest(ctx context.Context, n *node, seq uint64) (digestAnswer, error) {
	var d digestAnswer
	err := getJSON(ctx, fmt.Sprintf("%s/v1/digest?min_seq=%d&timeout=30s", n.url, seq), &d)
	return d, err
}

// faultsNear lists the faults active during [from, to] or healed less than 10 s before it.
func faultsNear(faults []faultRecord, from, to int64) string {
	var b strings.Builder
	for _, f := range faults {
		if f.Start <= to && f.End >= from-int64(10*time.Second) {
			state := "active"
			if f.End < from {
				state = fmt.Sprintf("healed %.1fs before", sec(from-f.End))
			}
			fmt.Fprintf(&b, "      fault (%s): %s\n", state, f)
		}
	}
	if b.Len() == 0 {
		b.WriteString("      (no fault active or recently healed)\n")
	}
	return b.String()
}

func faultAnnotations(faults []faultRecord, from, to int64) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, f := range faults {
		if f.Start <= to && f.End >= from {
			out = append(out, porcupine.Annotation{Tag: "faults", Start: f.Start, End: f.End,
				Description: f.plannedFault.String(), Details: f.String(), BackgroundColor: "#f9d0d0"})
		}
	}
	return out
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Errorf("write %s: %v", name, err)
	}
}

func writeLog(t *testing.T, dir string, l *logIndex) {
	var b strings.Builder
	for _, e := range l.entries {
		fmt.Fprintf(&b, "%d %.3fs %s %s %s\n", e.Seq, sec(e.At), e.Op, e.Key, e.Value)
	}
	writeFile(t, dir, "log.txt", b.String())
}

func writeHistory(t *testing.T, dir string, ops []op, faults []faultRecord) {
	var b strings.Builder
	for i := range ops {
		b.WriteString(ops[i].String() + "\n")
	}
	writeFile(t, dir, "history.txt", b.String())
	b.Reset()
	for _, f := range faults {
		b.WriteString(f.String() + "\n")
	}
	writeFile(t, dir, "faults.txt", b.String())
}

// summary is the end-of-run report.
func summary(seed int64, dir string, ops []op, faults []faultRecord, res *resolution, lin linReport,
	violations []violation, notes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "=== chaos summary: seed %d, run dir %s\n", seed, dir)
	var counts [numKinds][6]int
	for i := range ops {
		counts[ops[i].Kind][ops[i].Out]++
	}
	fmt.Fprintf(&b, "ops: %d\n", len(ops))
	for k := range numKinds {
		total := 0
		var parts []string
		for o, n := range counts[k] {
			if n > 0 {
				total += n
				parts = append(parts, fmt.Sprintf("%s %d", outcome(o), n))
			}
		}
		fmt.Fprintf(&b, "  %-13s %6d  (%s)\n", k, total, strings.Join(parts, ", "))
	}
	byKind := map[string]int{}
	skipped := map[string]int{}
	problems := 0
	for _, f := range faults {
		if f.Skipped != "" {
			skipped[f.Kind]++
		} else {
			byKind[f.Kind]++
		}
		if f.Err != "" {
			problems++
		}
	}
	fmt.Fprintf(&b, "faults: %d injected", len(faults))
	for _, k := range faultKinds {
		if byKind[k] > 0 || skipped[k] > 0 {
			fmt.Fprintf(&b, ", %s %d", k, byKind[k])
			if skipped[k] > 0 {
				fmt.Fprintf(&b, " (+%d skipped)", skipped[k])
			}
		}
	}
	fmt.Fprintf(&b, "; heals that did not bring the system back within %v: %d\n", readyTimeout, problems)
	fmt.Fprintf(&b, "unknown write outcomes: %d (committed per the log: %d, never committed: %d)\n",
		res.unknown, res.committed, res.dropped)
	gap, from, to := longestWriteOutage(ops)
	fmt.Fprintf(&b, "longest write outage: %.1fs [%.3fs..%.3fs]\n%s", sec(gap), sec(from), sec(to), faultsNear(faults, from, to))
	fmt.Fprintf(&b, "linearizability: %d ops in %d chunks (largest %d) checked in %v\n", lin.Ops, lin.Chunks,
		lin.LargestChunk, lin.Took.Round(time.Millisecond))
	for _, n := range notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	vk := map[string]int{}
	for _, v := range violations {
		vk[v.Kind]++
	}
	kinds := make([]string, 0, len(vk))
	for k := range vk {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "violations: %d", len(violations))
	for _, k := range kinds {
		fmt.Fprintf(&b, ", %s %d", k, vk[k])
	}
	b.WriteString("\n")
	return b.String()
}
