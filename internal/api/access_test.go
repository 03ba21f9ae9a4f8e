package api

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/replikv/replikv/internal/testutil/testca"
	"github.com/replikv/replikv/internal/tlsconf"
)

const (
	testAuthToken = "auth-t0ken"
	testReadToken = "read-t0ken"
)

// withTokens configures both tokens.
func withTokens(c *Config) { c.AuthToken, c.ReadToken = testAuthToken, testReadToken }

// TestHandler_ReadToken: the read token allows GET and HEAD under /v1/ and answers 403 forbidden to anything else;
// the auth token allows everything; no token or a wrong one answers 401; /healthz, /readyz and /metrics need none.
func TestHandler_ReadToken(t *testing.T) {
	const (
		none  = ""
		read  = "Bearer " + testReadToken
		auth  = "Bearer " + testAuthToken
		wrong = "Bearer " + testReadToken + "x"
	)
	tests := []struct {
		name   string
		method string
		target string
		auth   string
		status int
		code   string
	}{
		{"GetKeyRead", http.MethodGet, "/v1/kv/a", read, http.StatusOK, ""},
		{"HeadKeyRead", http.MethodHead, "/v1/kv/a", read, http.StatusOK, ""},
		{"ListRead", http.MethodGet, "/v1/kv?prefix=a", read, http.StatusOK, ""},
		{"DigestRead", http.MethodGet, "/v1/digest", read, http.StatusOK, ""},
		{"StatusRead", http.MethodGet, "/v1/status", read, http.StatusOK, ""},
		{"SnapshotListRead", http.MethodGet, "/v1/snapshots", read, http.StatusOK, ""},
		{"FollowersRead", http.MethodGet, "/v1/followers", read, http.StatusOK, ""},
		{"LowercaseSchemeRead", http.MethodGet, "/v1/status", "bearer " + testReadToken, http.StatusOK, ""},
		{"UnknownPathRead", http.MethodGet, "/v1/nothing", read, http.StatusNotFound, CodeNotFound},

		{"PutRead", http.MethodPut, "/v1/kv/a", read, http.StatusForbidden, CodeForbidden},
		{"DeleteRead", http.MethodDelete, "/v1/kv/a", read, http.StatusForbidden, CodeForbidden},
		{"SnapshotCreateRead", http.MethodPost, "/v1/snapshots", read, http.StatusForbidden, CodeForbidden},
		{"PatchRead", http.MethodPatch, "/v1/kv/a", read, http.StatusForbidden, CodeForbidden},

		{"GetKeyAuth", http.MethodGet, "/v1/kv/a", auth, http.StatusOK, ""},
		{"StatusAuth", http.MethodGet, "/v1/status", auth, http.StatusOK, ""},
		{"PutAuth", http.MethodPut, "/v1/kv/a", auth, http.StatusOK, ""},
		{"DeleteAuth", http.MethodDelete, "/v1/kv/a", auth, http.StatusOK, ""},
		{"SnapshotCreateAuth", http.MethodPost, "/v1/snapshots", auth, http.StatusCreated, ""},
		{"PatchAuth", http.MethodPatch, "/v1/kv/a", auth, http.StatusMethodNotAllowed, CodeMethodNotAllowed},

		{"GetKeyNone", http.MethodGet, "/v1/kv/a", none, http.StatusUnauthorized, CodeUnauthorized},
		{"PutNone", http.MethodPut, "/v1/kv/a", none, http.StatusUnauthorized, CodeUnauthorized},
		{"GetKeyWrong", http.MethodGet, "/v1/kv/a", wrong, http.StatusUnauthorized, CodeUnauthorized},
		{"PutWrong", http.MethodPut, "/v1/kv/a", wrong, http.StatusUnauthorized, CodeUnauthorized},
		{"ReadTokenAsBasic", http.MethodGet, "/v1/status", "Basic " + testReadToken, http.StatusUnauthorized,
			CodeUnauthorized},

		{"Healthz", http.MethodGet, "/healthz", none, http.StatusOK, ""},
		{"Readyz", http.MethodGet, "/readyz", none, http.StatusOK, ""},
		{"Metrics", http.MethodGet, "/metrics", none, http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(1)
			node.put("a", "v", 1)
			w := &fakeWriter{res: WriteResult{Version: 2}}
			h := newLeader(t, node, w, withTokens)
			var headers []string
			if tc.auth != "" {
				headers = []string{"Authorization", tc.auth}
			}
			rec := do(h, tc.method, tc.target, strings.NewReader("v"), headers...)
			checkAnswer(t, rec, tc.status, tc.code)
			if body := rec.Body.String(); strings.Contains(body, testAuthToken) || strings.Contains(body, testReadToken) {
				t.Error("answer echoes a token")
			}
			if tc.status == http.StatusForbidden || tc.status == http.StatusUnauthorized {
				if len(w.calls()) != 0 {
					t.Error("a refused write reached the writer")
				}
			}
		})
	}
}

