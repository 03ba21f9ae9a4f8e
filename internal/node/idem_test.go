package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/journal"
)

// idemWrite sends a write with an Idempotency-Key and returns its status, version (0 unless 200) and whether the
// answer says it was replayed.
func idemWrite(t *testing.T, method, url, key, ikey string, body []byte, hdr ...string) (int, uint64, bool) {
	t.Helper()
	path := "/v1/kv/" + key
	if method == http.MethodPost {
		path = "/v1/txn"
	}
	code, b, h := do(t, method, url+path, body, append([]string{api.HeaderIdempotencyKey, ikey}, hdr...)...)
	var res struct {
		Version uint64 `json:"version"`
		Code    string `json:"code"`
	}
	_ = json.Unmarshal(b, &res)
	if code == http.StatusUnprocessableEntity && res.Code != api.CodeIdempotencyReused {
		t.Fatalf("%s %s: 422 with code %q, want %s", method, path, res.Code, api.CodeIdempotencyReused)
	}
	return code, res.Version, h.Get(api.HeaderIdempotentReplayed) == "true"
}

func TestLeader_IdempotentWrites(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)

	code, v1, replayed := idemWrite(t, http.MethodPut, url, "a", "w1", []byte("1"))
	if code != http.StatusOK || replayed {
		t.Fatalf("first PUT with a key: %d, replayed %v", code, replayed)
	}
	_, v2 := put(t, url, "a", "2")
	t.Run("RetryReturnsTheFirstResult", func(t *testing.T) {
		code, v, replayed := idemWrite(t, http.MethodPut, url, "a", "w1", []byte("1"))
		if code != http.StatusOK || v != v1 || !replayed {
			t.Fatalf("retry: %d version %d replayed %v; want 200, %d, replayed", code, v, replayed, v1)
		}
		if _, val, ver := getKey(t, url, "a"); val != "2" || ver != v2 {
			t.Fatalf("after the retry a = %q at %d; want the later write's 2 at %d", val, ver, v2)
		}
	})
	t.Run("OtherRequestSameKey", func(t *testing.T) {
		applied := l.Applied()
		for name, send := range map[string]func() int{
			"OtherValue": func() int { c, _, _ := idemWrite(t, http.MethodPut, url, "a", "w1", []byte("x")); return c },
			"OtherKey":   func() int { c, _, _ := idemWrite(t, http.MethodPut, url, "b", "w1", []byte("1")); return c },
			"Precondition": func() int {
				c, _, _ := idemWrite(t, http.MethodPut, url, "a", "w1", []byte("1"), "If-Match", etagOf(v2))
				return c
			},
			"Delete": func() int { c, _, _ := idemWrite(t, http.MethodDelete, url, "a", "w1", nil); return c },
		} {
			if code := send(); code != http.StatusUnprocessableEntity {
				t.Errorf("%s with a used key: %d, want 422", name, code)
			}
		}
		if got := l.Applied(); got != applied {
			t.Errorf("refused requests moved the applied sequence from %d to %d", applied, got)
		}
	})
	t.Run("BadKeys", func(t *testing.T) {
		applied := l.Applied()
		for _, k := range []string{"has space", strings.Repeat("k", 129), "é"} {
			code, _, _ := do(t, http.MethodPut, url+"/v1/kv/c", []byte("1"), api.HeaderIdempotencyKey, k)
			if code != http.StatusBadRequest {
				t.Errorf("PUT with Idempotency-Key %.10q: %d, want 400", k, code)
			}
		}
		if got := l.Applied(); got != applied {
			t.Errorf("refused requests moved the applied sequence from %d to %d", applied, got)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		code, vd, _ := idemWrite(t, http.MethodDelete, url, "a", "d1", nil)
		if code != http.StatusOK {
			t.Fatalf("DELETE: %d", code)
		}
		put(t, url, "a", "3")
		// Retried after a re-creation, the delete is not applied again.
		code, v, replayed := idemWrite(t, http.MethodDelete, url, "a", "d1", nil)
		if code != http.StatusOK || v != vd || !replayed {
			t.Fatalf("DELETE retry: %d version %d replayed %v; want 200, %d, replayed", code, v, replayed, vd)
		}
		if code, val, _ := getKey(t, url, "a"); code != http.StatusOK || val != "3" {
			t.Fatalf("a after the retried delete: %d %q, want 3", code, val)
		}
	})
	t.Run("Txn", func(t *testing.T) {
		body := []byte(`{"ops":[{"op":"put","key":"t1","value":"x"},{"op":"put","key":"t2","value":"y","if_absent":true}]}`)
		code, vt, _ := idemWrite(t, http.MethodPost, url, "", "t1", body)
		if code != http.StatusOK {
			t.Fatalf("txn: %d", code)
		}
		// Without the key the retry would fail its if_absent with 412; with it, it is the first answer.
		code, v, replayed := idemWrite(t, http.MethodPost, url, "", "t1", body)
		if code != http.StatusOK || v != vt || !replayed {
			t.Fatalf("txn retry: %d version %d replayed %v; want 200, %d, replayed", code, v, replayed, vt)
		}
		if code, _, _ := idemWrite(t, http.MethodPost, url, "", "t1", []byte(`{"ops":[{"op":"put","key":"t1","value":"z"}]}`)); code != http.StatusUnprocessableEntity {
			t.Fatalf("another txn with the key: %d, want 422", code)
		}
	})
}

