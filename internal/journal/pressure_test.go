package journal

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/replikv/replikv/internal/testutil/testlog"
)

func TestDecodePressure(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want Pressure
		ok   bool
	}{
		{"OK", `{"epoch":7,"writes":1200,"p99_us":3500,"window_ms":250,"sent_at":"2026-01-02T03:04:05Z"}`,
			Pressure{Epoch: 7, Writes: 1200, P99: 3500 * time.Microsecond, Window: 250 * time.Millisecond, SentAt: at},
			true},
		{"Idle", `{"epoch":1,"writes":0,"p99_us":0,"window_ms":250,"sent_at":"2026-01-02T03:04:05Z"}`,
			Pressure{Epoch: 1, Window: 250 * time.Millisecond, SentAt: at}, true},
		{"MissingOptional", `{"epoch":1,"window_ms":1}`, Pressure{Epoch: 1, Window: time.Millisecond}, true},
		{"WritesWithoutP99", `{"epoch":1,"writes":3,"window_ms":250}`,
			Pressure{Epoch: 1, Writes: 3, Window: 250 * time.Millisecond}, true},
		{"Bounds", `{"epoch":18446744073709551615,"writes":18446744073709551615,"p99_us":3600000000,"window_ms":60000}`,
			Pressure{Epoch: 1<<64 - 1, Writes: 1<<64 - 1, P99: time.Hour, Window: time.Minute}, true},
		{"TrailingSpace", `{"epoch":1,"window_ms":250}  ` + "\n", Pressure{Epoch: 1, Window: 250 * time.Millisecond}, true},
		{"ZeroEpoch", `{"epoch":0,"window_ms":250}`, Pressure{}, false},
		{"NoEpoch", `{"window_ms":250}`, Pressure{}, false},
		{"NoWindow", `{"epoch":1}`, Pressure{}, false},
		{"ZeroWindow", `{"epoch":1,"window_ms":0}`, Pressure{}, false},
		{"LongWindow", `{"epoch":1,"window_ms":60001}`, Pressure{}, false},
		{"P99WithoutWrites", `{"epoch":1,"writes":0,"p99_us":1,"window_ms":250}`, Pressure{}, false},
		{"LongP99", `{"epoch":1,"writes":1,"p99_us":3600000001,"window_ms":250}`, Pressure{}, false},
		{"NegativeWrites", `{"epoch":1,"writes":-1,"window_ms":250}`, Pressure{}, false},
		{"FractionalP99", `{"epoch":1,"writes":1,"p99_us":1.5,"window_ms":250}`, Pressure{}, false},
		{"HugeEpoch", `{"epoch":18446744073709551616,"window_ms":250}`, Pressure{}, false},
		{"StringNumber", `{"epoch":"1","window_ms":250}`, Pressure{}, false},
		{"GoFieldName", `{"epoch":1,"window_ms":250,"P99":5}`, Pressure{}, false},
		{"UnknownField", `{"epoch":1,"window_ms":250,"extra":1}`, Pressure{}, false},
		{"BadTime", `{"epoch":1,"window_ms":250,"sent_at":"yesterday"}`, Pressure{}, false},
		{"TrailingObject", `{"epoch":1,"window_ms":250}{}`, Pressure{}, false},
		{"TrailingGarbage", `{"epoch":1,"window_ms":250}x`, Pressure{}, false},
		{"Null", `null`, Pressure{}, false},
		{"Array", `[]`, Pressure{}, false},
		{"Empty", ``, Pressure{}, false},
		{"TooBig", `{"epoch":1,"window_ms":250}` + strings.Repeat(" ", 1024), Pressure{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePressure([]byte(tt.in))
			if !tt.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("DecodePressure = %+v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodePressure: %v", err)
			}
			if !pressureEqual(got, tt.want) {
				t.Fatalf("DecodePressure = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEncodePressure(t *testing.T) {
	window := 250 * time.Millisecond
	tests := []struct {
		name string
		p    Pressure
		// want is what decoding the encoding gives, p itself when zero.
		want Pressure
		ok   bool
	}{
		{"OK", Pressure{Epoch: 3, Writes: 40, P99: 2 * time.Millisecond, Window: window, SentAt: time.Now()}, Pressure{},
			true},
		{"Idle", Pressure{Epoch: 1, Window: window}, Pressure{}, true},
		{"Bounds", Pressure{Epoch: 1, Writes: 1, P99: MaxPressureP99, Window: MaxPressureWindow}, Pressure{}, true},
		{"P99RoundsUp", Pressure{Epoch: 1, Writes: 1, P99: 1500 * time.Nanosecond, Window: window},
			Pressure{Epoch: 1, Writes: 1, P99: 2 * time.Microsecond, Window: window}, true},
		{"TinyP99IsNotZero", Pressure{Epoch: 1, Writes: 1, P99: 1, Window: window},
			Pressure{Epoch: 1, Writes: 1, P99: time.Microsecond, Window: window}, true},
		{"WindowRounds", Pressure{Epoch: 1, Window: 250*time.Millisecond + 400*time.Microsecond},
			Pressure{Epoch: 1, Window: window}, true},
		{"WindowRoundsUp", Pressure{Epoch: 1, Window: 600 * time.Microsecond},
			Pressure{Epoch: 1, Window: time.Millisecond}, true},
		{"NoEpoch", Pressure{Window: window}, Pressure{}, false},
		{"NoWindow", Pressure{Epoch: 1}, Pressure{}, false},
		{"WindowRoundsToZero", Pressure{Epoch: 1, Window: 400 * time.Microsecond}, Pressure{}, false},
		{"NegativeWindow", Pressure{Epoch: 1, Window: -window}, Pressure{}, false},
		{"LongWindow", Pressure{Epoch: 1, Window: MaxPressureWindow + time.Millisecond}, Pressure{}, false},
		{"P99WithoutWrites", Pressure{Epoch: 1, P99: time.Millisecond, Window: window}, Pressure{}, false},
		{"SubMicroP99WithoutWrites", Pressure{Epoch: 1, P99: 1, Window: window}, Pressure{}, false},
		{"NegativeP99", Pressure{Epoch: 1, Writes: 1, P99: -1, Window: window}, Pressure{}, false},
		{"LongP99", Pressure{Epoch: 1, Writes: 1, P99: MaxPressureP99 + 1, Window: window}, Pressure{}, false},
		{"MaxDurationP99", Pressure{Epoch: 1, Writes: 1, P99: 1<<63 - 1, Window: window}, Pressure{}, false},
		{"UnencodableTime", Pressure{Epoch: 1, Window: window, SentAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			Pressure{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodePressure(tt.p)
			if !tt.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("EncodePressure = %q, %v; want ErrMalformed", b, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == (Pressure{}) {
				want = tt.p
			}
			got, err := DecodePressure(b)
			if err != nil || !pressureEqual(got, want) {
				t.Fatalf("round trip of %s = %+v, %v; want %+v", b, got, err, want)
			}
		})
	}
}

// The wire format is what docs and other implementations rely on: field names and units.
func TestEncodePressure_Wire(t *testing.T) {
	b, err := EncodePressure(Pressure{Epoch: 9, Writes: 12, P99: 3 * time.Millisecond, Window: 250 * time.Millisecond,
		SentAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"epoch":9,"writes":12,"p99_us":3000,"window_ms":250,"sent_at":"2026-01-02T03:04:05.000006Z"}`
	if string(b) != want {
		t.Fatalf("EncodePressure = %s, want %s", b, want)
	}
}

func pressureEqual(a, b Pressure) bool {
	return a.Epoch == b.Epoch && a.Writes == b.Writes && a.P99 == b.P99 && a.Window == b.Window &&
		a.SentAt.Equal(b.SentAt)
}

func FuzzDecodePressure(f *testing.F) {
	f.Add([]byte(`{"epoch":7,"writes":1200,"p99_us":3500,"window_ms":250,"sent_at":"2026-01-02T03:04:05.123+02:00"}`))
	f.Add([]byte(`{"epoch":1,"window_ms":1}`))
	f.Add([]byte(`{"epoch":18446744073709551615,"writes":18446744073709551615,"p99_us":3600000000,"window_ms":60000}`))
	f.Add([]byte(`{"epoch":1,"writes":0,"p99_us":1,"window_ms":250}`))
	f.Add([]byte(`{"epoch":1,"window_ms":250}{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"EPOCH":1,"Window_MS":250}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePressure(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same value.
		enc, err := EncodePressure(p)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", p, err)
		}
		again, err := DecodePressure(enc)
		if err != nil || !pressureEqual(again, p) {
			t.Fatalf("round trip of %q = %+v, %v; want %+v", enc, again, err, p)
		}
	})
}

// connectLogged opens a Conn on stream whose log records debug messages too; it closes at cleanup.
func connectLogged(t *testing.T, url, stream string) (*Conn, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := Connect(testCtx(t), Config{URL: url, Stream: stream, Name: t.Name(),
		Logger: zap.New(zapcore.NewTee(testlog.New(t).Core(), core))})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c, logs
}

func TestConn_SubscribePressure(t *testing.T) {
	e := startServer(t)
	leader := connect(t, e.ClientURL(), "PR")
	follower, logs := connectLogged(t, e.ClientURL(), "PR")
	otherStream := connect(t, e.ClientURL(), "PR2")

	got := make(chan Pressure, 16)
	stop, err := follower.SubscribePressure(func(p Pressure) { got <- p })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	// Make sure the subscription reached the server before publishing.
	if err := follower.conn().Flush(); err != nil {
		t.Fatal(err)
	}

	sent := Pressure{Epoch: 4, Writes: 310, P99: 1800 * time.Microsecond, Window: 250 * time.Millisecond,
		SentAt: time.Now().Round(0)}
	if err := otherStream.PublishPressure(Pressure{Epoch: 9, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		`garbage`,
		`{"epoch":0,"window_ms":250}`,
		`{"epoch":1,"writes":0,"p99_us":5,"window_ms":250}`,
		`{"epoch":1,"window_ms":250,"extra":true}`,
	}
	for _, b := range bad {
		if err := leader.conn().Publish(pressureSubject("PR"), []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.PublishPressure(sent); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if !pressureEqual(p, sent) {
			t.Fatalf("received %+v, want %+v", p, sent)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pressure report did not arrive")
	}
	// The subscription delivers in order: every malformed report was dropped, and logged, before the valid one.
	dropped := logs.FilterMessage("dropped malformed pressure report").FilterLevelExact(zapcore.DebugLevel)
	if n := dropped.Len(); n != len(bad) {
		t.Fatalf("logged %d dropped pressure reports, want %d", n, len(bad))
	}
	invalid := Pressure{Epoch: 1, P99: time.Millisecond, Window: time.Second} // a p99 without writes
	if err := leader.PublishPressure(invalid); !errors.Is(err, ErrMalformed) {
		t.Fatalf("PublishPressure(invalid) = %v, want ErrMalformed", err)
	}

	stop()
	stop() // idempotent
	if err := leader.PublishPressure(sent); err != nil {
		t.Fatal(err)
	}
	if err := leader.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	// A round trip through the server on the follower's connection: anything routed to it has arrived by now.
	if err := follower.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("received %+v: the other stream's, a malformed or an after-stop report", <-got)
	}
}

// stop waits for a running fn, and nothing is delivered after it returned; Close stops the subscription too, and a
// closed Conn refuses new ones.
func TestConn_SubscribePressure_Stop(t *testing.T) {
	e := startServer(t)
	leader := connect(t, e.ClientURL(), "PRSTOP")
	follower := connect(t, e.ClientURL(), "PRSTOP")

	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var calls int
	stop, err := follower.SubscribePressure(func(Pressure) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	p := Pressure{Epoch: 1, Writes: 1, P99: time.Millisecond, Window: 250 * time.Millisecond}
	for range 3 {
		if err := leader.PublishPressure(p); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("fn was not called")
	}
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("stop returned while fn was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return after fn did")
	}
	// The two reports queued behind the first are not delivered once stop returned.
	if err := follower.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	n := calls
	mu.Unlock()
	if n != 1 {
		t.Fatalf("fn called %d times, want 1 (none after stop)", n)
	}
	stop()

	// Close stops a running subscription: nothing is delivered after it.
	c := connect(t, e.ClientURL(), "PRSTOP")
	delivered := make(chan Pressure, 16)
	stopC, err := c.SubscribePressure(func(p Pressure) { delivered <- p })
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	stopC() // harmless after Close
	if err := leader.PublishPressure(p); err != nil {
		t.Fatal(err)
	}
	if err := leader.conn().Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if len(delivered) != 0 {
		t.Fatal("a report was delivered after Close")
	}
	if _, err := c.SubscribePressure(func(Pressure) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SubscribePressure after Close = %v, want ErrClosed", err)
	}
	if err := c.PublishPressure(p); !errors.Is(err, ErrClosed) {
		t.Fatalf("PublishPressure after Close = %v, want ErrClosed", err)
	}
}
