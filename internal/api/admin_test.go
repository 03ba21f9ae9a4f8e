package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewHandler(t *testing.T) {
	node := newFakeNode(0)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "Leader", cfg: Config{Node: node, Writer: &NoopWriter{}}, ok: true},
		{name: "Follower", cfg: Config{Node: node, Redirector: fakeRedirector{}}, ok: true},
		{name: "NoNode", cfg: Config{Writer: &NoopWriter{}}},
		{name: "NoWritePath", cfg: Config{Node: node}},
		{name: "NegativeTimeout", cfg: Config{Node: node, Writer: &NoopWriter{}, WriteTimeout: -1}},
		{name: "ReadAboveMax", cfg: Config{Node: node, Writer: &NoopWriter{}, ReadTimeout: time.Minute,
			MaxReadTimeout: time.Second}},
		{name: "ReadToken", cfg: Config{Node: node, Writer: &NoopWriter{}, AuthToken: "a", ReadToken: "r"}, ok: true},
		{name: "ReadTokenWithoutAuthToken", cfg: Config{Node: node, Writer: &NoopWriter{}, ReadToken: "r"}},
		{name: "ReadTokenIsAuthToken", cfg: Config{Node: node, Writer: &NoopWriter{}, AuthToken: "a", ReadToken: "a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHandler(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestHandler_Status(t *testing.T) {
	tests := []struct {
		name     string
		status   Status
		path     string
		code     int
		contains []string
	}{
		{name: "NoProgress", path: "/v1/status", code: http.StatusOK,
			status:   Status{Role: RoleFollower, ID: "f1", State: StateReady, AppliedSeq: 4, LogLastSeq: 5, Lag: 1},
			contains: []string{`"role":"follower"`, `"id":"f1"`, `"state":"ready"`, `"applied_seq":4`, `"log_last_seq":5`, `"lag":1`, `"snapshot_seq":0`, `"progress":{}`}},
		{name: "Restoring", path: "/v1/status", code: http.StatusOK,
			status:   Status{Role: RoleFollower, State: StateRestoring, Progress: &Progress{BytesDone: 10, BytesTotal: 20}},
			contains: []string{`"progress":{"bytes_done":10,"bytes_total":20}`}},
		{name: "Degraded", path: "/v1/status", code: http.StatusOK,
			status:   Status{Role: RoleLeader, State: StateDegraded, Error: "another leader"},
			contains: []string{`"error":"another leader"`}},
		{name: "RestoringStart", path: "/v1/status", code: http.StatusOK,
			status:   Status{Role: RoleFollower, State: StateRestoring},
			contains: []string{`"progress":{"bytes_done":0,"bytes_total":0}`}},
		{name: "CatchingUpNil", path: "/v1/status", code: http.StatusOK,
			status:   Status{Role: RoleFollower, State: StateCatchingUp, Progress: &Progress{}},
			contains: []string{`"progress":{"target_seq":0}`}},
		{name: "ReadyzReady", path: "/readyz", code: http.StatusOK, status: Status{State: StateReady},
			contains: []string{`"state":"ready"`}},
		{name: "ReadyzCatchingUp", path: "/readyz", code: http.StatusServiceUnavailable,
			status:   Status{State: StateCatchingUp, Progress: &Progress{TargetSeq: 99}},
			contains: []string{`"state":"catching_up"`, `"target_seq":99`}},
		{name: "ReadyzFailed", path: "/readyz", code: http.StatusServiceUnavailable, status: Status{State: StateFailed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(4)
			node.status = tc.status
			rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, tc.path, nil)
			checkAnswer(t, rec, tc.code, "")
			var s Status
			decode(t, rec, &s)
			if s.State != tc.status.State {
				t.Errorf("state = %q, want %q", s.State, tc.status.State)
			}
			for _, c := range tc.contains {
				if !strings.Contains(rec.Body.String(), c) {
					t.Errorf("body %s lacks %s", rec.Body.String(), c)
				}
			}
			if !strings.Contains(rec.Body.String(), `"progress":`) {
				t.Errorf("body %s lacks progress", rec.Body.String())
			}
		})
	}
}

func TestHandler_Snapshots(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		snaps    Snapshotter
		status   int
		code     string
		contains string
	}{
		{name: "Create", method: http.MethodPost, snaps: fakeSnapshots{}, status: http.StatusCreated,
			contains: `"seq":42`},
		{name: "ListEmpty", method: http.MethodGet, snaps: fakeSnapshots{}, status: http.StatusOK,
			contains: `{"snapshots":[]}`},
		{name: "List", method: http.MethodGet, snaps: fakeSnapshots{list: []any{map[string]int{"seq": 2},
			map[string]int{"seq": 1}}}, status: http.StatusOK, contains: `{"snapshots":[{"seq":2},{"seq":1}]}`},
		{name: "Busy", method: http.MethodPost, snaps: fakeSnapshots{err: ErrSnapshotBusy}, status: http.StatusConflict,
			code: CodeSnapshotBusy},
		{name: "NotLeader", method: http.MethodPost, snaps: fakeSnapshots{err: ErrNotLeader},
			status: http.StatusServiceUnavailable, code: CodeNotLeader},
		{name: "WrongMethod", method: http.MethodDelete, snaps: fakeSnapshots{}, status: http.StatusMethodNotAllowed,
			code: CodeMethodNotAllowed},
		{name: "Follower", method: http.MethodPost, status: http.StatusNotFound, code: CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newLeader(t, newFakeNode(1), &fakeWriter{}, func(c *Config) { c.Snapshots = tc.snaps })
			rec := do(h, tc.method, "/v1/snapshots", nil)
			checkAnswer(t, rec, tc.status, tc.code)
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body %s lacks %s", rec.Body.String(), tc.contains)
			}
		})
	}
}

