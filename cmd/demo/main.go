// Command demo is `make demo`: it builds and starts a real leader (embedded NATS, local snapshot directory), runs a
// live write load, takes a snapshot, starts a new follower with empty storage in the middle of the load, shows its
// onboarding progress (restore bytes, catch-up sequence, ETA), checks that the follower's digest equals the leader's
// at the same sequence, and prints `replikvctl status` and `replikvctl verify` of the two nodes, given only the
// leader's URL: the CLI finds the follower through the API.
//
//	go run ./cmd/demo            (or: make demo)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replikv/replikv/internal/ctxtime"
	"github.com/replikv/replikv/internal/procrun"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

type options struct {
	keys       int
	valueSize  int
	writers    int
	afterReady time.Duration
	workDir    string
	keep       bool
	binDir     string
}

func run(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.IntVar(&o.keys, "keys", 100000, "keys written before the snapshot")
	fs.IntVar(&o.valueSize, "value-size", 128, "value size in bytes")
	fs.IntVar(&o.writers, "writers", 16, "concurrent writers in the live load")
	fs.DurationVar(&o.afterReady, "after-ready", 3*time.Second, "how long the load keeps running after the follower is ready")
	fs.StringVar(&o.workDir, "dir", "", "working directory (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory")
	fs.StringVar(&o.binDir, "bin", "", "directory holding prebuilt leader, follower and replikvctl binaries (default: build them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir := o.workDir
	if dir == "" {
		d, err := os.MkdirTemp("", "replikv-demo-")
		if err != nil {
			return err
		}
		dir = d
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }

	bin := o.binDir
	if bin == "" {
		bin = filepath.Join(dir, "bin")
		say("building leader, follower and replikvctl")
		for _, name := range []string{"leader", "follower", "replikvctl"} {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, name), "./cmd/"+name)
			cmd.Stdout, cmd.Stderr = out, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("build %s (run the demo from the repository root): %w", name, err)
			}
		}
	}
	snapDir := filepath.Join(dir, "snapshots")

	say("starting the leader (embedded NATS with JetStream, snapshots in %s)", snapDir)
	leader, err := startProc(ctx, filepath.Join(bin, "leader"), filepath.Join(dir, "leader.log"),
		"--data-dir", filepath.Join(dir, "leader"), "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--snapshots", "file://"+snapDir, "--snapshot-interval", "0")
	if err != nil {
		return err
	}
	defer leader.stop()
	if err := waitReady(ctx, leader.url, 60*time.Second); err != nil {
		return fmt.Errorf("leader: %w (log: %s)", err, leader.logPath)
	}
	say("leader ready at %s, NATS at %s", leader.url, leader.natsURL)

	load := &writeLoad{url: leader.url, valueSize: o.valueSize}
	say("writing %d keys of %d bytes", o.keys, o.valueSize)
	if err := load.fill(ctx, o.keys, o.writers, out); err != nil {
		return err
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load.run(loadCtx, o.writers, o.keys) }()

	say("live load running (%d writers); taking a snapshot", o.writers)
	var manifest struct {
		Seq   uint64 `json:"seq"`
		Keys  uint64 `json:"keys"`
		Bytes int64  `json:"bytes"`
	}
	if err := postJSON(ctx, leader.url+"/v1/snapshots", &manifest); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	say("snapshot at seq %d: %d keys, %s compressed", manifest.Seq, manifest.Keys, human(manifest.Bytes))

	say("starting a new follower with empty storage while the load continues")
	follower, err := startProc(ctx, filepath.Join(bin, "follower"), filepath.Join(dir, "follower.log"),
		"--data-dir", filepath.Join(dir, "follower"), "--http-addr", "127.0.0.1:0", "--nats-url", leader.natsURL,
		"--snapshots", "file://"+snapDir, "--id", "demo-follower")
	if err != nil {
		return err
	}
	defer follower.stop()
	if err := watchOnboarding(ctx, follower.url, out); err != nil {
		return fmt.Errorf("follower: %w (log: %s)", err, follower.logPath)
	}
	say("follower is ready; the load keeps running for %s", o.afterReady)
	select {
	case <-time.After(o.afterReady):
	case <-ctx.Done():
		return ctx.Err()
	}
	stopLoad()
	wg.Wait()
	say("load stopped: %d writes acknowledged, %d failed", load.ok.Load(), load.failed.Load())

	ld, fd, err := sameSeqDigests(ctx, leader.url, follower.url, 60*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    leader   seq %d keys %d digest %s\n", ld.Seq, ld.Keys, ld.Digest)
	fmt.Fprintf(out, "    follower seq %d keys %d digest %s\n", fd.Seq, fd.Keys, fd.Digest)
	if ld != fd {
		return errors.New("digests differ")
	}
	var st status
	if err := getJSON(ctx, follower.url+"/v1/status", &st); err == nil {
		say("follower onboarded from snapshot seq %d", st.SnapshotSeq)
	}
	ctl := filepath.Join(bin, "replikvctl")
	for _, args := range [][]string{{"status"}, {"verify"}} {
		if err := runCtl(ctx, out, ctl, leader.url, args...); err != nil {
			return err
		}
	}
	say("OK: the follower's digest equals the leader's at seq %d", ld.Seq)
	return nil
}

