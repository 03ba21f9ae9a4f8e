package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHandler_Get(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		viewErr error
		status  int
		code    string
		value   string
	}{
		{name: "OK", method: http.MethodGet, target: "/v1/kv/a", status: http.StatusOK, value: "va"},
		{name: "Head", method: http.MethodHead, target: "/v1/kv/a", status: http.StatusOK},
		{name: "EncodedSlash", method: http.MethodGet, target: "/v1/kv/dir%2Fx", status: http.StatusOK, value: "slash"},
		{name: "PlainSlash", method: http.MethodGet, target: "/v1/kv/dir/x", status: http.StatusOK, value: "slash"},
		{name: "EncodedUnicode", method: http.MethodGet, target: "/v1/kv/%C3%A9t%C3%A9", status: http.StatusOK,
			value: "summer"},
		{name: "EmptyValue", method: http.MethodGet, target: "/v1/kv/empty", status: http.StatusOK, value: ""},
		{name: "Absent", method: http.MethodGet, target: "/v1/kv/nope", status: http.StatusNotFound, code: CodeNotFound},
		{name: "BadKey", method: http.MethodGet, target: "/v1/kv/", status: http.StatusBadRequest, code: CodeInvalidKey},
		{name: "Unavailable", method: http.MethodGet, target: "/v1/kv/a", viewErr: ErrUnavailable,
			status: http.StatusServiceUnavailable, code: CodeUnavailable},
		{name: "NotReady", method: http.MethodGet, target: "/v1/kv/a", viewErr: ErrNotReady,
			status: http.StatusServiceUnavailable, code: CodeUnavailable},
		{name: "Internal", method: http.MethodGet, target: "/v1/kv/a", viewErr: errors.New("disk on fire"),
			status: http.StatusInternalServerError, code: CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(12)
			node.put("a", "va", 4)
			node.put("dir/x", "slash", 5)
			node.put("été", "summer", 6)
			node.put("empty", "", 7)
			node.viewErr = tc.viewErr
			rec := do(newLeader(t, node, &fakeWriter{}, nil), tc.method, tc.target, nil)
			checkAnswer(t, rec, tc.status, tc.code)
			if strings.Contains(rec.Body.String(), "disk on fire") {
				t.Error("internal error text leaked to the client")
			}
			if n := node.openViews.Load(); n != 0 {
				t.Errorf("%d views left open", n)
			}
			if tc.code != "" {
				return
			}
			if got := rec.Body.String(); got != tc.value {
				t.Errorf("body = %q, want %q", got, tc.value)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/octet-stream" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := rec.Header().Get("ETag"); !strings.HasPrefix(got, `"`) || !strings.HasSuffix(got, `"`) {
				t.Errorf("ETag = %q, want a quoted version", got)
			}
			if got := rec.Header().Get(HeaderSeq); got != "12" {
				t.Errorf("%s = %q, want 12", HeaderSeq, got)
			}
		})
	}
}

func TestHandler_GetETag(t *testing.T) {
	node := newFakeNode(12)
	node.put("a", "va", 4)
	rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, "/v1/kv/a", nil)
	checkAnswer(t, rec, http.StatusOK, "")
	if got := rec.Header().Get("ETag"); got != `"4"` {
		t.Errorf("ETag = %q, want \"4\"", got)
	}
	if got := rec.Header().Get("Content-Length"); got != "2" {
		t.Errorf("Content-Length = %q, want 2", got)
	}
}

// listPage is the decoded answer of a list.
type listPage struct {
	Items []struct {
		Key     string  `json:"key"`
		Version uint64  `json:"version"`
		Value   *string `json:"value"`
	} `json:"items"`
	Next *string `json:"next"`
	Seq  uint64  `json:"seq"`
}

