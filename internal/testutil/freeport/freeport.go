// Package freeport finds loopback TCP ports for servers that must be told their port before they start (processes,
// clusters whose members name each other's ports). Another process may take such a port before the server binds it;
// a server that can bind port 0 itself and report its address should do that instead.
package freeport

import (
	"fmt"
	"net"
	"testing"
)

// Get returns a TCP port on 127.0.0.1 that was free a moment ago.
func Get() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Must is Get that fails the test or benchmark on error.
func Must(t testing.TB) int {
	t.Helper()
	port, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
