package journal

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecodeHeartbeat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Heartbeat
		ok   bool
	}{
		{"OK", `{"id":"f1","state":"ready","applied":42,"lag":3,"sent_at":"2026-01-02T03:04:05Z"}`,
			Heartbeat{ID: "f1", State: StateReady, Applied: 42, Lag: 3, SentAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			true},
		{"MissingNumbers", `{"id":"f1","state":"starting"}`, Heartbeat{ID: "f1", State: StateStarting}, true},
		{"TrailingSpace", `{"id":"f1","state":"failed"}  ` + "\n", Heartbeat{ID: "f1", State: StateFailed}, true},
		{"UnknownField", `{"id":"f1","state":"ready","extra":1}`, Heartbeat{}, false},
		{"UnknownState", `{"id":"f1","state":"sleeping"}`, Heartbeat{}, false},
		{"EmptyID", `{"id":"","state":"ready"}`, Heartbeat{}, false},
		{"LongID", `{"id":"` + strings.Repeat("x", 257) + `","state":"ready"}`, Heartbeat{}, false},
		{"TrailingObject", `{"id":"f1","state":"ready"}{}`, Heartbeat{}, false},
		{"TrailingGarbage", `{"id":"f1","state":"ready"}x`, Heartbeat{}, false},
		{"NegativeApplied", `{"id":"f1","state":"ready","applied":-1}`, Heartbeat{}, false},
		{"BadTime", `{"id":"f1","state":"ready","sent_at":"yesterday"}`, Heartbeat{}, false},
		{"Null", `null`, Heartbeat{}, false},
		{"Array", `[]`, Heartbeat{}, false},
		{"Empty", ``, Heartbeat{}, false},
		{"TooBig", `{"id":"f1","state":"ready"}` + strings.Repeat(" ", 4096), Heartbeat{}, false},
		{"URL", `{"id":"f1","state":"ready","url":"https://f1.example:8081"}`,
			Heartbeat{ID: "f1", State: StateReady, URL: "https://f1.example:8081"}, true},
		{"URLNotHTTP", `{"id":"f1","state":"ready","url":"javascript:alert(1)"}`, Heartbeat{}, false},
		{"URLNoHost", `{"id":"f1","state":"ready","url":"http://"}`, Heartbeat{}, false},
		{"URLWithCredentials", `{"id":"f1","state":"ready","url":"http://u:p@f1:8081"}`, Heartbeat{}, false},
		{"URLTooLong", `{"id":"f1","state":"ready","url":"http://f1/` + strings.Repeat("x", 1024) + `"}`, Heartbeat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeHeartbeat([]byte(tt.in))
			if !tt.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("DecodeHeartbeat = %+v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeHeartbeat: %v", err)
			}
			if !heartbeatEqual(got, tt.want) {
				t.Fatalf("DecodeHeartbeat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEncodeHeartbeat(t *testing.T) {
	tests := []struct {
		name string
		h    Heartbeat
		ok   bool
	}{
		{"OK", Heartbeat{ID: "f", State: StateCatchingUp, Applied: 1, Lag: 2, SentAt: time.Now()}, true},
		{"EveryState", Heartbeat{ID: "f", State: StateDegraded}, true},
		{"NoID", Heartbeat{State: StateReady}, false},
		{"BadState", Heartbeat{ID: "f", State: "READY"}, false},
		{"URL", Heartbeat{ID: "f", State: StateReady, URL: "http://127.0.0.1:8081"}, true},
		{"BadURL", Heartbeat{ID: "f", State: StateReady, URL: "ftp://f:21"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeHeartbeat(tt.h)
			if !tt.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("EncodeHeartbeat = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeHeartbeat(b)
			if err != nil || !heartbeatEqual(got, tt.h) {
				t.Fatalf("round trip = %+v, %v; want %+v", got, err, tt.h)
			}
		})
	}
}

func heartbeatEqual(a, b Heartbeat) bool {
	return a.ID == b.ID && a.State == b.State && a.Applied == b.Applied && a.Lag == b.Lag && a.SentAt.Equal(b.SentAt) &&
		a.URL == b.URL
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add([]byte(`{"id":"f1","state":"ready","applied":42,"lag":3,"sent_at":"2026-01-02T03:04:05.123+02:00"}`))
	f.Add([]byte(`{"id":"f1","state":"starting"}`))
	f.Add([]byte(`{"id":"\u00e9\ud800","state":"catching_up","applied":18446744073709551615}`))
	f.Add([]byte(`{"id":"f1","state":"ready"}{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"ID":"f1","STATE":"ready"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeartbeat(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same value.
		enc, err := EncodeHeartbeat(h)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", h, err)
		}
		again, err := DecodeHeartbeat(enc)
		if err != nil || !heartbeatEqual(again, h) {
			t.Fatalf("round trip of %q = %+v, %v; want %+v", enc, again, err, h)
		}
	})
}

func TestConn_SubscribeHeartbeats(t *testing.T) {
	e := startServer(t)
	leader := connect(t, e.ClientURL(), "HB")
	follower := connect(t, e.ClientURL(), "HB")
	otherStream := connect(t, e.ClientURL(), "HB2")

	var mu sync.Mutex
	var got []Heartbeat
	stop, err := leader.SubscribeHeartbeats(func(h Heartbeat) {
		mu.Lock()
		got = append(got, h)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	// Make sure the subscription reached the server before publishing.
	if err := leader.conn().Flush(); err != nil {
		t.Fatal(err)
	}

	sent := Heartbeat{ID: "f1", State: StateCatchingUp, Applied: 7, Lag: 93, SentAt: time.Now().Round(0)}
	if err := otherStream.PublishHeartbeat(Heartbeat{ID: "elsewhere", State: StateReady}); err != nil {
		t.Fatal(err)
	}
	if err := follower.conn().Publish(heartbeatSubject("HB"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if err := follower.PublishHeartbeat(sent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "heartbeat", func() bool { return count() >= 1 })
	mu.Lock()
	first := got[0]
	mu.Unlock()
	if !heartbeatEqual(first, sent) {
		t.Fatalf("received %+v, want %+v", first, sent)
	}
	if err := follower.PublishHeartbeat(Heartbeat{ID: "f1"}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("PublishHeartbeat(invalid) = %v, want ErrMalformed", err)
	}

	stop()
	stop() // idempotent
	if err := follower.PublishHeartbeat(sent); err != nil {
		t.Fatal(err)
	}
	if err := follower.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	// A round trip through the server on the leader's connection: anything routed to it has arrived by now.
	if err := leader.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("received %d heartbeats, want exactly 1 (other stream, garbage and after-stop ones dropped)", n)
	}
}
