// Package proclog reads the structured log of a replikv process that a harness started (the end-to-end tests, the
// benchmarks, the demo): it passes the process's output on to a writer (its log file) and indexes the zap JSON lines
// by message, so that the harness can learn the addresses a process bound and when it logged what.
package proclog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxLine is the longest line that is indexed; a longer one is passed on but not parsed (no watched line is long).
const maxLine = 1 << 20

// TimeLayout is zap's ISO 8601 time encoding, the binaries' "ts" field.
const TimeLayout = "2006-01-02T15:04:05.000Z0700"

// Writer passes everything written to it on to its destination and indexes the JSON lines that have a "msg": the
// fields of the first line of each message, and the "ts" time of every line. It is what exec.Cmd's Stdout and Stderr
// get; it is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	dst   io.Writer
	buf   []byte                    // the incomplete last line
	skip  bool                      // buf overflowed: drop until the next newline
	first map[string]map[string]any // msg -> fields of its first line
	times map[string][]time.Time    // msg -> the time of every line
}

// New returns a Writer that passes the output on to dst (which the caller closes).
func New(dst io.Writer) *Writer {
	return &Writer{dst: dst, first: map[string]map[string]any{}, times: map[string][]time.Time{}}
}

// Write passes p on and indexes the lines it completes.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.dst.Write(p); err != nil {
		return 0, fmt.Errorf("proclog: %w", err)
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !w.skip {
				w.buf = append(w.buf, p...)
				if len(w.buf) > maxLine {
					w.buf, w.skip = w.buf[:0], true
				}
			}
			break
		}
		if !w.skip && len(w.buf)+i <= maxLine {
			w.buf = append(w.buf, p[:i]...)
			w.index(w.buf)
		}
		w.buf, w.skip = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// index records one line if it is a JSON object with a "msg".
func (w *Writer) index(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return
	}
	msg, ok := m["msg"].(string)
	if !ok {
		return
	}
	if _, seen := w.first[msg]; !seen {
		w.first[msg] = m
	}
	if ts, ok := m["ts"].(string); ok {
		if t, err := time.Parse(TimeLayout, ts); err == nil {
			w.times[msg] = append(w.times[msg], t)
		}
	}
}

// Field returns a field of the first line logged with msg, if there was one with that field.
func (w *Writer) Field(msg, name string) (any, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, ok := w.first[msg][name]
	return v, ok
}

// String returns a string field of the first line logged with msg, or "".
func (w *Writer) String(msg, name string) string {
	v, _ := w.Field(msg, name)
	s, _ := v.(string)
	return s
}

// Times returns when msg was logged, one time per line, in the order of the lines.
func (w *Writer) Times(msg string) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.times[msg])
}

// Tail returns the last n lines of the log file at path for a failure message, leaving out the lines for which skip
// (if not nil) returns true, or the error that kept it from being read.
func Tail(path string, n int, skip func(line string) bool) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4*maxLine)
	for sc.Scan() {
		if skip != nil && skip(sc.Text()) {
			continue
		}
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if err := sc.Err(); err != nil {
		lines = append(lines, fmt.Sprintf("(read %s: %v)", path, err))
	}
	return strings.Join(lines, "\n")
}

// NATSInfo reports whether line is an info line of an embedded NATS server (its start banner would fill a tail).
func NATSInfo(line string) bool {
	return strings.Contains(line, `"level":"info"`) && strings.Contains(line, `"component":"nats-server"`)
}