// A write whose acknowledgement is lost is answered outcome_unknown; its retry with the same key finds it in the
// log (the resync applied it with its record) and returns its version instead of writing it again.
func TestLeader_IdempotentRetryAfterLostAck(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir())
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	jc := connectJournal(t, l.NATSURL())
	_, v0 := put(t, url, "k", "old")

	g, release := holdAcks(t, l, fmt.Errorf("test: ack lost: %w", journal.ErrUnavailable))
	w := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new"), api.HeaderIdempotencyKey, "lost-1")
	<-g.held
	logHolds(t, jc, v0+1)
	// A retry while the first is in flight waits for it.
	early := async(t, http.MethodPut, url+"/v1/kv/k", []byte("new"), api.HeaderIdempotencyKey, "lost-1")
	notYet(t, "a retry of a write in flight", early, 300*time.Millisecond)
	release()
	if a := recv(t, w); a.code != http.StatusServiceUnavailable || errCode(t, a.body) != "outcome_unknown" {
		t.Fatalf("PUT with a lost ack: %d %s, want 503 outcome_unknown", a.code, a.body)
	}
	if a := recv(t, early); a.code != http.StatusServiceUnavailable || errCode(t, a.body) != "outcome_unknown" {
		t.Fatalf("the retry waiting for the lost write: %d %s, want 503 outcome_unknown", a.code, a.body)
	}
	var code int
	var v uint64
	var replayed bool
	eventually(t, 10*time.Second, func() string {
		code, v, replayed = idemWrite(t, http.MethodPut, url, "k", "lost-1", []byte("new"))
		if code != http.StatusOK {
			return fmt.Sprintf("retry: %d", code)
		}
		return ""
	})
	if v != v0+1 || !replayed {
		t.Fatalf("retry after the lost ack: version %d replayed %v; want %d (the entry in the log), replayed", v, replayed, v0+1)
	}
	if _, val, ver := getKey(t, url, "k"); val != "new" || ver != v0+1 {
		t.Fatalf("k = %q at %d; want new at %d, written once", val, ver, v0+1)
	}
	info, err := jc.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.LastSeq != v0+1 {
		t.Fatalf("the log ends at %d after the retry; want %d (nothing written again)", info.LastSeq, v0+1)
	}
}

// A retry that reaches a new leader after failover is answered with the first write's result, also when the new
// leader was restored from a snapshot taken after that write (the snapshot carries the records).
func TestFollower_IdempotencyAcrossFailover(t *testing.T) {
	s := startFailover(t)
	code, v1, _ := idemWrite(t, http.MethodPut, s.url, "k", "fo-1", []byte("1"))
	if code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}
	if code, _, _ := do(t, http.MethodPost, s.url+"/v1/snapshots", nil); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("POST /v1/snapshots: %d", code)
	}
	_, v2 := put(t, s.url, "k", "2")
	f, url, _ := s.follower(t, false)
	st := waitState(t, url, stateReady, 20*time.Second)
	if st.SnapshotSeq == 0 {
		t.Fatalf("the follower did not start from the snapshot: %+v", st)
	}
	if err := s.leader.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := do(t, http.MethodPost, url+"/v1/promote", nil); code != http.StatusOK {
		t.Fatalf("promote: %d %s", code, body)
	}
	if !f.Leading() {
		t.Fatal("the follower does not lead after its promotion")
	}
	code, v, replayed := idemWrite(t, http.MethodPut, url, "k", "fo-1", []byte("1"))
	if code != http.StatusOK || v != v1 || !replayed {
		t.Fatalf("retry on the new leader: %d version %d replayed %v; want 200, %d, replayed", code, v, replayed, v1)
	}
	if _, val, ver := getKey(t, url, "k"); val != "2" || ver != v2 {
		t.Fatalf("k = %q at %d on the new leader; want 2 at %d", val, ver, v2)
	}
	if code, _, _ := idemWrite(t, http.MethodPut, url, "k", "fo-1", []byte("other")); code != http.StatusUnprocessableEntity {
		t.Fatalf("another request with the key on the new leader: %d, want 422", code)
	}
}

// Past --idempotency-ttl a key no longer answers: the same request writes again.
func TestLeader_IdempotencyExpires(t *testing.T) {
	l := startLeader(t, t.TempDir(), t.TempDir(), "--idempotency-ttl", "1s")
	url := base(l.HTTPAddr())
	waitState(t, url, stateReady, 20*time.Second)
	_, v1, _ := idemWrite(t, http.MethodPut, url, "k", "e1", []byte("1"))
	eventually(t, 10*time.Second, func() string {
		code, v, replayed := idemWrite(t, http.MethodPut, url, "k", "e1", []byte("1"))
		if code != http.StatusOK {
			t.Fatalf("retry: %d", code)
		}
		if replayed || v == v1 {
			return fmt.Sprintf("still replayed (version %d)", v)
		}
		return ""
	})
}
