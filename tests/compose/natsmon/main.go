// Command natsmon is the compose suite's window onto the monitoring endpoints of the stack's NATS servers. They sit
// on the internal backend network, which publishes no port and which the host may not reach (Docker Desktop never
// routes to container addresses), so the suite runs natsmon in a container attached to both networks and publishes
// its port on 127.0.0.1. A request for /<server>/<path> is forwarded to http://<server>:<port>/<path>, for the
// servers named on the command line only:
//
//	natsmon -listen :8222 -port 8222 nats1 nats2 nats3
//
// It is a test tool: it is built by the suite (tests/compose/main_test.go), never part of a deployment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "natsmon: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("natsmon", flag.ContinueOnError)
	listen := fs.String("listen", ":8222", "address to serve on")
	port := fs.Int("port", 8222, "monitoring port of the NATS servers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name at least one NATS server")
	}
	// A dead server must not hold a request: the suite polls while servers are killed.
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 5 * time.Second,
	}
	mux := http.NewServeMux()
	for _, server := range fs.Args() {
		target := &url.URL{Scheme: "http", Host: net.JoinHostPort(server, strconv.Itoa(*port))}
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = tr
		mux.Handle("/"+server+"/", http.StripPrefix("/"+server, proxy))
	}
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
