//go:build e2e

package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const loadPrefix = "load/"

// loadOpts shapes a write load. Zero values take the defaults.
type loadOpts struct {
	workers int           // concurrent writers (default 4)
	keys    int           // keys per writer (default 64); each key has exactly one writer
	pace    time.Duration // minimum time between one writer's requests (default 0: as fast as answers come)
	prefix  string        // key prefix (default loadPrefix); a test that runs several loads gives each its own
}

// load is a running write load: PUTs, DELETEs and conditional writes (If-Match, If-None-Match: *) of small values.
// Each key belongs to one worker, so a key's history is sequential and every acknowledged write can be checked
// exactly. The workers are owned by load: stop cancels them and waits.
type load struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	workers  []*loadWorker
	acked    atomic.Int64 // 200 and 202 answers to mutations
	failed   atomic.Int64 // answers that leave the outcome unknown (transport errors, 5xx, ...)
	stopOnce sync.Once
	ledger   ledger
	prefix   string
}

// loadOp is one mutation attempt on a key.
type loadOp struct {
	del     bool
	value   []byte
	acked   bool   // 200/202: committed with version
	version uint64 // valid when acked
}

// ledger is every mutation attempt by key, in issue order, plus invariant violations the workers saw.
type ledger struct {
	prefix     string // every key of the load starts with it
	ops        map[string][]loadOp
	violations []string
	unknown    []string // why outcomes were unknown, one line per write
	acked      int64
	failed     int64
}

type loadWorker struct {
	id      int
	c       *client
	rng     *mrand.Rand
	keys    []string
	pace    time.Duration
	l       *load
	hist    map[string][]loadOp
	known   map[string]knownKey
	issues  []string
	unknown []string // why outcomes were unknown
	seq     int
}

// knownKey is what the worker believes about a key; valid is false after an unknown outcome.
type knownKey struct {
	valid   bool
	exists  bool
	version uint64
}

// startLoad starts the workers against target. The test must call stop (a cleanup also does).
func startLoad(t *testing.T, target *client, opts loadOpts) *load {
	t.Helper()
	if opts.workers == 0 {
		opts.workers = 4
	}
	if opts.keys == 0 {
		opts.keys = 64
	}
	if opts.prefix == "" {
		opts.prefix = loadPrefix
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, prefix: opts.prefix}
	for w := range opts.workers {
		wk := &loadWorker{
			id: w, c: target, pace: opts.pace, l: l,
			rng:   mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), uint64(w))),
			hist:  map[string][]loadOp{},
			known: map[string]knownKey{},
		}
		for k := range opts.keys {
			wk.keys = append(wk.keys, fmt.Sprintf("%sw%02d/k%04d", opts.prefix, w, k))
		}
		l.workers = append(l.workers, wk)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			wk.run(ctx)
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

// waitAcked blocks until the load has at least n acknowledged writes in total.
func (l *load) waitAcked(t *testing.T, n int64) {
	t.Helper()
	eventually(t, 60*time.Second, func() (bool, string) {
		a := l.acked.Load()
		return a >= n, fmt.Sprintf("load acked %d writes, want %d (failed %d)", a, n, l.failed.Load())
	})
}

// stop cancels the workers, waits for them and returns the ledger. Idempotent.
func (l *load) stop() ledger {
	l.stopOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		l.ledger = ledger{ops: map[string][]loadOp{}, acked: l.acked.Load(), failed: l.failed.Load(), prefix: l.prefix}
		for _, w := range l.workers {
			for k, ops := range w.hist {
				l.ledger.ops[k] = ops
			}
			l.ledger.violations = append(l.ledger.violations, w.issues...)
			l.ledger.unknown = append(l.ledger.unknown, w.unknown...)
		}
	})
	return l.ledger
}

func (w *loadWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		key := w.keys[w.rng.IntN(len(w.keys))]
		w.step(ctx, key)
		if w.pace > 0 && !waitCtx(ctx, w.pace) {
			return
		}
	}
}

