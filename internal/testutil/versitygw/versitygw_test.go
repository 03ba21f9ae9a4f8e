package versitygw

import (
	"net/http"
	"os"
	"testing"
	"time"
)

// answers reports whether anything answers HTTP on the server's endpoint.
func answers(t *testing.T, s *Server) bool {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + s.Endpoint + "/")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if got := resp.Header.Get("Server"); got != "VERSITYGW" {
		t.Fatalf("Server header = %q, want VERSITYGW", got)
	}
	return true
}

func TestServer_StopRestart(t *testing.T) {
	s := Start(t)
	if !answers(t, s) {
		t.Fatal("gateway does not answer after Start")
	}
	if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
		t.Fatalf("Dir %q: %v", s.Dir, err)
	}
	endpoint := s.Endpoint

	s.Stop()
	if answers(t, s) {
		t.Fatal("gateway still answers after Stop")
	}
	s.Stop() // idempotent

	s.Restart(t)
	if s.Endpoint != endpoint {
		t.Fatalf("endpoint changed across Restart: %s -> %s", endpoint, s.Endpoint)
	}
	if !answers(t, s) {
		t.Fatal("gateway does not answer after Restart")
	}
}

func TestFindBinary(t *testing.T) {
	t.Run("EnvMissing", func(t *testing.T) {
		t.Setenv("REPLIKV_VERSITYGW", t.TempDir()+"/nope")
		if _, err := findBinary(); err == nil {
			t.Fatal("want an error for a missing REPLIKV_VERSITYGW path")
		}
	})
	t.Run("EnvSet", func(t *testing.T) {
		p := t.TempDir() + "/versitygw"
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("REPLIKV_VERSITYGW", p)
		got, err := findBinary()
		if err != nil || got != p {
			t.Fatalf("findBinary() = %q, %v; want %q", got, err, p)
		}
	})
}