// runCtl runs replikvctl against the leader's URL alone, as an operator would, and prints the command and its
// output; an exit code other than 0 fails the demo.
func runCtl(ctx context.Context, out io.Writer, ctl, url string, args ...string) error {
	fmt.Fprintf(out, "==> replikvctl %s   (REPLIKV_URL=%s)\n", strings.Join(args, " "), url)
	cmd := exec.CommandContext(ctx, ctl, args...)
	cmd.Env = append(os.Environ(), "REPLIKV_URL="+url, "REPLIKV_TOKEN=", "REPLIKV_TOKEN_FILE=", "REPLIKV_OUTPUT=table")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("replikvctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// proc is a started leader or follower and the addresses it logged.
type proc struct {
	*procrun.Process
	url     string
	natsURL string
	logPath string
}

// startProc starts a binary, tees its JSON log to a file and reads the bound addresses from it.
func startProc(ctx context.Context, path, logPath string, args ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	r, err := procrun.Start(exec.Command(path, args...), logFile)
	if err != nil {
		return nil, err
	}
	p := &proc{Process: r, logPath: logPath}
	lw := r.Log()
	wantNATS := strings.HasSuffix(path, "leader")
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		addr, natsURL := lw.String("http listening", "addr"), lw.String("embedded nats listening", "url")
		if addr != "" && (natsURL != "" || !wantNATS) {
			p.url, p.natsURL = "http://"+addr, natsURL
			return p, nil
		}
		select {
		case <-tick.C:
		case <-r.Done():
			return nil, fmt.Errorf("%s exited at start; see %s", filepath.Base(path), logPath)
		case <-deadline:
			p.stop()
			return nil, fmt.Errorf("%s did not start in time; see %s", filepath.Base(path), logPath)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		}
	}
}

// stop ends the process with SIGTERM (SIGKILL after 15 s) and waits for it.
func (p *proc) stop() { p.Stop(15 * time.Second) }

type status struct {
	State       string `json:"state"`
	AppliedSeq  uint64 `json:"applied_seq"`
	LogLastSeq  uint64 `json:"log_last_seq"`
	SnapshotSeq uint64 `json:"snapshot_seq"`
	Error       string `json:"error"`
	Progress    struct {
		BytesDone  int64  `json:"bytes_done"`
		BytesTotal int64  `json:"bytes_total"`
		TargetSeq  uint64 `json:"target_seq"`
	} `json:"progress"`
}

type digest struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var st status
		if err := getJSON(ctx, url+"/v1/status", &st); err == nil && st.State == "ready" {
			return nil
		}
		if err := ctxtime.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("not ready in time")
}