func TestHandler_Followers(t *testing.T) {
	seen := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lister   FollowerLister
		status   int
		code     string
		contains string
	}{
		{name: "None", lister: fakeFollowers{}, status: http.StatusOK, contains: `{"followers":[]}`},
		{name: "Sorted", lister: fakeFollowers{{ID: "b", State: StateReady, AppliedSeq: 3, LastSeen: seen},
			{ID: "a", State: StateCatchingUp, AppliedSeq: 1, Lag: 2, LastSeen: seen}}, status: http.StatusOK,
			contains: `{"followers":[{"id":"a","state":"catching_up","applied_seq":1,"lag":2,` +
				`"last_seen":"2026-11-25T10:00:00Z"},{"id":"b"`},
		{name: "Follower", status: http.StatusNotFound, code: CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newLeader(t, newFakeNode(1), &fakeWriter{}, func(c *Config) { c.Followers = tc.lister })
			rec := do(h, http.MethodGet, "/v1/followers", nil)
			checkAnswer(t, rec, tc.status, tc.code)
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body %s lacks %s", rec.Body.String(), tc.contains)
			}
		})
	}
}

func TestHandler_LeaderOnlyOnFollower(t *testing.T) {
	h := newFollower(t, newFakeNode(1), fakeRedirector{url: "http://l"})
	for _, target := range []string{"/v1/snapshots", "/v1/followers"} {
		t.Run(strings.TrimPrefix(target, "/v1/"), func(t *testing.T) {
			rec := do(h, http.MethodGet, target, nil)
			checkAnswer(t, rec, http.StatusNotFound, CodeNotFound)
			if !strings.Contains(rec.Body.String(), "leader-only endpoint") {
				t.Errorf("body %s does not say leader-only", rec.Body.String())
			}
		})
	}
}

func TestHandler_Auth(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name   string
		method string
		target string
		auth   string
		status int
	}{
		{name: "NoHeader", method: http.MethodGet, target: "/v1/status", status: http.StatusUnauthorized},
		{name: "WrongToken", method: http.MethodGet, target: "/v1/status", auth: "Bearer nope",
			status: http.StatusUnauthorized},
		{name: "PrefixOfToken", method: http.MethodGet, target: "/v1/status", auth: "Bearer s3cret",
			status: http.StatusUnauthorized},
		{name: "WrongScheme", method: http.MethodGet, target: "/v1/status", auth: "Basic " + token,
			status: http.StatusUnauthorized},
		{name: "NoScheme", method: http.MethodGet, target: "/v1/status", auth: token, status: http.StatusUnauthorized},
		{name: "WriteRejected", method: http.MethodPut, target: "/v1/kv/a", status: http.StatusUnauthorized},
		{name: "UnknownV1Path", method: http.MethodGet, target: "/v1/nothing", status: http.StatusUnauthorized},
		{name: "V1Root", method: http.MethodGet, target: "/v1", status: http.StatusUnauthorized},
		{name: "OK", method: http.MethodGet, target: "/v1/status", auth: "Bearer " + token, status: http.StatusOK},
		{name: "LowercaseScheme", method: http.MethodGet, target: "/v1/status", auth: "bearer " + token,
			status: http.StatusOK},
		{name: "Write", method: http.MethodPut, target: "/v1/kv/a", auth: "Bearer " + token, status: http.StatusOK},
		{name: "Healthz", method: http.MethodGet, target: "/healthz", status: http.StatusOK},
		{name: "Readyz", method: http.MethodGet, target: "/readyz", status: http.StatusOK},
		{name: "Metrics", method: http.MethodGet, target: "/metrics", status: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWriter{res: WriteResult{Version: 1}}
			h := newLeader(t, newFakeNode(1), w, func(c *Config) { c.AuthToken = token })
			var headers []string
			if tc.auth != "" {
				headers = []string{"Authorization", tc.auth}
			}
			rec := do(h, tc.method, tc.target, strings.NewReader("v"), headers...)
			if tc.status != http.StatusUnauthorized {
				checkAnswer(t, rec, tc.status, "")
				return
			}
			checkAnswer(t, rec, tc.status, CodeUnauthorized)
			if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", got)
			}
			if strings.Contains(rec.Body.String(), token) {
				t.Error("answer echoes the token")
			}
			if len(w.calls()) != 0 {
				t.Error("an unauthorized write reached the writer")
			}
		})
	}
}

