package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Backoff of the StrongTarget retries.
const (
	strongBackoffMin = 5 * time.Millisecond
	strongBackoffMax = 250 * time.Millisecond
)

// MaxListValueBytes is how many bytes of values one list page carries at most (the page ends after the item that
// reaches it, so at least one item comes back).
const MaxListValueBytes = 4 << 20

// listChunk and listValueChunk are how many items a list reads from its view at a time, without and with values:
// with values, one chunk holds at most 4 values of 512 KiB.
const (
	listChunk      = 1000
	listValueChunk = 4
)

// Read kinds, the "kind" label of the read latency metric.
const (
	kindGet    = "get"
	kindList   = "list"
	kindDigest = "digest"
)

// digestBody is the JSON answer of /v1/digest.
type digestBody struct {
	Seq    uint64 `json:"seq"`
	Keys   uint64 `json:"keys"`
	Digest string `json:"digest"`
}

// serveGet answers GET and HEAD of one key with its raw value.
func (h *handler) serveGet(w *responseWriter, r *http.Request, escapedKey string) {
	defer h.observeRead(kindGet, w, time.Now())
	key, err := parseKey(escapedKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidKey, msgInvalidKey)
		return
	}
	view, ok := h.openView(w, r, key, nil)
	if !ok {
		return
	}
	defer h.closeView(view)
	value, version, err := view.Get(key)
	if err != nil {
		h.writeFailure(w, r, kindGet, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Length", strconv.Itoa(len(value)))
	hdr.Set("ETag", etag(version))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(value) // the client may be gone; nothing to do about it
	}
}

