package ctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/replikv/replikv/internal/api"
)

func TestRun_KV(t *testing.T) {
	const token = "tok-kv-123"
	leader := newMemNode(api.RoleLeader, "l1")
	lsrv := serve(t, leader, token)
	env := []string{"REPLIKV_URL=" + lsrv.URL, "REPLIKV_TOKEN=" + token}

	t.Run("PutArgument", func(t *testing.T) {
		r := runCLI(t, env, "", "put", "a/b c", "hello")
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, `put a/b c version 1`)
	})
	t.Run("PutStdin", func(t *testing.T) {
		r := runCLI(t, env, "from stdin", "put", "k2")
		wantCode(t, r, ExitOK)
		wantValue(t, env, "k2", "from stdin")
	})
	t.Run("PutFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "v")
		if err := os.WriteFile(path, []byte("from\x00file"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, env, "", "put", "k3", "--file", path, "-o", "json")
		wantCode(t, r, ExitOK)
		var w writeOutput
		if err := json.Unmarshal([]byte(r.out), &w); err != nil || w.Key != "k3" || w.Version == 0 || w.Status != 200 {
			t.Fatalf("json %q: %+v %v", r.out, w, err)
		}
		wantValue(t, env, "k3", "from\x00file")
	})
	t.Run("PutTooLarge", func(t *testing.T) {
		r := runCLI(t, env, strings.Repeat("x", maxValueLen+1), "put", "big")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "longer than 524288 bytes")
	})
	t.Run("PutValueAndFile", func(t *testing.T) {
		wantCode(t, runCLI(t, env, "", "put", "k", "v", "--file", "x"), ExitUsage)
	})
	t.Run("GetJSON", func(t *testing.T) {
		r := runCLI(t, env, "", "get", "a/b c", "-o", "json")
		wantCode(t, r, ExitOK)
		var g getResult
		if err := json.Unmarshal([]byte(r.out), &g); err != nil {
			t.Fatal(err)
		}
		if g.Key != "a/b c" || string(g.Value) != "hello" || g.Version != 1 || g.Seq == 0 {
			t.Fatalf("get: %+v", g)
		}
	})
	t.Run("GetMissing", func(t *testing.T) {
		r := runCLI(t, env, "", "get", "nope")
		wantCode(t, r, ExitNotFound)
		mustContain(t, "stderr", r.err, "not_found")
	})
	t.Run("GetStrongMinSeq", func(t *testing.T) {
		r := runCLI(t, env, "", "get", "k2", "--consistency", "strong", "--min-seq", "2", "--wait", "2s")
		wantCode(t, r, ExitOK)
		if r.out != "from stdin" {
			t.Fatalf("get: %q", r.out)
		}
	})
	t.Run("GetMinSeqTimeout", func(t *testing.T) {
		r := runCLI(t, env, "", "get", "k2", "--min-seq", "1000", "--wait", "50ms")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "504", "timeout")
	})
	t.Run("IfAbsent", func(t *testing.T) {
		wantCode(t, runCLI(t, env, "", "put", "k2", "x", "--if-absent"), ExitPrecondition)
		wantCode(t, runCLI(t, env, "", "put", "fresh", "x", "--if-absent"), ExitOK)
	})
	t.Run("IfMatch", func(t *testing.T) {
		wantCode(t, runCLI(t, env, "", "put", "a/b c", "x", "--if-match", "99"), ExitPrecondition)
		wantCode(t, runCLI(t, env, "", "put", "a/b c", "x", "--if-match", "1"), ExitOK)
		wantCode(t, runCLI(t, env, "", "put", "a", "x", "--if-match", "1", "--if-absent"), ExitUsage)
	})
	t.Run("Del", func(t *testing.T) {
		r := runCLI(t, env, "", "del", "fresh")
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, "deleted fresh version")
		wantCode(t, runCLI(t, env, "", "del", "fresh"), ExitNotFound)
	})
	t.Run("WrongToken", func(t *testing.T) {
		r := runCLI(t, []string{"REPLIKV_URL=" + lsrv.URL, "REPLIKV_TOKEN=wrong-secret"}, "", "get", "k2")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "401", "REPLIKV_TOKEN")
		if strings.Contains(r.out+r.err, "wrong-secret") {
			t.Fatalf("token printed:\n%s%s", r.out, r.err)
		}
	})
	t.Run("TokenFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// The file wins over the environment.
		r := runCLI(t, []string{"REPLIKV_TOKEN=wrong"}, "", "--url", lsrv.URL, "--token-file", path, "get", "k2")
		wantCode(t, r, ExitOK)
		r = runCLI(t, []string{"REPLIKV_URL=" + lsrv.URL, "REPLIKV_TOKEN_FILE=" + path}, "", "get", "k2")
		wantCode(t, r, ExitOK)
		r = runCLI(t, env, "", "--token-file", filepath.Join(t.TempDir(), "missing"), "get", "k2")
		wantCode(t, r, ExitError)
	})
}

