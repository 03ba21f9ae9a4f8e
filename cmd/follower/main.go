// Command follower runs a replikv follower: it onboards from the newest snapshot and the replication log, follows
// the log, serves reads and redirects writers to the leader. Run "follower --help" for flags; "follower healthcheck"
// probes a running follower's /readyz (for container healthchecks).
package main

import (
	"context"
	"io"
	"os"

	_ "golang.org/x/crypto/x509roots/fallback" // TLS roots for S3 endpoints in scratch images

	"github.com/replikv/replikv/internal/cli"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/node"
)

func main() {
	os.Exit(cli.ExitCode(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr), os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	probe := len(args) > 0 && args[0] == "healthcheck"
	if probe {
		args = args[1:]
	}
	cfg, err := config.ParseFollower(args, getenv, stderr)
	if err != nil {
		return err
	}
	if probe {
		return cli.Healthcheck(ctx, cfg.HTTPAddr)
	}
	log, err := cli.NewLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := cli.SignalContext(ctx)
	defer stop()
	return node.RunFollower(ctx, cfg, log)
}
