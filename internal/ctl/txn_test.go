package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
)

// TestAppendTxnBinary_MatchesAPI pins the CLI's copy of the binary transaction encoding byte for byte to the
// server's (api.AppendTxnBinary), on every op, precondition and length class.
func TestAppendTxnBinary_MatchesAPI(t *testing.T) {
	long := bytes.Repeat([]byte{0xab}, 300) // a two-byte uvarint length
	ops := []txnOp{
		{key: []byte("a"), value: []byte("text \u00e9\n"), ifMatch: 5, hasIfMatch: true},
		{key: []byte("b/\u00e9"), value: []byte{0, 1, 0xff}, ifAbsent: true},
		{del: true, key: []byte("c"), ifMatch: 0, hasIfMatch: true},
		{key: []byte("d"), value: []byte{}},
		{del: true, key: []byte("e")},
		{key: long, value: bytes.Repeat(long, 500), ifMatch: 1<<64 - 1, hasIfMatch: true},
		{key: []byte("f"), value: []byte("x"), ifMatch: 128, hasIfMatch: true},
	}
	var want []api.TxnOp
	for _, o := range ops {
		w := api.TxnOp{Op: apply.OpPut, Key: o.key, Value: o.value,
			Cond: apply.Cond{IfMatch: o.ifMatch, HasIfMatch: o.hasIfMatch, IfNoneMatch: o.ifAbsent}}
		if o.del {
			w.Op, w.Value = apply.OpDelete, nil
		}
		want = append(want, w)
	}
	for n := 1; n <= len(ops); n++ {
		got, exp := appendTxnBinary(nil, ops[:n]), api.AppendTxnBinary(nil, want[:n])
		if !bytes.Equal(got, exp) {
			t.Fatalf("%d ops: the CLI encodes\n%x\nthe API\n%x", n, got, exp)
		}
	}
	if got := appendTxnBinary([]byte("prefix"), ops[:1]); !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendTxnBinary does not append: %q", got)
	}
	if contentTypeTxn != api.ContentTypeTxn {
		t.Fatalf("content type %q, the API's %q", contentTypeTxn, api.ContentTypeTxn)
	}
}

