// Package tests is replikv's multi-process end-to-end suite. It builds the real leader and follower binaries, runs
// them against their embedded NATS server and a real S3 server (versitygw), and checks them only through their
// flags, environment and HTTP API, as the public contract specifies.
//
// The tests carry the build tag e2e, so a plain `go test ./...` skips them. Run them with
//
//	go test -tags e2e -count=1 -timeout 30m ./tests/
package tests
