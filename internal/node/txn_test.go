package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
	"github.com/replikv/replikv/internal/journal"
	"github.com/replikv/replikv/internal/store"
)

// txnAnswer is the JSON answer of POST /v1/txn, success or error.
type txnAnswer struct {
	Version uint64  `json:"version"`
	Ops     int     `json:"ops"`
	Code    string  `json:"code"`
	Op      *int    `json:"op"`
	Key     *string `json:"key"`
}

// postTxn sends a transaction body (JSON unless hdr sets a Content-Type) to url's /v1/txn.
func postTxn(t testing.TB, url, body string, hdr ...string) (int, txnAnswer) {
	t.Helper()
	code, b, _ := do(t, http.MethodPost, url+"/v1/txn", []byte(body), hdr...)
	var a txnAnswer
	if code != http.StatusTemporaryRedirect {
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("POST /v1/txn: %d %q: %v", code, b, err)
		}
	}
	return code, a
}

// asyncTxn is postTxn in a goroutine (see async).
func asyncTxn(t *testing.T, url, body string) <-chan answer {
	return async(t, http.MethodPost, url+"/v1/txn", []byte(body))
}

// txnOf decodes an answer of asyncTxn.
func txnOf(t *testing.T, a answer) txnAnswer {
	t.Helper()
	var ta txnAnswer
	if err := json.Unmarshal(a.body, &ta); err != nil {
		t.Fatalf("txn answer %d %q: %v", a.code, a.body, err)
	}
	return ta
}

// getKey returns a key's status, value and version (from its ETag, 0 if none).
func getKey(t testing.TB, url, key string) (int, string, uint64) {
	t.Helper()
	code, b, h := do(t, http.MethodGet, url+"/v1/kv/"+key, nil)
	v, _ := strconv.ParseUint(strings.Trim(h.Get("ETag"), `"`), 10, 64)
	return code, string(b), v
}

// wantKey fails unless key holds value at version (value "" with version 0: absent).
func wantKey(t testing.TB, url, key, value string, version uint64) {
	t.Helper()
	code, got, v := getKey(t, url, key)
	switch {
	case version == 0 && code != http.StatusNotFound:
		t.Fatalf("GET %s: %d %q at %d, want 404", key, code, got, v)
	case version != 0 && (code != http.StatusOK || got != value || v != version):
		t.Fatalf("GET %s: %d %q at %d, want %q at %d", key, code, got, v, value, version)
	}
}

