//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Fault kinds. Each fault is healed before the next starts.
const (
	fkKillLeader   = "kill-leader"     // SIGKILL, restart on the same data dir
	fkKillFollower = "kill-follower"   // SIGKILL, restart on the same data dir
	fkKillNATS     = "kill-nats"       // SIGKILL nats-server, restart on the same port and store dir
	fkPauseLeader  = "pause-leader"    // SIGSTOP for longer than the lease TTL (10 s), then SIGCONT
	fkCutNATS      = "cut-nats-link"   // one node's NATS proxy cut
	fkDelayNATS    = "delay-nats-link" // one node's NATS proxy adds latency
	fkS3Outage     = "s3-outage"       // every S3 proxy cut
	fkWipeFollower = "wipe-follower"   // SIGKILL, rm -rf the data dir, restart: onboarding again under load
	fkDiskFull     = "disk-full"       // the tmpfs under a follower's data dir filled with ballast; the follower restarted on it
)

var faultKinds = []string{
	fkKillLeader, fkKillFollower, fkKillNATS, fkPauseLeader, fkCutNATS, fkDelayNATS, fkS3Outage, fkWipeFollower, fkDiskFull,
}

// plannedFault is one entry of the schedule: all of it comes from the seed.
type plannedFault struct {
	At     time.Duration // nominal start, from the start of the fault phase
	Kind   string
	Target string        // node name ("leader", "f1", "f2"), "" when the kind names it
	Hold   time.Duration // how long the fault lasts (down time for kills)
	Delay  time.Duration // the added latency of fkDelayNATS
}

func (f plannedFault) String() string {
	s := f.Kind
	if f.Target != "" {
		s += " " + f.Target
	}
	if f.Delay > 0 {
		s += fmt.Sprintf(" +%v", f.Delay)
	}
	return s + fmt.Sprintf(" for %v", f.Hold)
}

// schedule draws the faults for a fault phase of length d from seed: one every 8-10 s (longer after a fault that
// lasts longer), first after 5 s.
func schedule(seed int64, d time.Duration) []plannedFault {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6368616f73)) // "chaos"
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	followers := []string{"f1", "f2"}
	var out []plannedFault
	for at := 5 * time.Second; at < d; {
		f := plannedFault{At: at, Kind: faultKinds[rng.IntN(len(faultKinds))]}
		switch f.Kind {
		case fkKillLeader:
			f.Target, f.Hold = "leader", between(0, 2*time.Second)
		case fkKillFollower:
			f.Target, f.Hold = followers[rng.IntN(2)], between(0, 3*time.Second)
		case fkKillNATS:
			f.Hold = between(time.Second, 3*time.Second)
		case fkPauseLeader:
			f.Target, f.Hold = "leader", 12*time.Second
		case fkCutNATS:
			f.Target, f.Hold = []string{"leader", "f1", "f2"}[rng.IntN(3)], between(3*time.Second, 5*time.Second)
		case fkDelayNATS:
			f.Target, f.Hold = []string{"leader", "f1", "f2"}[rng.IntN(3)], between(5*time.Second, 7*time.Second)
			f.Delay = between(50*time.Millisecond, 300*time.Millisecond).Round(time.Millisecond)
		case fkS3Outage:
			f.Hold = 5 * time.Second
		case fkWipeFollower:
			f.Target, f.Hold = followers[rng.IntN(2)], between(0, time.Second)
		case fkDiskFull:
			f.Target, f.Hold = "f2", between(5*time.Second, 7*time.Second)
		}
		f.Hold = f.Hold.Round(10 * time.Millisecond)
		out = append(out, f)
		at += max(between(8*time.Second, 10*time.Second), f.Hold+3*time.Second)
	}
	return out
}

// faultRecord is a fault as it happened, in the history's clock.
type faultRecord struct {
	plannedFault
	Start, End int64  // ns on the history clock; End is when it was healed and the nodes were ready again
	Skipped    string // why the fault was not injected
	Err        string // a heal that did not bring the system back in time
}

func (r faultRecord) String() string {
	s := fmt.Sprintf("[%8.3fs .. %8.3fs] %s", sec(r.Start), sec(r.End), r.plannedFault)
	if r.Skipped != "" {
		s += " SKIPPED: " + r.Skipped
	}
	if r.Err != "" {
		s += " HEAL PROBLEM: " + r.Err
	}
	return s
}

func sec(ns int64) float64 { return float64(ns) / 1e9 }

// injector runs the schedule against a cluster. Run is called once, by the goroutine that owns the injector.
type injector struct {
	c      *cluster
	clk    *clock
	logf   func(format string, args ...any)
	mu     sync.Mutex
	faults []faultRecord
}

// records returns what was injected so far.
func (in *injector) records() []faultRecord {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]faultRecord(nil), in.faults...)
}

