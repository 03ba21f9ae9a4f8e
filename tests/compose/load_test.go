//go:build compose

package compose

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// loadPrefix is the key prefix of every key the write load touches.
const loadPrefix = "load/"

// ledger records the outcome of every write of the load: for each key the
// last acknowledged version and value, and the values written after it whose
// outcome is unknown (a 503 or a lost connection: such a write may still be
// committed, the log decides); and when each acknowledgement arrived, to find
// the pauses of the write path. Safe for concurrent use.
type ledger struct {
	now     func() time.Time // the clock of ackTimes; tests set it
	mu      sync.Mutex
	keys    map[string]*keyHistory
	acks    int
	ackAt   []time.Time // arrival of every acknowledgement, in order
	errs    int
	reasons map[string]int // failed writes by cause, e.g. "http 503 unavailable"
	failed  []error        // protocol violations seen by the writers (at most 10)
}

type keyHistory struct {
	acked   bool
	version uint64
	value   string
	unknown map[string]bool // values written after the last ack, outcome unknown
}

func newLedger() *ledger {
	return &ledger{now: time.Now, keys: make(map[string]*keyHistory), reasons: make(map[string]int)}
}

func (l *ledger) history(key string) *keyHistory {
	h := l.keys[key]
	if h == nil {
		h = &keyHistory{unknown: make(map[string]bool)}
		l.keys[key] = h
	}
	return h
}

// attempt notes a write before it is sent: until ack or reject, its outcome
// is unknown.
func (l *ledger) attempt(key, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.history(key).unknown[value] = true
}

// ack records an acknowledged write. Writes of one key come from one writer
// in order, so every earlier write is settled: it is in the log before this
// one or not at all.
func (l *ledger) ack(key, value string, version uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.history(key)
	if h.acked && version <= h.version && len(l.failed) < 10 {
		l.failed = append(l.failed, fmt.Errorf("key %s: acked version %d after version %d", key, version, h.version))
	}
	h.acked, h.version, h.value = true, version, value
	clear(h.unknown)
	l.acks++
	// Read under the lock, so that ackAt stays sorted.
	l.ackAt = append(l.ackAt, l.now())
}

// maxAckGap returns the longest time in [from, to] without an acknowledged
// write, and when it ended: the longest of the intervals between from, every
// acknowledgement in the window, and to.
func (l *ledger) maxAckGap(from, to time.Time) (gap time.Duration, end time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _ := slices.BinarySearchFunc(l.ackAt, from, func(a, b time.Time) int { return a.Compare(b) })
	prev := from
	for _, at := range l.ackAt[i:] {
		if at.After(to) {
			break
		}
		if d := at.Sub(prev); d > gap {
			gap, end = d, at
		}
		prev = at
	}
	if d := to.Sub(prev); d > gap {
		gap, end = d, to
	}
	return gap, end
}

// reject records a write the server refused for good (a 4xx answer).
func (l *ledger) reject(key, value string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.history(key).unknown, value)
	if len(l.failed) < 10 {
		l.failed = append(l.failed, fmt.Errorf("key %s: write rejected: %w", key, err))
	}
}

// fail counts a write with unknown outcome (it stays in unknown).
func (l *ledger) fail(err error) {
	reason := "transport"
	var apiErr *apiError
	if errors.As(err, &apiErr) {
		reason = fmt.Sprintf("http %d %s", apiErr.Status, apiErr.Code)
	} else if errors.Is(err, context.Canceled) {
		reason = "canceled"
	} else if errors.Is(err, syscall.ECONNREFUSED) {
		reason = "connection refused"
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		reason = "timeout"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs++
	l.reasons[reason]++
}

// failures returns the failed writes by cause since the last call.
func (l *ledger) failures() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reasons
	l.reasons = make(map[string]int)
	return r
}

// counts returns the acknowledged and the failed writes so far.
func (l *ledger) counts() (acked, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks, l.errs
}

// violations returns what the writers saw that no server may answer.
func (l *ledger) violations() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.failed...)
}

// verify checks a node's listing of loadPrefix against the ledger: every
// acknowledged write is there, as the acknowledged version and value or
// superseded by a later write of unknown outcome. Call it with the load
// stopped. It reports at most 10 keys.
func (l *ledger) verify(items map[string]item) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []string
	checked := 0
	for key, h := range l.keys {
		if !h.acked {
			continue
		}
		checked++
		got, ok := items[key]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: missing, acked v%d", key, h.version))
		case got.Version == h.version && got.Value == h.value:
		case got.Version > h.version && h.unknown[got.Value]:
		default:
			bad = append(bad, fmt.Sprintf("%s: v%d %q, acked v%d %q", key, got.Version, got.Value, h.version, h.value))
		}
	}
	if checked == 0 {
		return errors.New("ledger: no acknowledged write to check")
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	n := len(bad)
	if len(bad) > 10 {
		bad = bad[:10]
	}
	return fmt.Errorf("%d of %d acknowledged keys lost or wrong: %s", n, checked, strings.Join(bad, "; "))
}

// anyAcked returns one acknowledged key and its value.
func (l *ledger) anyAcked() (key, value string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, h := range l.keys {
		if h.acked {
			return k, h.value, true
		}
	}
	return "", "", false
}

// load is a bounded write load against the leader: a few writers, each
// owning its own keys, writing at a paced rate until stop. Every outcome
// goes to the ledger.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// loadConfig shapes a load.
type loadConfig struct {
	writers  int           // concurrent writers
	keys     int           // keys per writer
	interval time.Duration // pause between two writes of one writer
}

var defaultLoad = loadConfig{writers: 4, keys: 250, interval: 10 * time.Millisecond}

// startLoad starts the writers; generation keeps values unique across loads
// sharing one ledger. Stop it with stop.
func startLoad(c *client, base string, l *ledger, cfg loadConfig, generation int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{cancel: cancel}
	for w := range cfg.writers {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			runWriter(ctx, c, base, l, cfg, generation, w)
		}()
	}
	return ld
}

// stop stops the writers and waits for them (idempotent).
func (ld *load) stop() {
	ld.once.Do(func() {
		ld.cancel()
		ld.wg.Wait()
	})
}

func runWriter(ctx context.Context, c *client, base string, l *ledger, cfg loadConfig, generation, w int) {
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	pad := strings.Repeat("x", 40)
	for n := 0; ; n++ {
		key := fmt.Sprintf("%sw%d/k%03d", loadPrefix, w, n%cfg.keys)
		value := fmt.Sprintf("g%d-w%d-n%d-%s", generation, w, n, pad)
		l.attempt(key, value)
		version, err := c.put(ctx, base, key, []byte(value))
		var apiErr *apiError
		switch {
		case err == nil:
			l.ack(key, value, version)
		case errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 &&
			apiErr.Status != http.StatusRequestTimeout:
			l.reject(key, value, err)
		default:
			l.fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