// TestLeader_Txn: transactions through a real leader and follower: all keys at the entry's sequence, one log entry,
// all or nothing on a failed precondition (412 or 404 naming the operation), a follower's redirect, and the
// follower's digest, and a new follower's from a snapshot taken after transactions, equal to the leader's.
func TestLeader_Txn(t *testing.T) {
	snapDir := t.TempDir()
	l := startLeader(t, t.TempDir(), snapDir)
	lurl := base(l.HTTPAddr())
	waitState(t, lurl, stateReady, 20*time.Second)
	f := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), "--id", "f1")
	furl := base(f.HTTPAddr())
	jc := connectJournal(t, l.NATSURL())
	_, vx := put(t, lurl, "t/x", "old")

	var s uint64 // the first transaction's version
	t.Run("Commit", func(t *testing.T) {
		code, a := postTxn(t, lurl, fmt.Sprintf(`{"ops":[
			{"op":"put","key":"t/b","value_b64":"AAH/"},
			{"op":"put","key":"t/a","value":"1"},
			{"op":"delete","key":"t/x","if_match":%d},
			{"op":"put","key":"t/c","value":"c","if_absent":true}]}`, vx))
		if code != http.StatusOK || a.Ops != 4 || a.Version != vx+1 {
			t.Fatalf("txn: %d %+v, want 200 with 4 ops at %d", code, a, vx+1)
		}
		s = a.Version
		wantKey(t, lurl, "t/a", "1", s)
		wantKey(t, lurl, "t/b", "\x00\x01\xff", s)
		wantKey(t, lurl, "t/c", "c", s)
		wantKey(t, lurl, "t/x", "", 0)
		// One entry, its operations in key order.
		m, err := jc.Entry(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		e, err := apply.DecodeEntry(m.Data)
		if err != nil || e.Op != apply.OpTxn || len(e.Ops) != 4 || string(e.Ops[0].Key) != "t/a" ||
			string(e.Ops[3].Key) != "t/x" || e.Ops[3].Op != apply.OpDelete {
			t.Fatalf("log entry at %d: %+v, %v", s, e, err)
		}
		if info, err := jc.Info(t.Context()); err != nil || info.LastSeq != s {
			t.Fatalf("log last seq %d (%v), want %d: one entry for the transaction", info.LastSeq, err, s)
		}
	})
	t.Run("Binary", func(t *testing.T) {
		body := api.AppendTxnBinary(nil, []api.TxnOp{
			{Op: apply.OpPut, Key: []byte("t/bin/1"), Value: []byte("raw\x00")},
			{Op: apply.OpPut, Key: []byte("t/a"), Value: []byte("2"), Cond: apply.Cond{IfMatch: s, HasIfMatch: true}},
		})
		code, a := postTxn(t, lurl, string(body), "Content-Type", api.ContentTypeTxn)
		if code != http.StatusOK || a.Ops != 2 || a.Version != s+1 {
			t.Fatalf("binary txn: %d %+v, want 200 at %d", code, a, s+1)
		}
		wantKey(t, lurl, "t/bin/1", "raw\x00", s+1)
		wantKey(t, lurl, "t/a", "2", s+1)
	})
	t.Run("LargestTxn", func(t *testing.T) {
		// An entry of exactly apply.MaxTxnLen bytes, one NATS message with the leader's headers: it fits the server's
		// default max_payload.
		ops := []apply.TxnOp{{Op: apply.OpPut, Key: []byte("t/large/1"), Value: make([]byte, apply.MaxValueLen)},
			{Op: apply.OpPut, Key: []byte("t/large/2")}}
		ops[1].Value = make([]byte, apply.MaxTxnLen-apply.TxnLen(ops)-2) // its length takes 3 bytes, not 1
		if apply.TxnLen(ops) != apply.MaxTxnLen {
			t.Fatalf("entry of %d bytes, want %d", apply.TxnLen(ops), apply.MaxTxnLen)
		}
		body := api.AppendTxnBinary(nil, []api.TxnOp{{Op: ops[0].Op, Key: ops[0].Key, Value: ops[0].Value},
			{Op: ops[1].Op, Key: ops[1].Key, Value: ops[1].Value}})
		code, a := postTxn(t, lurl, string(body), "Content-Type", api.ContentTypeTxn)
		if code != http.StatusOK || a.Version != s+2 {
			t.Fatalf("largest txn: %d %+v, want 200 at %d", code, a, s+2)
		}
		if _, got, v := getKey(t, lurl, "t/large/2"); len(got) != len(ops[1].Value) || v != s+2 {
			t.Fatalf("t/large/2: %d bytes at %d", len(got), v)
		}
		if code, a := postTxn(t, lurl, `{"ops":[{"op":"delete","key":"t/large/1"},{"op":"delete","key":"t/large/2"}]}`); code != http.StatusOK {
			t.Fatalf("delete the large keys: %d %+v", code, a)
		}
	})
	refused := func(t *testing.T, body string, status int, code string, op int, key string) {
		t.Helper()
		before := l.Applied()
		got, a := postTxn(t, lurl, body)
		if got != status || a.Code != code || a.Op == nil || *a.Op != op || a.Key == nil || *a.Key != key {
			t.Fatalf("txn: %d %+v, want %d %s naming op %d (%s)", got, a, status, code, op, key)
		}
		if info, err := jc.Info(t.Context()); err != nil || info.LastSeq != before || l.Applied() != before {
			t.Fatalf("a refused transaction reached the log: last seq %d (%v), applied %d, want %d", info.LastSeq, err,
				l.Applied(), before)
		}
	}
	t.Run("PreconditionFailsAll", func(t *testing.T) {
		refused(t, fmt.Sprintf(`{"ops":[
			{"op":"put","key":"t/new","value":"n"},
			{"op":"put","key":"t/c","value":"x","if_match":%d},
			{"op":"delete","key":"t/never"}]}`, s+7), http.StatusPreconditionFailed, "precondition_failed", 1, "t/c")
		wantKey(t, lurl, "t/new", "", 0)
		wantKey(t, lurl, "t/c", "c", s)
	})
	t.Run("IfAbsentOnExisting", func(t *testing.T) {
		refused(t, `{"ops":[{"op":"delete","key":"t/b"},{"op":"put","key":"t/a","value":"x","if_absent":true}]}`,
			http.StatusPreconditionFailed, "precondition_failed", 1, "t/a")
		wantKey(t, lurl, "t/b", "\x00\x01\xff", s)
	})
	t.Run("DeleteAbsent", func(t *testing.T) {
		refused(t, `{"ops":[{"op":"put","key":"t/d","value":"d"},{"op":"delete","key":"t/never"}]}`,
			http.StatusNotFound, "not_found", 1, "t/never")
		wantKey(t, lurl, "t/d", "", 0)
	})
	t.Run("Follower", func(t *testing.T) {
		waitState(t, furl, stateReady, 20*time.Second)
		digestsEqual(t, lurl, furl, 20*time.Second)
		code, b, h := do(t, http.MethodPost, furl+"/v1/txn", []byte(`{"ops":[{"op":"delete","key":"t/a"}]}`))
		if code != http.StatusTemporaryRedirect || h.Get("Location") != lurl+"/v1/txn" {
			t.Fatalf("txn on a follower: %d %s, Location %q", code, b, h.Get("Location"))
		}
		code, b, _ = do(t, http.MethodGet, furl+"/v1/kv/t/c?min_seq="+strconv.FormatUint(s, 10), nil)
		if code != http.StatusOK || string(b) != "c" {
			t.Fatalf("follower read of a transaction's key: %d %q", code, b)
		}
	})
	t.Run("SnapshotAfterTxns", func(t *testing.T) {
		for i := range 5 {
			body := `{"ops":[`
			for j := range 50 {
				if j > 0 {
					body += ","
				}
				body += fmt.Sprintf(`{"op":"put","key":"bulk/%d/%02d","value":"%d"}`, i, j, i*j)
			}
			if code, a := postTxn(t, lurl, body+`]}`); code != http.StatusOK {
				t.Fatalf("bulk txn %d: %d %+v", i, code, a)
			}
		}
		code, b, _ := do(t, http.MethodPost, lurl+"/v1/snapshots", nil)
		if code != http.StatusCreated {
			t.Fatalf("snapshot: %d %s", code, b)
		}
		var m struct{ Seq uint64 }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if code, a := postTxn(t, lurl, `{"ops":[{"op":"put","key":"after","value":"snap"},{"op":"delete","key":"bulk/0/00"}]}`); code != http.StatusOK {
			t.Fatalf("txn after the snapshot: %d %+v", code, a)
		}
		f2 := startFollower(t, t.TempDir(), snapDir, l.NATSURL(), "--id", "f2")
		f2url := base(f2.HTTPAddr())
		if st := waitState(t, f2url, stateReady, 30*time.Second); st.SnapshotSeq != m.Seq {
			t.Fatalf("snapshot_seq %d, want %d", st.SnapshotSeq, m.Seq)
		}
		d := digestsEqual(t, lurl, f2url, 20*time.Second)
		if d2 := digestsEqual(t, lurl, furl, 20*time.Second); d2 != d {
			t.Fatalf("followers disagree: %+v and %+v", d, d2)
		}
		if want := uint64(5*50 - 1 + 4 + 1); d.Keys != want { // bulk minus one deleted, t/a t/b t/c t/bin/1, after
			t.Fatalf("keys = %d, want %d", d.Keys, want)
		}
	})
}

