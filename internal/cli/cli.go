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
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/replikv/replikv/internal/config"
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
		return Healthcheck(ctx, cfg.Shared().HTTPAddr)
	}
	log, err := NewLogger(cfg.Shared().LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := SignalContext(ctx)
	defer stop()
	return run(ctx, cfg, log)
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

// Healthcheck probes http://127.0.0.1:<port of httpAddr>/readyz and returns nil on 200. Scratch container images
// have no curl, so the binaries carry this probe as the "healthcheck" subcommand.
func Healthcheck(ctx context.Context, httpAddr string) error {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return fmt.Errorf("healthcheck: %w: --http-addr %q: %w", config.ErrUsage, httpAddr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
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
