package proclog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriter_Indexes(t *testing.T) {
	var out bytes.Buffer
	w := New(&out)
	lines := []string{
		`{"level":"info","ts":"2026-11-26T13:00:00.100Z","msg":"http listening","addr":"127.0.0.1:8080"}`,
		`not json at all`,
		`{"level":"info","ts":"2026-11-26T13:00:00.200Z","msg":"http listening","addr":"127.0.0.1:9999"}`,
		`{"level":"info","ts":"bad time","msg":"http listening"}`,
		`{"level":"info","msg":"snapshot created","keys":3}`,
		`{"no":"msg"}`,
		`{"level":"info","ts":"2026-11-26T13:00:01.000+0100","msg":"tz"}`,
	}
	all := strings.Join(lines, "\n") + "\n"
	// Written in pieces that split lines anywhere.
	for i := 0; i < len(all); i += 7 {
		n, err := w.Write([]byte(all[i:min(i+7, len(all))]))
		if err != nil || n != min(7, len(all)-i) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if out.String() != all {
		t.Fatalf("passed on %q, want %q", out.String(), all)
	}
	if got := w.String("http listening", "addr"); got != "127.0.0.1:8080" {
		t.Fatalf("addr = %q, want the first line's", got)
	}
	if v, ok := w.Field("snapshot created", "keys"); !ok || v != float64(3) {
		t.Fatalf("keys = %v, %v", v, ok)
	}
	if _, ok := w.Field("snapshot created", "bytes"); ok {
		t.Fatal("a field that was not logged")
	}
	if got := w.String("never logged", "addr"); got != "" {
		t.Fatalf("field of a message never logged = %q", got)
	}
	times := w.Times("http listening")
	want := []time.Time{
		time.Date(2026, 11, 26, 13, 0, 0, 100e6, time.UTC),
		time.Date(2026, 11, 26, 13, 0, 0, 200e6, time.UTC),
	}
	if len(times) != len(want) || !times[0].Equal(want[0]) || !times[1].Equal(want[1]) {
		t.Fatalf("times = %v, want %v", times, want)
	}
	if tz := w.Times("tz"); len(tz) != 1 || !tz[0].Equal(time.Date(2026, 11, 26, 12, 0, 1, 0, time.UTC)) {
		t.Fatalf("tz times = %v", tz)
	}
	times[0] = time.Time{}
	if w.Times("http listening")[0].IsZero() {
		t.Fatal("Times returned the Writer's own slice")
	}
}

func TestWriter_LongLineDropped(t *testing.T) {
	w := New(&bytes.Buffer{})
	long := `{"msg":"long","x":"` + strings.Repeat("y", maxLine) + `"}`
	if _, err := w.Write([]byte(long + "\n" + `{"msg":"after","a":"b"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Field("long", "x"); ok {
		t.Fatal("a line longer than maxLine was indexed")
	}
	if w.String("after", "a") != "b" {
		t.Fatal("the line after a dropped one was not indexed")
	}
	if len(w.buf) != 0 || cap(w.buf) > 2*maxLine+64 {
		t.Fatalf("buffer after the lines: len %d cap %d", len(w.buf), cap(w.buf))
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriter_DestinationError(t *testing.T) {
	w := New(failWriter{})
	if _, err := w.Write([]byte(`{"msg":"m","a":"b"}` + "\n")); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write = %v, want the destination's error", err)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.log")
	var b strings.Builder
	for i := range 10 {
		b.WriteString(strings.Repeat("x", i) + "\n")
		b.WriteString(`{"level":"info","component":"nats-server","msg":"banner"}` + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := Tail(path, 2, NATSInfo), "xxxxxxxx\nxxxxxxxxx"; got != want {
		t.Fatalf("Tail = %q, want %q", got, want)
	}
	if got := Tail(path, 1, nil); !strings.Contains(got, "banner") {
		t.Fatalf("Tail without skip = %q", got)
	}
	if got := Tail(filepath.Join(t.TempDir(), "missing"), 5, nil); !strings.HasPrefix(got, "(read ") {
		t.Fatalf("Tail of a missing file = %q", got)
	}
}