// waitCtx waits d or until ctx ends; it reports whether the full wait elapsed.
func waitCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func (w *loadWorker) step(ctx context.Context, key string) {
	k := w.known[key]
	if !k.valid && w.rng.IntN(4) == 0 {
		w.resync(ctx, key)
		k = w.known[key]
	}
	hdr := http.Header{}
	r := w.rng.IntN(100)
	op := loadOp{}
	switch {
	case k.valid && k.exists && r < 15:
		op.del = true
		if r < 5 {
			hdr.Set("If-Match", strconv.Quote(strconv.FormatUint(k.version, 10)))
		}
	case k.valid && k.exists && r < 40:
		hdr.Set("If-Match", strconv.Quote(strconv.FormatUint(k.version, 10)))
	case k.valid && !k.exists && r < 30:
		hdr.Set("If-None-Match", "*")
	}
	method := http.MethodPut
	var body []byte
	if op.del {
		method = http.MethodDelete
	} else {
		w.seq++
		suffix := make([]byte, 4+w.rng.IntN(24))
		_, _ = rand.Read(suffix)
		body = fmt.Appendf(nil, "w%d-%d-%x", w.id, w.seq, suffix)
		op.value = body
	}
	// Not derived from ctx: stopping the load lets the last request finish, so every answer stays definite.
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	resp, err := w.c.do(rctx, method, kvPath(key), body, hdr)
	cancel()
	switch {
	case err == nil && (resp.Code == http.StatusOK || resp.Code == http.StatusAccepted):
		var d writeDoc
		if jerr := json.Unmarshal(resp.Body, &d); jerr != nil || d.Version == 0 || d.Key != key {
			w.issues = append(w.issues, fmt.Sprintf("%s %s: bad write answer %s", method, key, resp))
		}
		if k.valid && d.Version <= k.version {
			w.issues = append(w.issues, fmt.Sprintf("%s %s: version %d not above previous %d", method, key, d.Version, k.version))
		}
		if etag := resp.Header.Get("ETag"); method == http.MethodPut && etag != strconv.Quote(strconv.FormatUint(d.Version, 10)) {
			w.issues = append(w.issues, fmt.Sprintf("PUT %s: ETag %q for version %d", key, etag, d.Version))
		}
		op.acked, op.version = true, d.Version
		w.hist[key] = append(w.hist[key], op)
		w.known[key] = knownKey{valid: true, exists: !op.del, version: d.Version}
		w.l.acked.Add(1)
	case err == nil && (resp.Code == http.StatusPreconditionFailed || resp.Code == http.StatusNotFound && op.del):
		// Not applied. The worker is the key's only writer, so its belief can only be stale if an earlier write with
		// an unknown outcome was committed after all.
		if !w.hadUnknown(key) {
			w.issues = append(w.issues, fmt.Sprintf("%s %s (%v): %d although this worker is the key's only writer and knew %+v",
				method, key, hdr, resp.Code, k))
		}
		w.known[key] = knownKey{}
	default:
		// Unknown outcome: the write may or may not be in the log.
		w.hist[key] = append(w.hist[key], op)
		w.known[key] = knownKey{}
		w.l.failed.Add(1)
		reason := fmt.Sprint(err)
		if err == nil {
			reason = resp.String()
		}
		w.unknown = append(w.unknown, fmt.Sprintf("%s %s: %s", method, key, reason))
		if err == nil && resp.Code < 500 {
			w.issues = append(w.issues, fmt.Sprintf("%s %s: unexpected answer %s", method, key, resp))
		}
		waitCtx(ctx, 20*time.Millisecond)
	}
}

// hadUnknown reports whether a write to key had an unknown outcome.
func (w *loadWorker) hadUnknown(key string) bool {
	for _, op := range w.hist[key] {
		if !op.acked {
			return true
		}
	}
	return false
}

// resync learns the key's current version after an unknown outcome.
func (w *loadWorker) resync(ctx context.Context, key string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := w.c.do(rctx, http.MethodGet, kvPath(key), nil, nil)
	if err != nil {
		return
	}
	switch resp.Code {
	case http.StatusOK:
		v, perr := strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
		if perr == nil {
			w.known[key] = knownKey{valid: true, exists: true, version: v}
		}
	case http.StatusNotFound:
		w.known[key] = knownKey{valid: true}
	}
}

