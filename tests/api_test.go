//go:build e2e

package tests

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAPI_Contract: the HTTP API's answers on a real leader, as CONTRACT.md lists them: key and value limits,
// preconditions, 404s, headers and list paging.
func TestAPI_Contract(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	lc := c.startLeader().api()
	base := lc.put(t, "api/existing", []byte("v1"))
	etag := strconv.Quote(strconv.FormatUint(base.Version, 10))

	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    http.Header
		want   int
		code   string // machine code of the JSON error, "" = not checked
	}{
		{"EmptyKey", http.MethodPut, "/v1/kv/", []byte("x"), nil, http.StatusBadRequest, ""},
		{"KeyTooLong", http.MethodPut, "/v1/kv/" + strings.Repeat("k", 1025), []byte("x"), nil, http.StatusBadRequest, ""},
		{"KeyMaxLength", http.MethodPut, "/v1/kv/" + strings.Repeat("k", 1024), []byte("x"), nil, http.StatusOK, ""},
		{"KeyInvalidUTF8", http.MethodPut, "/v1/kv/bad%ff", []byte("x"), nil, http.StatusBadRequest, ""},
		{"KeyNUL", http.MethodPut, "/v1/kv/bad%00key", []byte("x"), nil, http.StatusBadRequest, ""},
		{"ValueTooLarge", http.MethodPut, kvPath("api/big"), make([]byte, 524289), nil, http.StatusRequestEntityTooLarge, ""},
		{"ValueMaxSize", http.MethodPut, kvPath("api/max"), make([]byte, 524288), nil, http.StatusOK, ""},
		{"EmptyValue", http.MethodPut, kvPath("api/empty"), []byte{}, nil, http.StatusOK, ""},
		{"IfNoneMatchExisting", http.MethodPut, kvPath("api/existing"), []byte("x"), hdr("If-None-Match", "*"),
			http.StatusPreconditionFailed, ""},
		{"IfNoneMatchAbsent", http.MethodPut, kvPath("api/fresh"), []byte("x"), hdr("If-None-Match", "*"), http.StatusOK, ""},
		{"IfMatchWrong", http.MethodPut, kvPath("api/existing"), []byte("x"), hdr("If-Match", `"999999"`),
			http.StatusPreconditionFailed, ""},
		{"DeleteIfMatchWrong", http.MethodDelete, kvPath("api/existing"), nil, hdr("If-Match", `"999999"`),
			http.StatusPreconditionFailed, ""},
		{"DeleteAbsent", http.MethodDelete, kvPath("api/absent"), nil, nil, http.StatusNotFound, ""},
		{"GetAbsent", http.MethodGet, kvPath("api/absent"), nil, nil, http.StatusNotFound, ""},
		{"IfMatchRight", http.MethodPut, kvPath("api/existing"), []byte("v2"), hdr("If-Match", etag), http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := lc.must(t, tt.method, tt.path, tt.body, tt.hdr, tt.want)
			if r.seqHeader() < 0 {
				t.Fatalf("no Replikv-Seq header on %s", r)
			}
			if tt.want >= 400 {
				if e := decode[errorDoc](t, r); e.Code == "" || e.Error == "" {
					t.Fatalf("error answer without error and code: %s", r)
				}
			}
		})
	}

	t.Run("Get", func(t *testing.T) {
		r := lc.must(t, http.MethodGet, kvPath("api/existing"), nil, nil, http.StatusOK)
		if string(r.Body) != "v2" || r.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("GET: %s, Content-Type %q", r, r.Header.Get("Content-Type"))
		}
		v, err := strconv.ParseUint(strings.Trim(r.Header.Get("ETag"), `"`), 10, 64)
		if err != nil || v <= base.Version || int64(v) > r.seqHeader() {
			t.Fatalf("ETag %q after version %d, Replikv-Seq %d", r.Header.Get("ETag"), base.Version, r.seqHeader())
		}
		r = lc.must(t, http.MethodGet, kvPath("api/max"), nil, nil, http.StatusOK)
		if !bytes.Equal(r.Body, make([]byte, 524288)) {
			t.Fatalf("GET of the largest value: %d bytes", len(r.Body))
		}
	})

	t.Run("Delete", func(t *testing.T) {
		w := decode[writeDoc](t, lc.must(t, http.MethodDelete, kvPath("api/fresh"), nil, nil, http.StatusOK))
		if w.Key != "api/fresh" || w.Version == 0 {
			t.Fatalf("DELETE body %+v", w)
		}
		lc.must(t, http.MethodGet, kvPath("api/fresh"), nil, nil, http.StatusNotFound)
	})

	t.Run("ListPaging", func(t *testing.T) {
		for _, k := range []string{"page/a", "page/b", "page/c", "page/d", "page/e"} {
			lc.put(t, k, []byte("val-"+k))
		}
		lc.put(t, "pagf", []byte("outside the prefix"))
		var keys []string
		after := ""
		for range 10 {
			path := "/v1/kv?prefix=page/&limit=2"
			if after != "" {
				path += "&after=" + after
			}
			page := decode[listDoc](t, lc.must(t, http.MethodGet, path, nil, nil, http.StatusOK))
			for _, it := range page.Items {
				if it.Value != nil {
					t.Fatalf("list without values=true returned a value for %s", it.Key)
				}
				keys = append(keys, it.Key)
			}
			if len(page.Items) > 2 {
				t.Fatalf("limit=2 returned %d items", len(page.Items))
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if got := strings.Join(keys, ","); got != "page/a,page/b,page/c,page/d,page/e" {
			t.Fatalf("paged keys %s", got)
		}
		page := decode[listDoc](t, lc.must(t, http.MethodGet, "/v1/kv?prefix=page/&after=page/c&values=true", nil, nil,
			http.StatusOK))
		if len(page.Items) != 2 || page.Items[0].Key != "page/d" || string(page.Items[0].Value) != "val-page/d" ||
			page.Next != "" {
			t.Fatalf("list after page/c with values: %+v", page)
		}
	})

	t.Run("Probes", func(t *testing.T) {
		lc.must(t, http.MethodGet, "/healthz", nil, nil, http.StatusOK)
		r := lc.must(t, http.MethodGet, "/metrics", nil, nil, http.StatusOK)
		for _, name := range []string{"replikv_applied_seq", "replikv_store_write_stall_seconds_count"} {
			if !bytes.Contains(r.Body, []byte(name)) {
				t.Fatalf("/metrics has no %s", name)
			}
		}
	})
}

// TestAPI_ListMemoryBounded: a list page stops at its value budget and is encoded as it goes, so that eight
// concurrent lists of every value (10,000 allowed per page, 512 KiB each) raise the leader's RSS by less than 100 MB.
func TestAPI_ListMemoryBounded(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	leader := c.startLeader()
	lc := leader.api()
	value := bytes.Repeat([]byte("v"), 512<<10)
	for i := range 80 { // 40 MB of values
		lc.put(t, "big/"+strconv.Itoa(i), value)
	}
	pid := leader.current().Pid()
	base := rssBytes(t, pid)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if r := rssBytesNoFail(pid); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				resp, err := c.hc.Get(leader.URL() + "/v1/kv?values=true&limit=10000")
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n < 4<<20 {
					t.Errorf("list: %d, %d bytes", resp.StatusCode, n)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if grew := peak.Load() - base; grew > 100<<20 {
		t.Fatalf("RSS grew by %d MB during 8 concurrent lists of every value, want under 100 MB", grew>>20)
	}
	t.Logf("RSS %d MB before, peak %d MB during the lists", base>>20, peak.Load()>>20)
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	r := rssBytesNoFail(pid)
	if r <= 0 {
		t.Fatalf("no VmRSS for pid %d", pid)
	}
	return r
}

func rssBytesNoFail(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
