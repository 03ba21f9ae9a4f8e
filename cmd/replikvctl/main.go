// Command replikvctl is the operator's CLI of replikv: the cluster status, key-value commands, snapshots, a digest
// check of every node and a live view of an onboarding, through any node's HTTP API. See internal/ctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/replikv/replikv/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.Std())
	stop()
	os.Exit(code)
}
