// Package journal holds all of replikv's NATS and JetStream code: the embedded server, the replication-log stream,
// the pipelined fenced publisher, the ordered-consumer reader, the leader lease, the follower heartbeats and the
// leader's pressure reports.
//
// No NATS type crosses the package boundary: callers see Conn, Ack, Subscription, Msg, Lease and plain values.
// Failures map onto the package's sentinel errors (ErrWrongLastSeq, ErrUnavailable, ErrNoStream, ...), always
// wrapped with %w so that errors.Is works and the NATS cause stays visible in the message.
//
// Subjects: the log is "replikv.<stream>.log", heartbeats go to "replikv.<stream>.heartbeat", pressure reports to
// "replikv.<stream>.pressure" (both core NATS, not stored), and the leader lease lives in the KV bucket
// "<stream>_leader" under the key "leader". LeaderPermissions and FollowerPermissions list the subjects each role's
// NATS user needs (the embedded server gives them to its users, EmbeddedConfig.Users).
package journal