func TestHandler_ListPagination(t *testing.T) {
	node := newFakeNode(30)
	want := []string{}
	for i := range 25 {
		k := "p/" + strconv.Itoa(100+i)
		node.put(k, "v"+k, uint64(i+1))
		want = append(want, k)
	}
	node.put("other", "x", 26)
	node.put("p/empty", "", 27)
	want = append(want, "p/empty")
	h := newLeader(t, node, &fakeWriter{}, nil)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		rec := do(h, http.MethodGet, "/v1/kv?prefix=p%2F&limit=10&values=true&after="+after, nil)
		checkAnswer(t, rec, http.StatusOK, "")
		var page listPage
		decode(t, rec, &page)
		if page.Next == nil || page.Seq != 30 || rec.Header().Get(HeaderSeq) != "30" {
			t.Fatalf("page next %v seq %d header %q", page.Next, page.Seq, rec.Header().Get(HeaderSeq))
		}
		if len(page.Items) > 10 {
			t.Fatalf("page of %d items, limit 10", len(page.Items))
		}
		for _, it := range page.Items {
			if it.Value == nil {
				t.Fatalf("item %q has no value", it.Key)
			}
			v, err := base64.StdEncoding.DecodeString(*it.Value)
			if err != nil || string(v) != "v"+it.Key && it.Key != "p/empty" || it.Key == "p/empty" && len(v) != 0 {
				t.Errorf("item %q value %q (%v)", it.Key, *it.Value, err)
			}
			got = append(got, it.Key)
		}
		if *page.Next == "" {
			break
		}
		after = *page.Next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

func TestHandler_List(t *testing.T) {
	tests := []struct {
		name   string
		query  string
		status int
		code   string
		keys   string
		values bool
	}{
		{name: "All", query: "", status: http.StatusOK, keys: "a,b,c"},
		{name: "Prefix", query: "prefix=b", status: http.StatusOK, keys: "b"},
		{name: "After", query: "after=a", status: http.StatusOK, keys: "b,c"},
		{name: "Limit", query: "limit=2", status: http.StatusOK, keys: "a,b"},
		{name: "ValuesFalse", query: "values=false", status: http.StatusOK, keys: "a,b,c"},
		{name: "Values", query: "values=true", status: http.StatusOK, keys: "a,b,c", values: true},
		{name: "Empty", query: "prefix=zz", status: http.StatusOK, keys: ""},
		{name: "LimitZero", query: "limit=0", status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "LimitTooLarge", query: "limit=10001", status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "LimitNotNumber", query: "limit=ten", status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "ValuesBad", query: "values=yes", status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "Repeated", query: "limit=1&limit=2", status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BadEscape", query: "prefix=%zz", status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BadConsistency", query: "consistency=linear", status: http.StatusBadRequest, code: CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(3)
			node.put("a", "1", 1)
			node.put("b", "2", 2)
			node.put("c", "3", 3)
			rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, "/v1/kv?"+tc.query, nil)
			checkAnswer(t, rec, tc.status, tc.code)
			if tc.code != "" {
				return
			}
			if strings.Contains(rec.Body.String(), `"items":null`) {
				t.Errorf("items encoded as null: %s", rec.Body.String())
			}
			var page listPage
			decode(t, rec, &page)
			keys := make([]string, 0, len(page.Items))
			for _, it := range page.Items {
				keys = append(keys, it.Key)
				if (it.Value != nil) != tc.values {
					t.Errorf("item %q value present = %v, want %v", it.Key, it.Value != nil, tc.values)
				}
			}
			if got := strings.Join(keys, ","); got != tc.keys {
				t.Errorf("keys = %q, want %q", got, tc.keys)
			}
		})
	}
}

func TestHandler_Digest(t *testing.T) {
	node := newFakeNode(9)
	node.put("a", "1", 1)
	node.put("b", "2", 2)
	rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, "/v1/digest", nil)
	checkAnswer(t, rec, http.StatusOK, "")
	var body digestBody
	decode(t, rec, &body)
	if body.Seq != 9 || body.Keys != 2 || len(body.Digest) != 64 {
		t.Errorf("digest = %+v", body)
	}
	if !strings.Contains(rec.Body.String(), `"seq":9`) || !strings.Contains(rec.Body.String(), `"keys":2`) {
		t.Errorf("body %s lacks seq or keys", rec.Body.String())
	}
}

