// Command follower runs a replikv follower: it onboards from the newest snapshot and the replication log, follows
// the log, serves reads and redirects writers to the leader. Run "follower --help" for flags; "follower healthcheck"
// probes a running follower's /readyz (for container healthchecks).
package main

import (
	"context"
	"os"

	_ "golang.org/x/crypto/x509roots/fallback" // TLS roots for S3 endpoints in scratch images

	"github.com/replikv/replikv/internal/cli"
	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/node"
)

func main() {
	err := cli.Run(context.Background(), os.Args[1:], os.Getenv, os.Stderr, config.ParseFollower, node.RunFollower)
	os.Exit(cli.ExitCode(err, os.Stderr))
}
