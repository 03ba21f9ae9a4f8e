// Package api is the HTTP API of a replikv node, for both roles.
//
// The handler built by NewHandler implements the public contract: the key-value endpoints under /v1/kv, the
// transactions of /v1/txn (txn.go), the digest, the status object, the leader-only snapshot and follower endpoints,
// and the unauthenticated /healthz, /readyz and /metrics. It depends on a node only through the small interfaces
// declared here (Node, View, Writer, TxnWriter, Redirector, Snapshotter, FollowerLister); the node package implements
// them. With Config.AuthToken set, every /v1/ request needs a bearer token: the auth token allows everything,
// Config.ReadToken only GET and HEAD (403 forbidden otherwise); a missing or wrong token answers 401.
//
// Every response, errors and redirects included, carries the Replikv-Seq header: the sequence of the view a read was
// served from, otherwise the node's applied sequence at the time of the answer. Errors are JSON objects
// {"error": "<human message>", "code": "<machine code>"}; the codes are the Code* constants.
//
// Server wraps net/http's server with the lifecycle a node needs to drain in-flight requests on SIGTERM; ListenTLS
// serves HTTPS with a caller's tls.Config (see package tlsconf for one that reloads its certificate).
package api