func TestHandler_Consistency(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		applied   uint64
		strongSeq uint64
		strongErr error
		waitErr   error
		status    int
		code      string
	}{
		{name: "Eventual", query: "consistency=eventual", applied: 5, status: http.StatusOK},
		{name: "StrongApplied", query: "consistency=strong", applied: 5, strongSeq: 5, status: http.StatusOK},
		{name: "StrongBehind", query: "consistency=strong&timeout=30ms", applied: 5, strongSeq: 6,
			status: http.StatusGatewayTimeout, code: CodeTimeout},
		{name: "StrongCutOff", query: "consistency=strong&timeout=60ms", applied: 5, strongErr: ErrUnavailable,
			status: http.StatusGatewayTimeout, code: CodeTimeout},
		{name: "MinSeqApplied", query: "min_seq=5", applied: 5, status: http.StatusOK},
		{name: "MinSeqBehind", query: "min_seq=6&timeout=30ms", applied: 5, status: http.StatusGatewayTimeout,
			code: CodeTimeout},
		{name: "StrongAndMinSeq", query: "consistency=strong&min_seq=7&timeout=30ms", applied: 5, strongSeq: 5,
			status: http.StatusGatewayTimeout, code: CodeTimeout},
		{name: "WaitFailed", query: "min_seq=6", applied: 5, waitErr: ErrUnavailable,
			status: http.StatusServiceUnavailable, code: CodeUnavailable},
		{name: "BadMinSeq", query: "min_seq=-1", applied: 5, status: http.StatusBadRequest, code: CodeInvalidRequest},
		{name: "BadTimeout", query: "min_seq=1&timeout=5", applied: 5, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "ZeroTimeout", query: "min_seq=1&timeout=0s", applied: 5, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
		{name: "HugeTimeout", query: "min_seq=1&timeout=1h", applied: 5, status: http.StatusBadRequest,
			code: CodeInvalidRequest},
	}
	for _, tc := range tests {
		for _, path := range []string{"/v1/kv/a", "/v1/kv", "/v1/digest"} {
			t.Run(tc.name+path, func(t *testing.T) {
				node := newFakeNode(tc.applied)
				node.put("a", "1", 1)
				node.strongSeq, node.strongErr, node.waitErr = tc.strongSeq, tc.strongErr, tc.waitErr
				rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, path+"?"+tc.query, nil)
				checkAnswer(t, rec, tc.status, tc.code)
				if tc.strongErr != nil && node.strongCalls.Load() < 2 {
					t.Errorf("StrongTarget called %d times, want retries", node.strongCalls.Load())
				}
			})
		}
	}
}

func TestHandler_ConsistencyWaits(t *testing.T) {
	tests := []struct {
		name  string
		query string
	}{
		{"MinSeq", "min_seq=8"},
		{"Strong", "consistency=strong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(5)
			node.strongSeq = 8
			node.put("a", "1", 1)
			h := newLeader(t, node, &fakeWriter{}, nil)
			done := make(chan struct{})
			go func() {
				defer close(done)
				select {
				case <-node.waiting: // the read is blocked in WaitApplied
					node.setApplied(8)
				case <-time.After(5 * time.Second):
				}
			}()
			t.Cleanup(func() { <-done })
			rec := do(h, http.MethodGet, "/v1/kv/a?"+tc.query, nil)
			checkAnswer(t, rec, http.StatusOK, "")
			if got := rec.Header().Get(HeaderSeq); got != "8" {
				t.Errorf("%s = %q, want 8 (the view's sequence)", HeaderSeq, got)
			}
		})
	}
}

func TestHandler_StrongRetriesUntilTarget(t *testing.T) {
	node := newFakeNode(5)
	node.put("a", "1", 1)
	n := &flakyNode{fakeNode: node, failures: 3}
	h := newLeader(t, node, &fakeWriter{}, func(c *Config) { c.Node = n })
	rec := do(h, http.MethodGet, "/v1/kv/a?consistency=strong&timeout=5s", nil)
	checkAnswer(t, rec, http.StatusOK, "")
	if got := n.calls.Load(); got != 4 {
		t.Errorf("StrongTarget calls = %d, want 4", got)
	}
}

// flakyNode fails StrongTarget a number of times, then answers its applied sequence.
type flakyNode struct {
	*fakeNode
	failures int32
	calls    atomic.Int32
}

func (n *flakyNode) StrongTarget(context.Context) (uint64, error) {
	if n.calls.Add(1) <= n.failures {
		return 0, ErrUnavailable
	}
	return n.Applied(), nil
}

func TestHandler_ReadSeqIsViewSeq(t *testing.T) {
	tests := []struct {
		target  string
		bodySeq string
	}{
		{"/v1/kv/a", ""},
		{"/v1/kv", `"seq":17`},
		{"/v1/digest", `"seq":17`},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			node := newFakeNode(20) // applied moved on after the view was taken
			node.viewSeq = 17
			node.put("a", "1", 1)
			rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, tc.target, nil)
			checkAnswer(t, rec, http.StatusOK, "")
			if got := rec.Header().Get(HeaderSeq); got != "17" {
				t.Errorf("%s = %q, want the view's 17", HeaderSeq, got)
			}
			if !strings.Contains(rec.Body.String(), tc.bodySeq) {
				t.Errorf("body %s lacks %s", rec.Body.String(), tc.bodySeq)
			}
		})
	}
}

// fakeBarrier answers AwaitReadable with errs in turn, then with nil; blocked makes every call wait for ctx.
type fakeBarrier struct {
	mu      sync.Mutex
	errs    []error
	calls   int
	blocked bool
	key     []byte // the last key asked for
}

