//go:build chaos

// Package chaos is replikv's fault-injection suite. It runs the real binaries (one leader, two followers) against a
// real nats-server process and a real S3 server (versitygw), each node behind TCP fault proxies, drives a random
// client load of writes, conditional writes, deletes and reads at every consistency level, injects faults from one
// seeded schedule (kills, pauses, NATS link cuts and delays, S3 outages, wiped and full disks), and checks the
// recorded history: linearizability of the leader's and the strong reads with porcupine (unknown write outcomes
// resolved from the replication log first), every acknowledged write in the log, every read a state of the log's
// prefix it claims (Replikv-Seq), monotonic reads per node run, equal digests at quiescence, and a follower
// rebuilt from a snapshot equal to one replayed from sequence 1.
//
// The files carry the build tag chaos, so plain `go test ./...` skips them. Run a CI-sized run (3 minutes of faults)
// with
//
//	go test -tags chaos -run TestChaos -count=1 -v -timeout 30m ./tests/chaos/ -args -chaos.seed=N -chaos.duration=3m
//
// A failing seed replays the same fault schedule (and the same client choices; the interleaving of course differs).
// The model's own tests (TestModel_*) run in seconds and need no processes:
//
//	go test -tags chaos -run TestModel -count=1 ./tests/chaos/
package chaos