// TestHandler_ReadTokenOnFollower: a follower redirects writes with the auth token and refuses them with the read
// token, before any redirect.
func TestHandler_ReadTokenOnFollower(t *testing.T) {
	h, err := NewHandler(Config{Node: newFakeNode(1), Redirector: fakeRedirector{url: "https://leader:8080"},
		AuthToken: testAuthToken, ReadToken: testReadToken})
	if err != nil {
		t.Fatal(err)
	}
	rec := do(h, http.MethodPut, "/v1/kv/a", strings.NewReader("v"), "Authorization", "Bearer "+testReadToken)
	checkAnswer(t, rec, http.StatusForbidden, CodeForbidden)
	if loc := rec.Header().Get("Location"); loc != "" {
		t.Fatalf("a forbidden write was redirected to %q", loc)
	}
	rec = do(h, http.MethodPut, "/v1/kv/a", strings.NewReader("v"), "Authorization", "Bearer "+testAuthToken)
	checkAnswer(t, rec, http.StatusTemporaryRedirect, "")
	if loc := rec.Header().Get("Location"); loc != "https://leader:8080/v1/kv/a" {
		t.Fatalf("Location = %q", loc)
	}
}

// startTLS serves h over HTTPS with the certificate files of tf (mutual TLS when mutual) and returns the server.
func startTLS(t *testing.T, h http.Handler, tf testca.Files, mutual bool) *Server {
	t.Helper()
	files := tlsconf.Files{CertFile: tf.CertFile, KeyFile: tf.KeyFile}
	if mutual {
		files.ClientCAFile = tf.CAFile
	}
	r, err := tlsconf.NewReloader(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ListenTLS("127.0.0.1:0", h, r.ServerConfig(), zap.NewNop())
	if err != nil {
		t.Fatalf("ListenTLS: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// tlsRequest sends one request with c and returns its status and body.
func tlsRequest(t *testing.T, c *http.Client, method, url, token string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("v"))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestServer_HTTPS(t *testing.T) {
	tf := testca.WriteFiles(t)
	node := newFakeNode(1)
	node.put("a", "v", 1)
	h := newLeader(t, node, &fakeWriter{res: WriteResult{Version: 2}}, withTokens)
	s := startTLS(t, h, tf, false)
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL() = %q, want https://", s.URL())
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: tf.CA.Pool()}}}
	for _, tc := range []struct {
		method, path, token string
		status              int
	}{
		{http.MethodGet, "/v1/kv/a", testReadToken, http.StatusOK},
		{http.MethodPut, "/v1/kv/a", testReadToken, http.StatusForbidden},
		{http.MethodPut, "/v1/kv/a", testAuthToken, http.StatusOK},
		{http.MethodGet, "/v1/kv/a", testAuthToken, http.StatusOK},
		{http.MethodGet, "/v1/kv/a", "", http.StatusUnauthorized},
		{http.MethodGet, "/readyz", "", http.StatusOK},
	} {
		status, body, err := tlsRequest(t, c, tc.method, s.URL()+tc.path, tc.token)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if status != tc.status {
			t.Fatalf("%s %s with token %q: %d %s, want %d", tc.method, tc.path, tc.token, status, body, tc.status)
		}
	}
	// Plain HTTP to the HTTPS port is refused, and a client that does not trust the CA does not connect.
	status, _, err := tlsRequest(t, &http.Client{Timeout: 10 * time.Second}, http.MethodGet, "http://"+s.Addr()+"/readyz", "")
	if err != nil || status != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the HTTPS port: %d %v, want 400", status, err)
	}
	if _, _, err := tlsRequest(t, &http.Client{Timeout: 10 * time.Second}, http.MethodGet, s.URL()+"/readyz", ""); err == nil {
		t.Fatal("a client without the CA connected")
	}
}

func TestServer_MutualTLS(t *testing.T) {
	tf := testca.WriteFiles(t)
	s := startTLS(t, newLeader(t, newFakeNode(1), &NoopWriter{}, nil), tf, true)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: tf.CA.Pool(), Certificates: certs}}}
	}
	if _, _, err := tlsRequest(t, client(), http.MethodGet, s.URL()+"/healthz", ""); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	other := testca.New(t, "other")
	if _, _, err := tlsRequest(t, client(other.Issue(t).TLS(t)), http.MethodGet, s.URL()+"/healthz", ""); err == nil {
		t.Fatal("a client with a certificate of another CA was served")
	}
	status, body, err := tlsRequest(t, client(tf.CA.Issue(t).TLS(t)), http.MethodGet, s.URL()+"/healthz", "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("a client with a certificate of the CA: %d %s %v", status, body, err)
	}
}

func TestListenTLS_NoConfig(t *testing.T) {
	if _, err := ListenTLS("127.0.0.1:0", http.NotFoundHandler(), nil, nil); err == nil {
		t.Fatal("ListenTLS without a TLS configuration succeeded")
	}
}
