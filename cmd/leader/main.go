// Command leader runs a replikv leader: it accepts every write, publishes it to the JetStream replication log,
// applies it to its store, serves reads and takes snapshots. Run "leader --help" for flags; "leader healthcheck"
// probes a running leader's /readyz (for container healthchecks).
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
	err := cli.Run(context.Background(), os.Args[1:], os.Getenv, os.Stderr, config.ParseLeader, node.RunLeader)
	os.Exit(cli.ExitCode(err, os.Stderr))
}