// wantValue checks a key's value through the CLI.
func wantValue(t *testing.T, env []string, key, want string) {
	t.Helper()
	r := runCLI(t, env, "", "get", key)
	wantCode(t, r, ExitOK)
	if r.out != want {
		t.Fatalf("get %s: %q, want %q", key, r.out, want)
	}
}

// TestRun_WriteThroughFollower: a follower answers a write with 307 to its leader; the CLI sends it again there with
// the same body and token, and only there.
func TestRun_WriteThroughFollower(t *testing.T) {
	const token = "tok-redirect"
	leader := newMemNode(api.RoleLeader, "l1")
	lsrv := serve(t, leader, token)
	follower := newMemNode(api.RoleFollower, "f1")
	follower.leaderURL = lsrv.URL
	fsrv := serve(t, follower, token)
	env := []string{"REPLIKV_URL=" + fsrv.URL, "REPLIKV_TOKEN=" + token}

	r := runCLI(t, env, "", "put", "x/y", "v1")
	wantCode(t, r, ExitOK)
	if got := leader.data["x/y"]; string(got.value) != "v1" {
		t.Fatalf("leader holds %q", got.value)
	}
	if auth, _ := leader.lastAuth.Load().(string); auth != "Bearer "+token {
		t.Fatalf("the leader got Authorization %q", auth)
	}
	wantCode(t, runCLI(t, env, "", "del", "x/y"), ExitOK)
	wantCode(t, runCLI(t, env, "", "del", "x/y"), ExitNotFound)

	t.Run("NoLeader", func(t *testing.T) {
		orphan := newMemNode(api.RoleFollower, "f2")
		osrv := serve(t, orphan, "")
		r := runCLI(t, nil, "", "--url", osrv.URL, "put", "k", "v")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "no_leader")
	})
}

// TestClient_RedirectRefused: a redirect elsewhere than the same request on another node, or from https to http,
// is not followed, and the token never reaches its target.
func TestClient_RedirectRefused(t *testing.T) {
	const token = "tok-refused"
	evil := newMemNode(api.RoleLeader, "evil")
	esrv := serve(t, evil, "")
	tests := []struct {
		name, location string
	}{
		{"OtherPath", esrv.URL + "/v1/kv/other"},
		{"OtherQuery", esrv.URL + "/v1/kv/k?x=1"},
		{"Relative", "/v1/kv/k"},
		{"NotHTTP", "ftp://" + strings.TrimPrefix(esrv.URL, "http://") + "/v1/kv/k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsrv := redirectServer(t, tc.location)
			r := runCLI(t, []string{"REPLIKV_TOKEN=" + token}, "", "--url", fsrv.URL, "put", "k", "v")
			wantCode(t, r, ExitError)
			mustContain(t, "stderr", r.err, "redirect")
		})
	}
	if n := evil.requests.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
	t.Run("Downgrade", func(t *testing.T) {
		tsrv := httptest.NewTLSServer(redirectTo(esrv.URL + "/v1/kv/k"))
		t.Cleanup(tsrv.Close)
		r := runCLI(t, []string{"REPLIKV_TOKEN=" + token}, "", "--url", tsrv.URL, "--cacert", tlsCA(t, tsrv),
			"put", "k", "v")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "from https")
		if n := evil.requests.Load(); n != 0 {
			t.Fatalf("the http target got %d requests", n)
		}
	})
	t.Run("TwoHops", func(t *testing.T) {
		second := redirectServer(t, esrv.URL+"/v1/kv/k")
		first := redirectServer(t, second.URL+"/v1/kv/k")
		r := runCLI(t, nil, "", "--url", first.URL, "put", "k", "v")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "redirected again")
	})
}

