// Package natscluster starts a JetStream cluster of in-process NATS servers for tests that need more than one server:
// placement of streams on tagged servers, clients connected to different servers.
package natscluster

import (
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/replikv/replikv/internal/testutil/freeport"
)

// readyTimeout bounds each wait of Start: for a server to accept connections, and for the meta leader to see them all.
const readyTimeout = 30 * time.Second

// Start starts one JetStream server per name, each named after and tagged with its name (server_tags), clustered
// with the others, and waits until the cluster's JetStream meta leader sees every server online with its tags
// (before that, a placement on a server it has not heard from fails with "no suitable peers for placement, peer
// offline"). It returns their client URLs in the order of names. The servers stop at cleanup. JetStream needs at
// least two servers in a cluster.
func Start(t testing.TB, names ...string) []string {
	t.Helper()
	if len(names) < 2 {
		t.Fatalf("natscluster: %d servers; a JetStream cluster needs at least 2", len(names))
	}
	// Every server needs routes to the others from its start (JetStream refuses a cluster without), so the cluster
	// ports are chosen first.
	ports := make([]int, len(names))
	routes := make([]*url.URL, len(names))
	for i := range names {
		ports[i] = freeport.Must(t)
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))}
	}
	srvs := make([]*server.Server, len(names))
	for i, name := range names {
		s, err := server.NewServer(&server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Tags:       jwt.TagList{name},
			Cluster:    server.ClusterOpts{Name: "natscluster", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		})
		if err != nil {
			t.Fatalf("natscluster: server %s: %v", name, err)
		}
		s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		// Under -race, with a second test suite running beside it on a two-CPU machine, a server once took over 10 s.
		if !s.ReadyForConnections(readyTimeout) {
			t.Fatalf("natscluster: server %s not ready within %v", name, readyTimeout)
		}
		srvs[i] = s
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		online := onlinePeers(srvs)
		if online == len(srvs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("natscluster: the JetStream meta leader sees %d of %d servers online after %v", online, len(srvs),
				readyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	return urls
}

// onlinePeers returns how many servers the JetStream meta leader knows as online, with JetStream and with current
// statistics (which carry the server's tags): the servers placement can choose from. It is 0 while there is no
// meta leader.
func onlinePeers(srvs []*server.Server) int {
	for _, s := range srvs {
		if s.JetStreamIsLeader() {
			return len(s.JetStreamClusterPeers())
		}
	}
	return 0
}
