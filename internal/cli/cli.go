// Package cli holds what both binaries' main packages share: logger set-up, signal handling, exit codes and the
// built-in health probe used by container healthchecks.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/tlsconf"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// NewLogger builds a JSON zap logger at level writing to w.
func NewLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("cli: log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// Node is a binary's configuration (config.Leader or config.Follower): it has the settings both binaries take.
type Node interface{ Shared() config.Common }

// Run is all a binary's main does with its arguments. "healthcheck [flags]" probes the /readyz of the node those
// flags describe. Otherwise it parses the flags and the environment with parse, builds the logger, and runs the node
// with run until SIGINT or SIGTERM. Its error goes to ExitCode.
func Run[C Node](ctx context.Context, args []string, getenv func(string) string, stderr io.Writer,
	parse func([]string, func(string) string, io.Writer) (C, error), run func(context.Context, C, *zap.Logger) error) error {
	probe := len(args) > 0 && args[0] == "healthcheck"
	if probe {
		args = args[1:]
	}
	cfg, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	if probe {
		return Healthcheck(ctx, cfg.Shared())
	}
	log, err := NewLogger(cfg.Shared().LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ensureProcs(getenv, log)
	ctx, stop := SignalContext(ctx)
	defer stop()
	return run(ctx, cfg, log)
}

// MinProcs is the fewest Go processors (GOMAXPROCS) a node runs with unless the GOMAXPROCS environment variable says
// otherwise.
//
// The runtime gives a process limited to one CPU (by its CPU affinity or its cgroup's CPU limit) one processor, and
// with one processor the store's background work starves request handling: while pebble flushes a memtable or runs a
// compaction, its goroutines hand the processor to each other, and goroutines woken by the network (an HTTP request,
// the log server's acknowledgement) wait in the global run queue until the runtime preempts them. A leader pinned to
// one CPU left every write waiting 0.4-1.5 s per flush or compaction; with two processors on the same CPU the
// kernel's scheduler interleaves the two threads, and the longest write during the store's work fell from 830 ms to
// 50 ms for 9% more CPU per write (BenchmarkLeader_StoreStalls measures both). Under a cgroup CPU
// limit of one CPU the two threads may run at once on a host with more CPUs and be throttled for the rest of the
// CFS period (100 ms by default), which is far shorter. Raising it also ends the runtime's own updates of GOMAXPROCS
// when a cgroup's CPU limit changes: a node that started with one CPU keeps two processors.
const MinProcs = 2

// procsFor returns the GOMAXPROCS a node should run with, given the runtime's current one and the GOMAXPROCS
// environment variable: the current one if the variable is set (the operator decides) or it is at least MinProcs,
// else MinProcs.
func procsFor(current int, env string) int {
	if env != "" || current >= MinProcs {
		return current
	}
	return MinProcs
}

// MsgProcsRaised is the message of the line a node logs when it raises GOMAXPROCS (with "from" and "to").
const MsgProcsRaised = "raised GOMAXPROCS so that the store's flushes and compactions cannot starve request handling (set GOMAXPROCS to override)"

// ensureProcs raises GOMAXPROCS to procsFor's answer and logs it when it changes.
func ensureProcs(getenv func(string) string, log *zap.Logger) {
	cur := runtime.GOMAXPROCS(0)
	if want := procsFor(cur, getenv("GOMAXPROCS")); want != cur {
		runtime.GOMAXPROCS(want)
		log.Info(MsgProcsRaised, zap.Int("from", cur), zap.Int("to", want))
	}
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// ExitCode maps a run error to an exit code: usage errors 2, help 0, others 1. It prints the error to stderr.
func ExitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, config.ErrHelp):
		return ExitOK
	case errors.Is(err, config.ErrUsage):
		fmt.Fprintln(stderr, "error:", err)
		return ExitUsage
	default:
		fmt.Fprintln(stderr, "error:", err)
		return ExitError
	}
}

// Healthcheck probes http://127.0.0.1:<port of c.HTTPAddr>/readyz and returns nil on 200. Scratch container images
// have no curl, so the binaries carry this probe as the "healthcheck" subcommand.
//
// With c.TLSCert the probe speaks HTTPS and accepts only a server that presents the node's own certificate (the
// leaf of c.TLSCert, whatever names it holds: the probe connects by a loopback address); with c.TLSClientCA (mutual
// TLS) it presents that certificate as its client certificate, which must then be signed by one of those CAs and
// allow client authentication.
func Healthcheck(ctx context.Context, c config.Common) error {
	httpAddr := c.HTTPAddr
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return fmt.Errorf("healthcheck: %w: --http-addr %q: %w", config.ErrUsage, httpAddr, err)
	}
	scheme, client := "http", http.DefaultClient
	if c.TLSCert != "" {
		tc, err := tlsconf.ProbeConfig(c.TLSFiles())
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		scheme = "https"
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	return nil
}