func TestParseTxnLines(t *testing.T) {
	input := strings.Join([]string{
		"# a comment",
		"",
		"put plain value",
		"  put \"with space\" \"two words\\n\\x00\\xff\" if-absent",
		"put 'single' '{\"json\": \"as is\\n\"}'\tif-match=7",
		"put b64 --b64 AAH/ if-match=0",
		"put empty \"\"",
		"put dash \"--b64\"",
		"put cond if-absent",
		"del gone",
		"delete gone2 if-match=18446744073709551615\r",
		"put #hash a#b",
	}, "\n")
	ops, err := parseTxnLines("ops.txt", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	want := []txnOp{
		{key: []byte("plain"), value: []byte("value"), line: 3},
		{key: []byte("with space"), value: []byte("two words\n\x00\xff"), ifAbsent: true, line: 4},
		{key: []byte("single"), value: []byte(`{"json": "as is\n"}`), ifMatch: 7, hasIfMatch: true, line: 5},
		{key: []byte("b64"), value: []byte{0, 1, 0xff}, hasIfMatch: true, line: 6},
		{key: []byte("empty"), value: []byte{}, line: 7},
		{key: []byte("dash"), value: []byte("--b64"), line: 8},
		{key: []byte("cond"), value: []byte("if-absent"), line: 9},
		{del: true, key: []byte("gone"), line: 10},
		{del: true, key: []byte("gone2"), ifMatch: 1<<64 - 1, hasIfMatch: true, line: 11},
		{key: []byte("#hash"), value: []byte("a#b"), line: 12},
	}
	if len(ops) != len(want) {
		t.Fatalf("%d ops, want %d: %+v", len(ops), len(want), ops)
	}
	for i := range want {
		g, w := ops[i], want[i]
		if g.del != w.del || !bytes.Equal(g.key, w.key) || !bytes.Equal(g.value, w.value) || g.ifMatch != w.ifMatch ||
			g.hasIfMatch != w.hasIfMatch || g.ifAbsent != w.ifAbsent || g.line != w.line {
			t.Errorf("op %d: %+v, want %+v", i, g, w)
		}
	}

	bad := []struct{ input, want string }{
		{"pur k v", `ops.txt:1: unknown operation "pur"`},
		{"put", "ops.txt:1: put needs a KEY"},
		{"put k", "put needs a VALUE"},
		{"put k --b64", "--b64 needs a BASE64 value"},
		{"put k --b64 AAH", "not standard base64"},
		{"put k two words", `unexpected "words" after the VALUE`},
		{"del k v", `unexpected "v" after the KEY`},
		{"put k v if-match=x", "want if-match=VERSION"},
		{"put k v if-match=-1", "want if-match=VERSION"},
		{"put k v if-match=1 if-match=2", "if-match given twice"},
		{"put k v if-match=1 if-absent", "exclude each other"},
		{"put k v \"if-absent\"", `unexpected "if-absent"`},
		{"del k if-absent", "can never hold"},
		{"put k \"v", `unterminated " quote`},
		{"put k 'v", `unterminated ' quote`},
		{`put k "\q"`, "bad escape"},
		{`put k "a"b`, "text right after the closing quote"},
		{`put k a"b"`, "a quote or backslash can only be inside a quoted word"},
		{`put k a\ b`, "a quote or backslash"},
		{"put k \xff", "not UTF-8"},
		{"put a 1\n\nput b 2\nput a 3", `ops.txt:4: key "a" already written at line 1`},
		{"# only a comment\n\n", "ops.txt: no operation"},
		{"", "no operation"},
		{`{"ops":[]}`, "give --json"},
	}
	for _, tc := range bad {
		_, err := parseTxnLines("ops.txt", []byte(tc.input))
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseTxnLines(%q) = %v, want a usage error with %q", tc.input, err, tc.want)
		}
	}
}

// txnDoc is the JSON output of txn.
func txnDoc(t *testing.T, out string) txnOutput {
	t.Helper()
	var d txnOutput
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("txn -o json: %v\n%s", err, out)
	}
	return d
}