// TestLeader_TxnReadBarrier: while a transaction's entry is in the log and not applied on the leader, a leader read
// of any of its keys (and a list or digest) waits for it and then sees all of it; a read of another key does not
// wait.
func TestLeader_TxnReadBarrier(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	put(t, url, "other", "o")
	_, v1 := put(t, url, "d", "x")
	jc := connectJournal(t, l.NATSURL())

	g, release := holdAcks(t, l, nil)
	w := asyncTxn(t, url, `{"ops":[{"op":"put","key":"a","value":"A"},{"op":"put","key":"b","value":"B"},{"op":"delete","key":"d"}]}`)
	<-g.held
	logHolds(t, jc, v1+1)
	if code, b, _ := do(t, http.MethodGet, url+"/v1/kv/other?timeout=2s", nil); code != http.StatusOK || string(b) != "o" {
		t.Fatalf("GET of a key outside the transaction: %d %q", code, b)
	}
	var reads []<-chan answer
	paths := []string{"/v1/kv/a", "/v1/kv/b", "/v1/kv/d", "/v1/kv?values=true", "/v1/digest"}
	for _, p := range paths {
		r := async(t, http.MethodGet, url+p, nil)
		notYet(t, "GET "+p, r, 200*time.Millisecond)
		reads = append(reads, r)
	}
	release()
	a := recv(t, w)
	if a.code != http.StatusOK || txnOf(t, a).Version != v1+1 {
		t.Fatalf("txn: %d %s, want 200 at %d", a.code, a.body, v1+1)
	}
	for i, r := range reads {
		a := recv(t, r)
		if a.hdr.Get("Replikv-Seq") != strconv.FormatUint(v1+1, 10) {
			t.Fatalf("GET %s: %d %s at seq %s, want seq %d", paths[i], a.code, a.body, a.hdr.Get("Replikv-Seq"), v1+1)
		}
		switch paths[i] {
		case "/v1/kv/a", "/v1/kv/b":
			if a.code != http.StatusOK || a.hdr.Get("ETag") != etagOf(v1+1) {
				t.Fatalf("GET %s: %d %s %s", paths[i], a.code, a.body, a.hdr.Get("ETag"))
			}
		case "/v1/kv/d":
			if a.code != http.StatusNotFound {
				t.Fatalf("GET %s: %d %s, want 404", paths[i], a.code, a.body)
			}
		}
	}
}