// serveList answers GET /v1/kv. The page is read from the view in chunks and encoded as it goes, so that a list
// never holds more than one chunk of values: a page stops at opts.limit items or once its values reach
// MaxListValueBytes (always at least one item), and next says where the following page starts.
func (h *handler) serveList(w *responseWriter, r *http.Request) {
	defer h.observeRead(kindList, w, time.Now())
	var opts listOptions
	view, ok := h.openView(w, r, nil, func(q url.Values) (err error) {
		opts, err = parseListOptions(q)
		return err
	})
	if !ok {
		return
	}
	defer h.closeView(view)
	chunk := listChunk
	if opts.values {
		chunk = listValueChunk
	}
	// The first chunk is read before anything is written, so that a failure still gets its error answer.
	items, next, err := view.List(opts.prefix, opts.after, min(chunk, opts.limit), opts.values)
	if err != nil {
		h.writeFailure(w, r, kindList, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(`{"items":[`)
	emitted, valueBytes := 0, 0
	for {
		for i := range items {
			it := &items[i]
			if emitted > 0 {
				_ = bw.WriteByte(',')
			}
			if opts.values {
				valueBytes += len(it.Value)
			}
			writeListItem(bw, it, opts.values)
			emitted++
			if emitted >= opts.limit || valueBytes >= MaxListValueBytes {
				if i < len(items)-1 || next != nil {
					next = it.Key
				}
				items = nil
				break
			}
		}
		if items == nil || next == nil {
			break
		}
		after := next
		items, next, err = view.List(opts.prefix, after, min(chunk, opts.limit-emitted), opts.values)
		if err != nil {
			// The answer is under way: all that is left is to cut it, so the client sees a broken body, not a page.
			h.log.Error("list failed mid-answer", zap.Error(err))
			panic(http.ErrAbortHandler)
		}
		if len(items) == 0 {
			next = nil
			break
		}
	}
	tail, _ := json.Marshal(struct {
		Next string `json:"next"`
		Seq  uint64 `json:"seq"`
	}{Next: string(next), Seq: view.Seq()})
	_, _ = bw.WriteString("],")
	_, _ = bw.Write(tail[1:]) // `"next":...,"seq":N}` without its opening brace
	_ = bw.WriteByte('\n')
	_ = bw.Flush()
}

// writeListItem encodes one item as encoding/json would encode {key, version, value []byte} (the value in standard base64), streaming
// the value's base64 instead of building it in memory.
func writeListItem(bw *bufio.Writer, it *Item, values bool) {
	key, _ := json.Marshal(string(it.Key)) // a string: cannot fail
	_, _ = bw.WriteString(`{"key":`)
	_, _ = bw.Write(key)
	_, _ = bw.WriteString(`,"version":`)
	_, _ = bw.WriteString(strconv.FormatUint(it.Version, 10))
	if values {
		_, _ = bw.WriteString(`,"value":"`)
		enc := base64.NewEncoder(base64.StdEncoding, bw)
		_, _ = enc.Write(it.Value)
		_ = enc.Close()
		_ = bw.WriteByte('"')
	}
	_ = bw.WriteByte('}')
	it.Value = nil // done with it: let the collector have it before the chunk ends
}

// serveDigest answers GET /v1/digest from one view.
func (h *handler) serveDigest(w *responseWriter, r *http.Request) {
	defer h.observeRead(kindDigest, w, time.Now())
	view, ok := h.openView(w, r, nil, nil)
	if !ok {
		return
	}
	defer h.closeView(view)
	keys, digest, err := view.Digest()
	if err != nil {
		h.writeFailure(w, r, kindDigest, err)
		return
	}
	writeJSON(w, http.StatusOK, digestBody{Seq: view.Seq(), Keys: keys, Digest: digest})
}

// openView parses the read's query (the consistency parameters, and the rest with extra when not nil), waits for
// the consistency asked for (on a leader, at its read barrier for key, or for every key when key is nil), and opens
// a view whose sequence becomes the answer's Replikv-Seq. On failure it has answered and returns false.
func (h *handler) openView(w http.ResponseWriter, r *http.Request, key []byte, extra func(url.Values) error) (View, bool) {
	q, err := parseQuery(r.URL.RawQuery)
	var opts readOptions
	if err == nil {
		opts, err = parseReadOptions(q, h.cfg.ReadTimeout, h.cfg.MaxReadTimeout)
	}
	if err == nil && extra != nil {
		err = extra(q)
	}
	if err != nil {
		h.writeRequestError(w, err)
		return nil, false
	}
	if opts.waits() || h.cfg.Barrier != nil {
		if err := h.waitConsistent(r.Context(), key, opts); err != nil {
			h.writeFailure(w, r, "wait", err)
			return nil, false
		}
	}
	view, err := h.node.View(r.Context())
	if err != nil {
		h.writeFailure(w, r, "view", err)
		return nil, false
	}
	setSeq(w.Header(), view.Seq())
	return view, true
}

// closeView closes a view, logging a failure (the answer is already on its way).
func (h *handler) closeView(v View) {
	if err := v.Close(); err != nil {
		h.log.Warn("close view", zap.Error(err))
	}
}

// waitConsistent waits, for at most opts.timeout, at the leader's read barrier (for key; nil = every key), then until
// the node has applied the strong target and opts.minSeq. It returns an error wrapping context.DeadlineExceeded on
// timeout (504).
//
// A failing StrongTarget (a follower cut off from NATS) is retried with a capped backoff until the timeout rather
// than answered 503 at once: the follower may be reconnecting, and the client asked to wait that long.
func (h *handler) waitConsistent(ctx context.Context, key []byte, opts readOptions) error {
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	if h.cfg.Barrier != nil {
		if err := h.passBarrier(ctx, key); err != nil {
			return err
		}
	}
	target := opts.minSeq
	if opts.strong {
		t, err := h.strongTarget(ctx)
		if err != nil {
			return err
		}
		target = max(target, t)
	}
	if target == 0 {
		return nil
	}
	if err := h.node.WaitApplied(ctx, target); err != nil {
		return fmt.Errorf("api: wait for %d: %w", target, err)
	}
	return nil
}

// passBarrier waits at the leader's read barrier, retrying while the leader cannot tell yet (ErrUnavailable) until
// ctx ends. A leader that must not serve reads (ErrNotLeader) is answered at once.
func (h *handler) passBarrier(ctx context.Context, key []byte) error {
	return retryUntil(ctx, func() error { return h.cfg.Barrier.AwaitReadable(ctx, key) },
		func(err error) bool { return errors.Is(err, ErrUnavailable) },
		func(err error) { h.log.Warn("leader read: not linearizable yet until timeout", zap.Error(err)) })
}

// strongTarget calls Node.StrongTarget until it succeeds or ctx ends.
func (h *handler) strongTarget(ctx context.Context) (uint64, error) {
	var target uint64
	err := retryUntil(ctx, func() (err error) {
		target, err = h.node.StrongTarget(ctx)
		if err != nil {
			h.log.Debug("strong read: log position unavailable, retrying", zap.Error(err))
		}
		return err
	}, func(error) bool { return true },
		func(err error) { h.log.Warn("strong read: log position unavailable until timeout", zap.Error(err)) })
	return target, err
}

// retryUntil calls fn until it returns nil or an error that retryable refuses, with a capped backoff, or until ctx
// ends: then it calls onTimeout with fn's last error (unless ctx was cancelled: the client left) and returns ctx's
// error, wrapped (a deadline answers 504).
func retryUntil(ctx context.Context, fn func() error, retryable func(error) bool, onTimeout func(error)) error {
	backoff := strongBackoffMin
	var timer *time.Timer
	for {
		err := fn()
		if err == nil || (ctx.Err() == nil && !retryable(err)) {
			return err
		}
		if ctx.Err() == nil {
			if timer == nil {
				timer = time.NewTimer(backoff)
				defer timer.Stop()
			} else {
				timer.Reset(backoff)
			}
			select {
			case <-ctx.Done():
			case <-timer.C:
				backoff = min(2*backoff, strongBackoffMax)
				continue
			}
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			onTimeout(err)
		}
		return fmt.Errorf("api: retry: %w", ctx.Err())
	}
}

// observeRead records a read's latency by kind and status.
func (h *handler) observeRead(kind string, w *responseWriter, start time.Time) {
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.ReadDuration.WithLabelValues(kind, strconv.Itoa(w.status)).Observe(time.Since(start).Seconds())
	}
}