// TestRun_Txn runs txn against the real API handler: the line format from stdin and a file, the JSON body, -o json,
// and each failure's exit code and message.
func TestRun_Txn(t *testing.T) {
	const token = "tok-txn-123"
	leader := newMemNode(api.RoleLeader, "l1")
	lsrv := serve(t, leader, token)
	env := []string{"REPLIKV_URL=" + lsrv.URL, "REPLIKV_TOKEN=" + token}
	versionOf := func(key string) uint64 {
		t.Helper()
		leader.mu.Lock()
		defer leader.mu.Unlock()
		e, ok := leader.data[key]
		if !ok {
			t.Fatalf("%s does not exist", key)
		}
		return e.version
	}
	// unchanged checks that a failed run wrote nothing.
	unchanged := func(t *testing.T, run func()) {
		t.Helper()
		before, applied := leader.txns.Load(), leader.Applied()
		run()
		if leader.txns.Load() != before || leader.Applied() != applied {
			t.Fatal("a refused transaction changed the leader")
		}
	}

	wantCode(t, runCLI(t, env, "", "put", "old", "x"), ExitOK)
	wantCode(t, runCLI(t, env, "", "put", "gone", "x"), ExitOK)
	var version uint64

	t.Run("Stdin", func(t *testing.T) {
		stdin := "# seed\nput \"a b\" \"hello\\tworld\" if-absent\nput bin --b64 AP8=\ndel gone if-match=2\n"
		r := runCLI(t, env, stdin, "txn")
		wantCode(t, r, ExitOK)
		mustContain(t, "stdout", r.out, "committed 3 operation(s) at version 3")
		wantValue(t, env, "a b", "hello\tworld")
		wantValue(t, env, "bin", "\x00\xff")
		wantCode(t, runCLI(t, env, "", "get", "gone"), ExitNotFound)
		if versionOf("a b") != 3 || versionOf("bin") != 3 {
			t.Fatalf("versions %d %d, want both 3", versionOf("a b"), versionOf("bin"))
		}
		version = 3
	})
	t.Run("FileJSONOutput", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ops.txt")
		ops := "put cfg '{\"on\": true}' if-absent\nput new v\n"
		if err := os.WriteFile(path, []byte(ops), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, env, "", "txn", "--file", path, "-o", "json")
		wantCode(t, r, ExitOK)
		d := txnDoc(t, r.out)
		if d.Ops != 2 || d.Version != version+1 || d.Status != 200 || d.Replicated != nil {
			t.Fatalf("txn -o json: %+v", d)
		}
		wantValue(t, env, "cfg", `{"on": true}`)
		version = d.Version
	})
	t.Run("StdinDash", func(t *testing.T) {
		r := runCLI(t, env, fmt.Sprintf("put cfg off if-match=%d\n", version), "txn", "-f", "-")
		wantCode(t, r, ExitOK)
		wantValue(t, env, "cfg", "off")
		version++
	})
	t.Run("PreconditionFailed", func(t *testing.T) {
		unchanged(t, func() {
			r := runCLI(t, env, "put x 1\nput cfg on if-match=1\nput y 2\n", "txn")
			wantCode(t, r, ExitPrecondition)
			mustContain(t, "stderr", r.err, "412", "precondition_failed",
				fmt.Sprintf(`ops[1] put "cfg" (stdin:2): precondition failed: the key is at version %d`, version),
				"nothing was written")
		})
		unchanged(t, func() {
			r := runCLI(t, env, "put old again if-absent\n", "txn")
			wantCode(t, r, ExitPrecondition)
			mustContain(t, "stderr", r.err, `ops[0] put "old" (stdin:1)`, "version 1")
		})
		unchanged(t, func() {
			r := runCLI(t, env, "del absent if-match=4\n", "txn")
			wantCode(t, r, ExitPrecondition)
			mustContain(t, "stderr", r.err, `ops[0] del "absent" (stdin:1)`, "does not exist")
		})
	})
	t.Run("DeleteAbsent", func(t *testing.T) {
		unchanged(t, func() {
			r := runCLI(t, env, "put x 1\ndel absent\n", "txn")
			wantCode(t, r, ExitNotFound)
			mustContain(t, "stderr", r.err, "404", `ops[1] del "absent" (stdin:2)`, "does not exist")
		})
	})
	t.Run("MalformedLine", func(t *testing.T) {
		before := leader.requests.Load()
		r := runCLI(t, env, "put a 1\nput b \"unterminated\n", "txn")
		wantCode(t, r, ExitUsage)
		mustContain(t, "stderr", r.err, "stdin:2:", "unterminated")
		path := filepath.Join(t.TempDir(), "ops.txt")
		if err := os.WriteFile(path, []byte("put a 1\nupdate b 2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = runCLI(t, env, "", "txn", "--file", path)
		wantCode(t, r, ExitUsage)
		mustContain(t, "stderr", r.err, path+":2:", `unknown operation "update"`)
		wantCode(t, runCLI(t, env, "", "txn"), ExitUsage) // no operation
		if n := leader.requests.Load() - before; n != 0 {
			t.Fatalf("%d requests sent for bad input", n)
		}
	})
	t.Run("BadRequest", func(t *testing.T) {
		// Input the line format accepts and the server refuses: an invalid key, which the answer does not echo.
		unchanged(t, func() {
			r := runCLI(t, env, "put ok 1\nput \"\" v\n", "txn")
			wantCode(t, r, ExitError)
			mustContain(t, "stderr", r.err, "400", "invalid_key", `ops[1] put "" (stdin:2)`)
		})
	})
	t.Run("JSONBody", func(t *testing.T) {
		body := `{"ops":[{"op":"put","key":"j1","value":"one"},{"op":"put","key":"j2","value_b64":"AQI=","if_absent":true}]}`
		r := runCLI(t, env, body, "txn", "--json", "-o", "json")
		wantCode(t, r, ExitOK)
		if d := txnDoc(t, r.out); d.Ops != 2 || d.Version != version+1 || d.Status != 200 {
			t.Fatalf("txn --json: %+v", d)
		}
		wantValue(t, env, "j2", "\x01\x02")
		version++
		unchanged(t, func() {
			r := runCLI(t, env, `{"ops":[{"op":"delete","key":"j1","if_match":1}]}`, "txn", "--json")
			wantCode(t, r, ExitPrecondition)
			mustContain(t, "stderr", r.err, `ops[0] "j1": precondition failed: the key is at version`)
		})
		unchanged(t, func() {
			r := runCLI(t, env, `{"ops":[{"op":"put","key":"j1"}]}`, "txn", "--json")
			wantCode(t, r, ExitError)
			mustContain(t, "stderr", r.err, "400", "ops[0]", "needs value")
		})
		r = runCLI(t, env, "put a 1\n", "txn", "--json")
		wantCode(t, r, ExitError)
		mustContain(t, "stderr", r.err, "400", "invalid_request")
	})
	t.Run("NotServed", func(t *testing.T) {
		old := newMemNode(api.RoleLeader, "old")
		old.noTxn = true
		osrv := serve(t, old, "")
		r := runCLI(t, nil, "put a 1\n", "--url", osrv.URL, "txn")
		wantCode(t, r, ExitError) // a 404 that names no operation is not a missing key
		mustContain(t, "stderr", r.err, "404", "does not serve POST /v1/txn")
	})
	t.Run("MissingFile", func(t *testing.T) {
		r := runCLI(t, env, "", "txn", "--file", filepath.Join(t.TempDir(), "missing"))
		wantCode(t, r, ExitError)
	})
	t.Run("ExtraArgument", func(t *testing.T) {
		wantCode(t, runCLI(t, env, "", "txn", "put", "a", "1"), ExitUsage)
	})
	t.Run("Unreachable", func(t *testing.T) {
		r := runCLI(t, nil, "put a 1\n", "--url", closedURL(t), "txn")
		wantCode(t, r, ExitUnreachable)
		mustContain(t, "stderr", r.err, "may or may not have been committed")
	})
}

// TestRun_TxnThroughFollower: a follower redirects the transaction to its leader; the CLI sends the same binary body
// and token there.
func TestRun_TxnThroughFollower(t *testing.T) {
	const token = "tok-txn-redirect"
	leader := newMemNode(api.RoleLeader, "l1")
	lsrv := serve(t, leader, token)
	follower := newMemNode(api.RoleFollower, "f1")
	follower.leaderURL = lsrv.URL
	fsrv := serve(t, follower, token)
	env := []string{"REPLIKV_URL=" + fsrv.URL, "REPLIKV_TOKEN=" + token}

	r := runCLI(t, env, "put x/1 one\nput x/2 --b64 AAE=\n", "txn", "-o", "json")
	wantCode(t, r, ExitOK)
	if d := txnDoc(t, r.out); d.Ops != 2 || d.Version != 1 {
		t.Fatalf("txn: %+v", d)
	}
	if string(leader.data["x/1"].value) != "one" || string(leader.data["x/2"].value) != "\x00\x01" {
		t.Fatalf("leader holds %q %q", leader.data["x/1"].value, leader.data["x/2"].value)
	}
	if auth, _ := leader.lastAuth.Load().(string); auth != "Bearer "+token {
		t.Fatalf("the leader got Authorization %q", auth)
	}
	if n := follower.requests.Load(); n != 1 {
		t.Fatalf("the follower got %d requests, want 1 (redirected)", n)
	}
	r = runCLI(t, env, "del x/1\ndel x/3\n", "txn")
	wantCode(t, r, ExitNotFound)
	mustContain(t, "stderr", r.err, `ops[1] del "x/3" (stdin:2)`)
}