// TestLeader_TxnPreconditionOnInFlightWrite: a transaction's operation checked against a single write still in
// flight: a check that passes chains the transaction behind that write; one that fails is answered only once the
// write is applied (412 naming the operation and the in-flight write's version), and nothing of that transaction
// is written; when the write it was checked against fails, the answer is 503 unavailable, never 412.
func TestLeader_TxnPreconditionOnInFlightWrite(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v1 := put(t, url, "k", "old")

	t.Run("Serialized", func(t *testing.T) {
		g, release := holdAcks(t, l, nil)
		w := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new")) // v1+1, in flight
		<-g.held
		stale := asyncTxn(t, url, fmt.Sprintf(`{"ops":[{"op":"put","key":"j","value":"j","if_absent":true},
			{"op":"put","key":"k","value":"stale","if_match":%d}]}`, v1))
		notYet(t, "a transaction refused on an in-flight version", stale, 300*time.Millisecond)
		// Checked against the in-flight version: passes, chained behind it.
		chained := asyncTxn(t, url, fmt.Sprintf(`{"ops":[{"op":"put","key":"k","value":"txn","if_match":%d},
			{"op":"put","key":"m","value":"m"}]}`, v1+1))
		released := time.Now()
		release()
		if a := recv(t, w); a.code != http.StatusOK {
			t.Fatalf("PUT: %d %s", a.code, a.body)
		}
		a := recv(t, stale)
		ta := txnOf(t, a)
		if a.code != http.StatusPreconditionFailed || a.at.Before(released) || ta.Op == nil || *ta.Op != 1 ||
			!strings.Contains(string(a.body), fmt.Sprintf(`"version":%d`, v1+1)) {
			t.Fatalf("stale txn: %d %s at %s, want 412 naming op 1 at version %d after the release at %s", a.code, a.body,
				a.at, v1+1, released)
		}
		a = recv(t, chained)
		if a.code != http.StatusOK || txnOf(t, a).Version != v1+2 {
			t.Fatalf("chained txn: %d %s, want 200 at %d", a.code, a.body, v1+2)
		}
		wantKey(t, url, "k", "txn", v1+2)
		wantKey(t, url, "m", "m", v1+2)
		wantKey(t, url, "j", "", 0)
	})
	t.Run("FailedInFlightWrite", func(t *testing.T) {
		_, v := put(t, url, "f", "old")
		g, release := holdAcks(t, l, fmt.Errorf("test: ack lost: %w", journal.ErrUnavailable))
		w := async(t, http.MethodPut, url+"/v1/kv/f", []byte("new"))
		<-g.held
		txn := asyncTxn(t, url, fmt.Sprintf(`{"ops":[{"op":"put","key":"f","value":"txn","if_match":%d}]}`, v))
		notYet(t, "a transaction refused on an in-flight version", txn, 300*time.Millisecond)
		release()
		if a := recv(t, w); a.code != http.StatusServiceUnavailable {
			t.Fatalf("PUT with a lost ack: %d %s, want 503", a.code, a.body)
		}
		if a := recv(t, txn); a.code != http.StatusServiceUnavailable || errCode(t, a.body) != "unavailable" {
			t.Fatalf("txn checked against a failed write: %d %s, want 503 unavailable", a.code, a.body)
		}
	})
}