// run injects the planned faults in order until ctx ends or the schedule is done; each is healed before the next.
func (in *injector) run(ctx context.Context, plan []plannedFault) {
	start := time.Now()
	for _, f := range plan {
		wait := time.Until(start.Add(f.At))
		if wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				tm.Stop()
				return
			case <-tm.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		rec := faultRecord{plannedFault: f, Start: in.clk.now()}
		in.logf("fault %s: %s", in.clk.stamp(), f)
		skipped, err := in.inject(f)
		rec.End, rec.Skipped = in.clk.now(), skipped
		if err != nil {
			rec.Err = err.Error()
			in.logf("fault %s healed with a problem: %v", f.Kind, err)
		}
		in.mu.Lock()
		in.faults = append(in.faults, rec)
		in.mu.Unlock()
	}
}

func (in *injector) node(name string) *node { return in.c.nodeByName(name) }

// hold waits d (the fault's length). The fault phase's end does not cut a fault short: it is healed as planned.
func hold(d time.Duration) {
	if d > 0 {
		tm := time.NewTimer(d)
		<-tm.C
	}
}

// inject applies one fault, holds it, heals it, and waits until the affected processes are ready again. It returns
// a reason when the fault was skipped.
func (in *injector) inject(f plannedFault) (skipped string, err error) {
	ctx := context.Background() // a heal always completes, also after the fault phase ends
	c := in.c
	switch f.Kind {
	case fkKillLeader, fkKillFollower:
		n := in.node(f.Target)
		n.kill()
		hold(f.Hold)
		return "", restart(ctx, n.proc)
	case fkKillNATS:
		c.nats.kill()
		hold(f.Hold)
		if err := restart(ctx, c.nats); err != nil {
			return "", err
		}
		return "", waitNodes(ctx, c.nodes())
	case fkPauseLeader:
		if err := c.leader.pause(); err != nil {
			return "", err
		}
		hold(f.Hold)
		c.leader.cont()
		return "", c.leader.waitReady(ctx, readyTimeout)
	case fkCutNATS, fkDelayNATS:
		n := in.node(f.Target)
		if f.Kind == fkCutNATS {
			n.natsProxy.Cut()
		} else {
			n.natsProxy.Delay(f.Delay)
		}
		hold(f.Hold)
		n.natsProxy.Pass()
		return "", waitNodes(ctx, c.nodes())
	case fkS3Outage:
		for _, n := range c.nodes() {
			n.s3Proxy.Cut()
		}
		hold(f.Hold)
		for _, n := range c.nodes() {
			n.s3Proxy.Pass()
		}
		return "", waitNodes(ctx, c.nodes())
	case fkWipeFollower:
		n := in.node(f.Target)
		n.kill()
		if err := wipeDir(n.dataDir); err != nil {
			return "", err
		}
		hold(f.Hold)
		return "", restart(ctx, n.proc)
	case fkDiskFull:
		n := c.diskFollower
		if n == nil {
			return "mount -t tmpfs was refused on this machine", nil
		}
		// A running follower with a preallocated WAL hardly notices a full disk until its next flush, so the
		// follower is also restarted on the full disk halfway: opening a store writes new files.
		ballast := filepath.Join(c.tmpfsMount, "ballast")
		fillErr := fill(ballast)
		hold(f.Hold / 2)
		n.kill()
		if err := n.start(); err != nil {
			return "", err
		}
		hold(f.Hold - f.Hold/2)
		if err := os.Remove(ballast); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if fillErr != nil {
			return "", fillErr
		}
		if n.exited() {
			in.logf("fault disk-full: %s exited on the full disk; restarting it", n.name)
			return "", restart(ctx, n.proc)
		}
		return "", n.waitReady(ctx, readyTimeout)
	}
	return "", fmt.Errorf("unknown fault kind %q", f.Kind)
}

// restart starts an exited process again and waits until it is ready.
func restart(ctx context.Context, p *proc) error {
	if !p.exited() {
		p.kill()
	}
	var err error
	for range 3 { // a port can still be held for a moment by the killed process's sockets
		if err = p.start(); err != nil {
			return err
		}
		if err = p.waitReady(ctx, readyTimeout); err == nil || !p.exited() {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// waitNodes waits until every node answers /readyz with 200.
func waitNodes(ctx context.Context, nodes []*node) error {
	var errs []error
	for _, n := range nodes {
		if n.exited() {
			errs = append(errs, fmt.Errorf("%s is not running", n.name))
			continue
		}
		errs = append(errs, n.waitReady(ctx, readyTimeout))
	}
	return errors.Join(errs...)
}

// wipeDir removes a data dir's contents (the dir may be a mount point's child; it is recreated by the node).
func wipeDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("wipe %s: %w", dir, err)
	}
	return nil
}

// fill writes zeros to path until the filesystem is full (ENOSPC is the expected end).
func fill(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("ballast: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	size := len(buf)
	for {
		if _, err := f.Write(buf[:size]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("ballast: %w", err)
			}
			if size <= 4096 {
				return nil // not even a page left
			}
			size /= 2
		}
	}
}