// watchOnboarding prints a live progress line until the follower is ready.
func watchOnboarding(ctx context.Context, url string, out io.Writer) error {
	start := time.Now()
	deadline := start.Add(5 * time.Minute)
	var lastSeq uint64
	lastAt := time.Now()
	rate := 0.0
	prevState := ""
	for time.Now().Before(deadline) {
		var st status
		if err := getJSON(ctx, url+"/v1/status", &st); err == nil {
			if st.State != prevState {
				if prevState != "" {
					fmt.Fprintln(out)
				}
				prevState = st.State
			}
			line := fmt.Sprintf("    [%5.1fs] %-11s", time.Since(start).Seconds(), st.State)
			switch st.State {
			case "restoring":
				p := st.Progress
				pct := 0.0
				if p.BytesTotal > 0 {
					pct = 100 * float64(p.BytesDone) / float64(p.BytesTotal)
				}
				line += fmt.Sprintf(" snapshot %s / %s (%.0f%%)", human(p.BytesDone), human(p.BytesTotal), pct)
			case "catching_up", "ready":
				now := time.Now()
				if dt := now.Sub(lastAt).Seconds(); dt > 0 && lastSeq > 0 && st.AppliedSeq >= lastSeq {
					rate = 0.7*rate + 0.3*float64(st.AppliedSeq-lastSeq)/dt
				}
				lastSeq, lastAt = st.AppliedSeq, now
				line += fmt.Sprintf(" applied %d / log %d (lag %d)", st.AppliedSeq, st.LogLastSeq, st.LogLastSeq-min(st.LogLastSeq, st.AppliedSeq))
				if st.State == "catching_up" && rate > 0 && st.LogLastSeq > st.AppliedSeq {
					eta := time.Duration(float64(st.LogLastSeq-st.AppliedSeq) / rate * float64(time.Second))
					line += fmt.Sprintf(" ETA %s", eta.Round(100*time.Millisecond))
				}
			case "failed", "degraded":
				line += " " + st.Error
			}
			fmt.Fprintf(out, "\r%-100s", line)
			if st.State == "ready" {
				fmt.Fprintln(out)
				return nil
			}
		}
		if err := ctxtime.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("not ready within 5 minutes")
}

// sameSeqDigests polls both digests until they were taken at the same sequence.
func sameSeqDigests(ctx context.Context, leaderURL, followerURL string, timeout time.Duration) (digest, digest, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ld, fd digest
		if err := getJSON(ctx, leaderURL+"/v1/digest", &ld); err != nil {
			return ld, fd, err
		}
		if err := getJSON(ctx, fmt.Sprintf("%s/v1/digest?min_seq=%d&timeout=10s", followerURL, ld.Seq), &fd); err == nil && fd.Seq == ld.Seq {
			return ld, fd, nil
		}
		if err := ctxtime.Sleep(ctx, 100*time.Millisecond); err != nil {
			return ld, fd, err
		}
	}
	return digest{}, digest{}, errors.New("follower never reached the leader's sequence")
}

// writeLoad writes random keys to the leader and counts outcomes.
type writeLoad struct {
	url       string
	valueSize int
	ok        atomic.Int64
	failed    atomic.Int64
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func (w *writeLoad) put(ctx context.Context, key string, val []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, w.url+"/v1/kv/"+key, bytes.NewReader(val))
	if err != nil {
		w.failed.Add(1)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.failed.Add(1)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		w.ok.Add(1)
	} else {
		w.failed.Add(1)
	}
}

func (w *writeLoad) value(r *rand.Rand) []byte {
	b := make([]byte, w.valueSize)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return b
}

// fill writes keys 0..n-1 with a progress line.
func (w *writeLoad) fill(ctx context.Context, n, writers int, out io.Writer) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= int64(n) {
					return
				}
				w.put(ctx, fmt.Sprintf("user/%08d", k), w.value(r))
			}
		}(uint64(i))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			fmt.Fprintf(out, "\r    %d / %d keys written in %s (%.0f writes/s)%20s\n", min(next.Load(), int64(n)), n,
				time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds(), "")
			if f := w.failed.Load(); f > 0 {
				return fmt.Errorf("%d writes failed while filling", f)
			}
			return ctx.Err()
		case <-t.C:
			fmt.Fprintf(out, "\r    %d / %d keys written", min(next.Load(), int64(n)), n)
		}
	}
}

// run overwrites random existing keys and adds new ones until ctx ends.
func (w *writeLoad) run(ctx context.Context, writers, keys int) {
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 2))
			for ctx.Err() == nil {
				w.put(ctx, fmt.Sprintf("user/%08d", r.IntN(keys+keys/2)), w.value(r))
			}
		}(uint64(i) + 100)
	}
	wg.Wait()
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return doJSON(req, http.StatusOK, v)
}

func postJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	return doJSON(req, http.StatusCreated, v)
}

func doJSON(req *http.Request, want int, v any) error {
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