// TestLeader_TxnSerializesWithSingleWrites: compare-and-set increments of two counters, some through single PUTs
// of one counter, some through transactions of both, from concurrent clients: no increment is lost or doubled,
// and each transaction that commits writes both counters at one version.
func TestLeader_TxnSerializesWithSingleWrites(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	put(t, url, "c0", "0")
	put(t, url, "c1", "0")
	var singles, txns atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				_, s0, v0 := getKey(t, url, "c0")
				n0, _ := strconv.Atoi(s0)
				if (w+i)%2 == 0 {
					code, _ := put(t, url, "c0", strconv.Itoa(n0+1), "If-Match", etagOf(v0))
					switch code {
					case http.StatusOK:
						singles.Add(1)
					case http.StatusPreconditionFailed:
					default:
						t.Errorf("PUT: %d", code)
					}
					continue
				}
				_, s1, v1 := getKey(t, url, "c1")
				n1, _ := strconv.Atoi(s1)
				code, a := postTxn(t, url, fmt.Sprintf(`{"ops":[{"op":"put","key":"c0","value":"%d","if_match":%d},
					{"op":"put","key":"c1","value":"%d","if_match":%d}]}`, n0+1, v0, n1+1, v1))
				switch code {
				case http.StatusOK:
					txns.Add(1)
				case http.StatusPreconditionFailed:
					if a.Op == nil || a.Key == nil || *a.Key != fmt.Sprintf("c%d", *a.Op) {
						t.Errorf("412 names %v %v", a.Op, a.Key)
					}
				default:
					t.Errorf("txn: %d %+v", code, a)
				}
			}
		})
	}
	wg.Wait()
	_, s0, _ := getKey(t, url, "c0")
	_, s1, _ := getKey(t, url, "c1")
	if s0 != strconv.FormatInt(singles.Load()+txns.Load(), 10) || s1 != strconv.FormatInt(txns.Load(), 10) {
		t.Fatalf("c0 = %s, c1 = %s after %d single and %d transaction increments", s0, s1, singles.Load(), txns.Load())
	}
	if txns.Load() == 0 || singles.Load() == 0 {
		t.Fatalf("%d single and %d transaction increments: the test did not mix them", singles.Load(), txns.Load())
	}
	t.Logf("%d single and %d transaction increments committed", singles.Load(), txns.Load())
}

// txnEntry encodes a transaction of ops (sorted here).
func txnEntry(ops ...apply.TxnOp) []byte {
	apply.SortTxnOps(ops)
	return apply.AppendEntry(nil, apply.Entry{Op: apply.OpTxn, Ops: ops})
}

// TestApplier_Txn: a follower applies a transaction entry as the mutations of all its keys at the entry's sequence;
// batches of transactions beyond maxBatchKeys keys are committed in several store batches, never splitting one.
func TestApplier_Txn(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	a := &applier{db: db}
	msgs := []journal.Msg{
		{Seq: 1, Data: putEntry("a", "1"), ID: "m1"},
		{Seq: 2, Data: txnEntry(apply.TxnOp{Op: apply.OpDelete, Key: []byte("a")},
			apply.TxnOp{Op: apply.OpPut, Key: []byte("c"), Value: []byte("3")},
			apply.TxnOp{Op: apply.OpPut, Key: []byte("b"), Value: []byte{}}), ID: "m2"},
	}
	// Enough transactions of 1000 keys to pass maxBatchKeys twice.
	const big = 2*maxBatchKeys/apply.MaxTxnOps + 1
	for i := range big {
		ops := make([]apply.TxnOp, apply.MaxTxnOps)
		for j := range ops {
			ops[j] = apply.TxnOp{Op: apply.OpPut, Key: fmt.Appendf(nil, "bulk/%02d/%04d", i, j), Value: []byte("v")}
		}
		msgs = append(msgs, journal.Msg{Seq: uint64(3 + i), Data: txnEntry(ops...), ID: "b" + strconv.Itoa(i)})
	}
	last := uint64(len(msgs))
	seq, err := a.apply(msgs)
	if err != nil || seq != last || db.Applied() != last {
		t.Fatalf("apply = %d, %v; applied %d; want %d", seq, err, db.Applied(), last)
	}
	if _, _, err := db.Get([]byte("a")); err == nil {
		t.Fatal("a survived the transaction that deleted it")
	}
	for _, k := range []string{"b", "c"} {
		if _, v, err := db.Get([]byte(k)); err != nil || v != 2 {
			t.Fatalf("%s: version %d, %v; want 2", k, v, err)
		}
	}
	if _, v, err := db.Get(fmt.Appendf(nil, "bulk/%02d/%04d", big-1, apply.MaxTxnOps-1)); err != nil || v != last {
		t.Fatalf("last transaction's last key: version %d, %v; want %d", v, err, last)
	}
	if markSeq, mark := db.Mark(); markSeq != last || mark != apply.EntryMark(last, msgs[last-1].ID, msgs[last-1].Data) {
		t.Fatalf("store mark at %d, want the last entry's (%d)", markSeq, last)
	}
	view, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	if keys, _, err := view.Digest(); err != nil || keys != 2+big*apply.MaxTxnOps {
		t.Fatalf("keys = %d, %v; want %d", keys, err, 2+big*apply.MaxTxnOps)
	}
}
