// Package ctl is replikvctl, the operator's command-line client of replikv's HTTP API: the cluster status table,
// key-value commands and transactions, snapshots, a digest check of every node (verify) and a live view of an
// onboarding (watch).
//
// Main runs a command line with the process's streams passed in (IO), so that the whole CLI can be tested in-process
// against httptest servers; cmd/replikvctl only wires it to the real process. Commands are built with cobra, which
// also provides shell completion. Every command prints a table (or plain text) by default and one JSON document with
// -o json (watch: one JSON object per line). The exit codes are the Exit* constants.
//
// The client side of the API contract lives in wire.go: JSON shapes decoded leniently (unknown fields ignored), so
// that a newer server does not break an older CLI.
package ctl
