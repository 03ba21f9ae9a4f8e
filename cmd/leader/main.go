// Command leader runs a replikv leader: it accepts every write, publishes it to the JetStream replication log,
// applies it to its store, serves reads and takes snapshots. Run "leader --help" for flags; "leader healthcheck"
// probes a running leader's /readyz (for container healthchecks).
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
	cfg, err := config.ParseLeader(args, getenv, stderr)
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
	return node.RunLeader(ctx, cfg, log)
}
