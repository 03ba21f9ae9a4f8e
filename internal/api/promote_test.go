package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// switchingWriter is a Writer whose node follows until leading is set (api.Leading).
type switchingWriter struct {
	fakeWriter
	leading atomic.Bool
}

func (w *switchingWriter) Leading() bool { return w.leading.Load() }

// fakePromoter records the timeout it was given and answers st or err.
type fakePromoter struct {
	st      Status
	err     error
	timeout time.Duration
}

func (p *fakePromoter) Promote(_ context.Context, timeout time.Duration) (Status, error) {
	p.timeout = timeout
	return p.st, p.err
}

// A node whose Writer may follow is a follower while Leading is false: writes and transactions are redirected
// without reaching the Writer, leader-only paths answer 404; once it leads they are its own.
func TestHandler_LeadingSwitchesRole(t *testing.T) {
	w := &switchingWriter{fakeWriter: fakeWriter{res: WriteResult{Version: 7}}}
	h := newLeader(t, newFakeNode(3), w, func(c *Config) {
		c.Redirector = fakeRedirector{url: "http://leader:8080"}
		c.Txn = nil
	})
	rec := do(h, http.MethodPut, "/v1/kv/a", strings.NewReader("x"))
	if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "http://leader:8080/v1/kv/a" {
		t.Fatalf("PUT while following: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do(h, http.MethodPost, "/v1/txn", strings.NewReader("{}")); rec.Code != http.StatusTemporaryRedirect {
		t.Fatalf("POST /v1/txn while following: %d", rec.Code)
	}
	for _, path := range []string{"/v1/snapshots", "/v1/followers"} {
		checkAnswer(t, do(h, http.MethodGet, path, nil), http.StatusNotFound, CodeNotFound)
	}
	if n := len(w.calls()); n != 0 {
		t.Fatalf("the Writer got %d writes while its node followed", n)
	}

	w.leading.Store(true)
	if rec := do(h, http.MethodPut, "/v1/kv/a", strings.NewReader("x")); rec.Code != http.StatusOK {
		t.Fatalf("PUT while leading: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/v1/snapshots", "/v1/followers"} {
		if rec := do(h, http.MethodGet, path, nil); rec.Code != http.StatusOK {
			t.Fatalf("GET %s while leading: %d", path, rec.Code)
		}
	}

	if _, err := NewHandler(Config{Node: newFakeNode(0), Writer: w}); err == nil {
		t.Fatal("a Writer that may follow without a Redirector was accepted")
	}
}

func TestHandler_Promote(t *testing.T) {
	p := &fakePromoter{st: Status{Role: RoleLeader, ID: "f1", State: StateReady, Epoch: 9}}
	h := newFollower(t, newFakeNode(3), fakeRedirector{url: "http://leader:8080"})
	checkAnswer(t, do(h, http.MethodPost, "/v1/promote", nil), http.StatusNotFound, CodeNotFound)

	h = newLeader(t, newFakeNode(3), &fakeWriter{}, func(c *Config) { c.Promoter = p })
	rec := do(h, http.MethodPost, "/v1/promote", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"epoch":9`) ||
		p.timeout != DefaultPromoteTimeout {
		t.Fatalf("promote: %d %s, timeout %v", rec.Code, rec.Body, p.timeout)
	}
	if rec := do(h, http.MethodPost, "/v1/promote?timeout=90s", nil); rec.Code != http.StatusOK ||
		p.timeout != 90*time.Second {
		t.Fatalf("promote?timeout=90s: %d, timeout %v", rec.Code, p.timeout)
	}
	for _, q := range []string{"timeout=0s", "timeout=-1s", "timeout=11m", "timeout=soon", "timeout=1s&timeout=2s",
		"wait=1s"} {
		checkAnswer(t, do(h, http.MethodPost, "/v1/promote?"+q, nil), http.StatusBadRequest, CodeInvalidRequest)
	}
	rec = do(h, http.MethodGet, "/v1/promote", nil)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
		t.Fatalf("GET /v1/promote: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	for _, tc := range []struct {
		err  error
		code string
		says string
	}{
		{fmt.Errorf("node: %w: held by %q", ErrLeaderAlive, "leader-1"), CodeLeaderAlive, "held by"},
		{fmt.Errorf("node: %w: catching_up", ErrNotEligible), CodeNotEligible, "catching_up"},
		{fmt.Errorf("node: %w", ErrFailoverOff), CodeFailoverOff, "--failover off"},
	} {
		p.err = tc.err
		rec := do(h, http.MethodPost, "/v1/promote", nil)
		checkAnswer(t, rec, http.StatusConflict, tc.code)
		if !strings.Contains(rec.Body.String(), tc.says) {
			t.Fatalf("promote refused with %v: %s, want it to say %q", tc.err, rec.Body, tc.says)
		}
	}
}
