// Package compose is the end-to-end test suite of the Docker Compose
// deployment (docker-compose.yml, deploy/, scripts/compose.sh). It builds the
// images once, starts the whole stack under its own project name and leader
// port, drives a write load through it and breaks it in the ways operators
// meet: followers joining, dying and losing the network, a NATS node dying,
// the leader restarting. Every test file carries the build tag compose:
//
//	go test -tags compose -count=1 -timeout 40m ./tests/compose/
//
// Without a reachable Docker engine the tests skip, unless CI=true, where
// they fail.
package compose