// TestRun_List: every page is read (with min_seq at the first page's sequence after it), --limit stops early, and
// -o json is one document.
func TestRun_List(t *testing.T) {
	leader := newMemNode(api.RoleLeader, "l1")
	lsrv := serve(t, leader, "")
	env := []string{"REPLIKV_URL=" + lsrv.URL}
	for i := range 25 {
		wantCode(t, runCLI(t, env, "", "put", fmt.Sprintf("p/%02d", i), fmt.Sprintf("v%d", i)), ExitOK)
	}
	wantCode(t, runCLI(t, env, "", "put", "q/other", "x"), ExitOK)

	t.Run("AllPages", func(t *testing.T) {
		before := leader.requests.Load()
		r := runCLI(t, env, "", "list", "p/", "--page-size", "10", "--values")
		wantCode(t, r, ExitOK)
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(lines) != 26 || !strings.HasPrefix(lines[0], "KEY") {
			t.Fatalf("%d lines:\n%s", len(lines), r.out)
		}
		for i, l := range lines[1:] {
			f := strings.Fields(l)
			if f[0] != fmt.Sprintf("p/%02d", i) || f[2] != fmt.Sprintf("v%d", i) {
				t.Fatalf("line %d: %q", i, l)
			}
		}
		if n := leader.requests.Load() - before; n != 3 {
			t.Fatalf("%d requests, want 3 pages", n)
		}
	})
	t.Run("Limit", func(t *testing.T) {
		r := runCLI(t, env, "", "list", "p/", "--page-size", "5", "--limit", "12", "-o", "json")
		wantCode(t, r, ExitOK)
		var doc struct {
			Items []listItem `json:"items"`
			Next  string     `json:"next"`
			Seq   uint64     `json:"seq"`
		}
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
			t.Fatalf("%v:\n%s", err, r.out)
		}
		if len(doc.Items) != 12 || doc.Next != "p/11" || doc.Seq != 26 || doc.Items[11].Key != "p/11" {
			t.Fatalf("items %d next %q seq %d", len(doc.Items), doc.Next, doc.Seq)
		}
	})
	t.Run("After", func(t *testing.T) {
		r := runCLI(t, env, "", "list", "--after", "p/23", "-o", "json")
		wantCode(t, r, ExitOK)
		var doc struct {
			Items []listItem `json:"items"`
		}
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Items) != 2 || doc.Items[0].Key != "p/24" || doc.Items[1].Key != "q/other" {
			t.Fatalf("%+v", doc.Items)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		r := runCLI(t, env, "", "list", "none/", "-o", "json")
		wantCode(t, r, ExitOK)
		var doc map[string]any
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
			t.Fatalf("%v: %s", err, r.out)
		}
	})
	t.Run("BadPageSize", func(t *testing.T) {
		wantCode(t, runCLI(t, env, "", "list", "--page-size", "0"), ExitUsage)
	})
}

// TestRun_WriteTimeout: a write that gets no answer in --timeout says that it may have been committed, exit 4.
func TestRun_WriteTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	r := runCLI(t, nil, "", "--url", srv.URL, "--timeout", "50ms", "put", "k", "v")
	wantCode(t, r, ExitUnreachable)
	mustContain(t, "stderr", r.err, "may or may not have been committed")
}

// A write the server answers with outcome_unknown (503 when its ack was lost, 504 past the write timeout) exits 8,
// for put, del and txn alike, and says to read the key back.
func TestRun_WriteOutcomeUnknown(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"the write was sent to the log but not confirmed","code":"outcome_unknown"}`))
		}))
		t.Cleanup(srv.Close)
		for _, args := range [][]string{{"put", "k", "v"}, {"del", "k"}, {"txn"}} {
			r := runCLI(t, nil, "put k v\n", append([]string{"--url", srv.URL}, args...)...)
			wantCode(t, r, ExitOutcomeUnknown)
			mustContain(t, "stderr", r.err, "outcome_unknown", "read the key back before retrying")
		}
	}
	// Other 503s stay plain errors: nothing was committed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"node unavailable, retry later","code":"unavailable"}`))
	}))
	t.Cleanup(srv.Close)
	wantCode(t, runCLI(t, nil, "", "--url", srv.URL, "put", "k", "v"), ExitError)
}

func TestRun_IdempotencyKey(t *testing.T) {
	var got sync.Map // path -> Idempotency-Key
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Method+" "+r.URL.Path, r.Header.Get("Idempotency-Key"))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		if r.URL.Path == "/v1/txn" {
			_, _ = w.Write([]byte(`{"version":7,"ops":1}`))
			return
		}
		_, _ = w.Write([]byte(`{"key":"k","version":7}`))
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		args []string
		req  string
	}{
		{[]string{"put", "k", "v", "--idempotency-key", "p-1"}, "PUT /v1/kv/k"},
		{[]string{"del", "k", "--idempotency-key", "d-1"}, "DELETE /v1/kv/k"},
		{[]string{"txn", "--idempotency-key", "t-1"}, "POST /v1/txn"},
	} {
		r := runCLI(t, nil, "put k v\n", append([]string{"--url", srv.URL}, tc.args...)...)
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, "version 7", "already written with this idempotency key")
		if k, _ := got.Load(tc.req); k != tc.args[len(tc.args)-1] {
			t.Errorf("%s sent Idempotency-Key %q, want %q", tc.req, k, tc.args[len(tc.args)-1])
		}
	}
	// Without the flag no header is sent.
	wantCode(t, runCLI(t, nil, "", "--url", srv.URL, "put", "k", "v"), ExitOK)
	if k, _ := got.Load("PUT /v1/kv/k"); k != "" {
		t.Errorf("put without --idempotency-key sent %q", k)
	}
}