func (b *fakeBarrier) AwaitReadable(ctx context.Context, key []byte) error {
	b.mu.Lock()
	b.calls++
	b.key = key
	blocked := b.blocked
	var err error
	if len(b.errs) > 0 {
		err, b.errs = b.errs[0], b.errs[1:]
	}
	b.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func TestHandler_LeaderReadsPassBarrier(t *testing.T) {
	for _, path := range []string{"/v1/kv/a", "/v1/kv?prefix=a", "/v1/digest", "/v1/kv/a?consistency=eventual"} {
		t.Run("OK"+path, func(t *testing.T) {
			node := newFakeNode(3)
			node.put("a", "v", 3)
			b := &fakeBarrier{errs: []error{ErrUnavailable, ErrUnavailable}}
			rec := do(newLeader(t, node, &fakeWriter{}, func(c *Config) { c.Barrier = b }), http.MethodGet, path, nil)
			checkAnswer(t, rec, http.StatusOK, "")
			if b.calls != 3 {
				t.Fatalf("barrier called %d times, want 3 (two unavailable answers retried)", b.calls)
			}
			if wantKey := strings.HasPrefix(path, "/v1/kv/"); wantKey != (string(b.key) == "a") || (!wantKey && b.key != nil) {
				t.Fatalf("barrier asked for key %q on %s", b.key, path)
			}
		})
	}
	t.Run("NotLeader", func(t *testing.T) {
		b := &fakeBarrier{errs: []error{fmt.Errorf("fenced: %w", ErrNotLeader)}}
		rec := do(newLeader(t, newFakeNode(3), &fakeWriter{}, func(c *Config) { c.Barrier = b }), http.MethodGet, "/v1/kv/a", nil)
		checkAnswer(t, rec, http.StatusServiceUnavailable, CodeNotLeader)
		if b.calls != 1 {
			t.Fatalf("barrier called %d times, want 1 (not_leader is not retried)", b.calls)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		b := &fakeBarrier{blocked: true}
		rec := do(newLeader(t, newFakeNode(3), &fakeWriter{}, func(c *Config) { c.Barrier = b }), http.MethodGet,
			"/v1/kv/a?timeout=20ms", nil)
		checkAnswer(t, rec, http.StatusGatewayTimeout, CodeTimeout)
	})
	t.Run("NoBarrierOnFollower", func(t *testing.T) {
		node := newFakeNode(3)
		node.put("a", "v", 3)
		rec := do(newLeader(t, node, &fakeWriter{}, nil), http.MethodGet, "/v1/kv/a", nil)
		checkAnswer(t, rec, http.StatusOK, "")
	})
}

// A list page stops once its values reach MaxListValueBytes (so one request of 10,000 maximal values does not build
// gigabytes), and a page larger than one chunk of the view is stitched from several reads; paging on from next
// returns every key once, in order.
func TestHandler_ListBudget(t *testing.T) {
	big := strings.Repeat("v", 512<<10)
	for _, tc := range []struct {
		name       string
		keys       int
		value      string
		query      string
		wantFirst  int // items on the first page
		wantValues bool
	}{
		{"ValueBudget", 40, big, "values=true&limit=10000", MaxListValueBytes / len(big), true},
		{"ManyChunks", 2500, "x", "limit=2200", 2200, false},
		{"ManyChunksValues", 100, "x", "values=true&limit=90", 90, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := newFakeNode(7)
			for i := range tc.keys {
				node.put(fmt.Sprintf("k%05d", i), tc.value, 1)
			}
			h := newLeader(t, node, &fakeWriter{}, nil)
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > tc.keys {
					t.Fatal("pagination does not end")
				}
				rec := do(h, http.MethodGet, "/v1/kv?"+tc.query+"&after="+after, nil)
				checkAnswer(t, rec, http.StatusOK, "")
				var page listPage
				decode(t, rec, &page)
				if pages == 0 && len(page.Items) != tc.wantFirst {
					t.Fatalf("first page: %d items, want %d", len(page.Items), tc.wantFirst)
				}
				for _, it := range page.Items {
					if tc.wantValues {
						if it.Value == nil {
							t.Fatalf("item %s: no value", it.Key)
						}
						if v, err := base64.StdEncoding.DecodeString(*it.Value); err != nil || string(v) != tc.value {
							t.Fatalf("item %s: value of %d bytes (%v)", it.Key, len(v), err)
						}
					}
					got = append(got, it.Key)
				}
				if *page.Next == "" {
					break
				}
				if *page.Next != page.Items[len(page.Items)-1].Key {
					t.Fatalf("next %q, want the page's last key %q", *page.Next, page.Items[len(page.Items)-1].Key)
				}
				after = *page.Next
			}
			if len(got) != tc.keys || !sort.StringsAreSorted(got) || len(slices.Compact(slices.Clone(got))) != tc.keys {
				t.Fatalf("paged through %d keys (sorted %v), want %d distinct", len(got), sort.StringsAreSorted(got), tc.keys)
			}
		})
	}
}