func TestHandler_Methods(t *testing.T) {
	tests := []struct {
		method string
		target string
		allow  string
	}{
		{http.MethodPost, "/v1/kv/a", "GET, HEAD, PUT, DELETE"},
		{http.MethodPatch, "/v1/kv/a", "GET, HEAD, PUT, DELETE"},
		{http.MethodPut, "/v1/kv", "GET, HEAD"},
		{http.MethodDelete, "/v1/digest", "GET, HEAD"},
		{http.MethodPost, "/v1/status", "GET, HEAD"},
		{http.MethodPut, "/v1/snapshots", "GET, HEAD, POST"},
		{http.MethodPost, "/v1/followers", "GET, HEAD"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodDelete, "/readyz", "GET, HEAD"},
		{http.MethodPost, "/metrics", "GET, HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.target, func(t *testing.T) {
			w := &fakeWriter{}
			rec := do(newLeader(t, newFakeNode(1), w, nil), tc.method, tc.target, nil)
			checkAnswer(t, rec, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if len(w.calls()) != 0 {
				t.Error("request reached the writer")
			}
		})
	}
}

func TestHandler_SeqOnEveryAnswer(t *testing.T) {
	tests := []struct {
		method string
		target string
		status int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/readyz", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodGet, "/v1/status", http.StatusOK},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/v1/kv/absent", http.StatusNotFound},
		{http.MethodPut, "/v1/kv/", http.StatusBadRequest},
		{http.MethodPost, "/v1/kv/a", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.target, func(t *testing.T) {
			rec := do(newLeader(t, newFakeNode(77), &fakeWriter{}, nil), tc.method, tc.target, nil)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Header().Get(HeaderSeq); got != "77" {
				t.Errorf("%s = %q, want 77", HeaderSeq, got)
			}
			if got, ok := rec.Header()[HeaderLeader]; ok {
				t.Errorf("%s = %q from a node that knows no leader", HeaderLeader, got)
			}
			// A node that knows where the leader is says so on every answer.
			hinted := &hintNode{fakeNode: newFakeNode(77), hint: "http://leader:8080"}
			rec = do(newLeader(t, hinted.fakeNode, &fakeWriter{}, func(c *Config) { c.Node = hinted }), tc.method,
				tc.target, nil)
			if got := rec.Header().Get(HeaderLeader); rec.Code != tc.status || got != hinted.hint {
				t.Errorf("status %d, %s = %q; want %d and %q", rec.Code, HeaderLeader, got, tc.status, hinted.hint)
			}
		})
	}
}

// hintNode is a fakeNode that knows the leader's URL (api.LeaderHinter).
type hintNode struct {
	*fakeNode
	hint string
}

func (n *hintNode) LeaderHint() string { return n.hint }

func TestHandler_Metrics(t *testing.T) {
	node := newFakeNode(1)
	node.put("a", "1", 1)
	h := newLeader(t, node, &fakeWriter{res: WriteResult{Version: 2}}, nil)
	checkAnswer(t, do(h, http.MethodPut, "/v1/kv/a", strings.NewReader("v")), http.StatusOK, "")
	checkAnswer(t, do(h, http.MethodPut, "/v1/kv/", strings.NewReader("v")), http.StatusBadRequest, CodeInvalidKey)
	checkAnswer(t, do(h, http.MethodGet, "/v1/kv/a", nil), http.StatusOK, "")
	checkAnswer(t, do(h, http.MethodGet, "/v1/kv", nil), http.StatusOK, "")
	checkAnswer(t, do(h, http.MethodGet, "/v1/digest?min_seq=x", nil), http.StatusBadRequest, CodeInvalidRequest)
	rec := do(h, http.MethodGet, "/metrics", nil)
	checkAnswer(t, rec, http.StatusOK, "")
	for _, want := range []string{
		`replikv_write_duration_seconds_count{code="200",op="put",role="leader"} 1`,
		`replikv_write_duration_seconds_count{code="400",op="put",role="leader"} 1`,
		`replikv_read_duration_seconds_count{code="200",kind="get",role="leader"} 1`,
		`replikv_read_duration_seconds_count{code="200",kind="list",role="leader"} 1`,
		`replikv_read_duration_seconds_count{code="400",kind="digest",role="leader"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestHandler_MetricsDisabled(t *testing.T) {
	h := newFollower(t, newFakeNode(1), fakeRedirector{})
	checkAnswer(t, do(h, http.MethodGet, "/metrics", nil), http.StatusNotFound, CodeNotFound)
}

func TestHandler_Healthz(t *testing.T) {
	node := newFakeNode(1)
	node.status.State = StateFailed
	rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, "/healthz", nil)
	checkAnswer(t, rec, http.StatusOK, "")
}