// requireDefinite fails the test if any write had an unknown outcome (for tests where the leader stays healthy).
func (lg ledger) requireDefinite(t *testing.T) {
	t.Helper()
	if len(lg.unknown) == 0 {
		return
	}
	u := lg.unknown
	if len(u) > 10 {
		u = append(u[:10:10], fmt.Sprintf("... and %d more", len(lg.unknown)-10))
	}
	t.Fatalf("%d of %d writes had no definite answer from a healthy leader:\n%s",
		len(lg.unknown), lg.acked+int64(len(lg.unknown)), strings.Join(u, "\n"))
}

// check compares a node's keys under the load prefix with the ledger and returns every problem. For each key, the
// node must hold the result of the last acknowledged write with exactly its version, or the result of a later write
// whose outcome was unknown (with a higher version). Keys the load never wrote must not exist.
func (lg ledger) check(items []listItem) []string {
	problems := append([]string(nil), lg.violations...)
	seen := map[uint64]string{}
	for key, ops := range lg.ops {
		for _, op := range ops {
			if !op.acked {
				continue
			}
			if other, dup := seen[op.version]; dup {
				problems = append(problems, fmt.Sprintf("version %d acknowledged for %s and %s", op.version, other, key))
			}
			seen[op.version] = key
		}
	}
	state := map[string]listItem{}
	for _, it := range items {
		if !strings.HasPrefix(it.Key, lg.prefix) {
			continue
		}
		state[it.Key] = it
		if _, ok := lg.ops[it.Key]; !ok {
			problems = append(problems, fmt.Sprintf("%s: present (version %d) but never written", it.Key, it.Version))
		}
	}
	for key, ops := range lg.ops {
		if p := checkKey(key, ops, state[key], state[key].Key != ""); p != "" {
			problems = append(problems, p)
		}
	}
	return problems
}

func checkKey(key string, ops []loadOp, got listItem, present bool) string {
	last := -1
	for i, op := range ops {
		if op.acked {
			last = i
		}
	}
	var floor uint64
	if last >= 0 {
		a := ops[last]
		floor = a.version
		if a.del && !present || !a.del && present && got.Version == a.version && bytes.Equal(got.Value, a.value) {
			return ""
		}
	} else if !present {
		return "" // never acknowledged, never committed
	}
	for _, op := range ops[last+1:] {
		if op.del && !present || !op.del && present && got.Version > floor && bytes.Equal(got.Value, op.value) {
			return ""
		}
	}
	desc := "absent"
	if present {
		desc = fmt.Sprintf("version %d value %q", got.Version, got.Value)
	}
	want := "nothing acknowledged"
	if last >= 0 {
		want = fmt.Sprintf("acknowledged del=%v version %d value %q", ops[last].del, ops[last].version, ops[last].value)
	}
	return fmt.Sprintf("%s: node has %s; last %s; %d later attempts with unknown outcome",
		key, desc, want, len(ops)-last-1)
}

// verifyLoad lists the node's load keys and fails the test on any ledger problem.
func verifyLoad(t *testing.T, node *client, lg ledger) {
	t.Helper()
	items, _ := node.list(t, lg.prefix)
	problems := lg.check(items)
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		t.Fatalf("%s: %d load keys, %d acked, %d unknown outcomes; problems:\n%s",
			node.base, len(items), lg.acked, lg.failed, strings.Join(problems, "\n"))
	}
	if lg.acked == 0 {
		t.Fatalf("load acknowledged no write")
	}
}

// fill writes n keys "fill/%08d" with random (incompressible) values of size bytes, using workers concurrent
// writers; every write must answer 200.
func fill(t *testing.T, c *client, n, size, workers int) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				_, _ = rand.Read(buf)
				r, err := c.do(ctx, http.MethodPut, kvPath(fmt.Sprintf("fill/%08d", i)), buf, nil)
				if err == nil && r.Code != http.StatusOK {
					err = fmt.Errorf("fill: PUT #%d: %s", i, r)
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("%v", err)
	}
	took := time.Since(start)
	t.Logf("filled %d keys of %d bytes in %v (%.0f writes/s)", n, size, took.Round(time.Millisecond),
		float64(n)/took.Seconds())
}
