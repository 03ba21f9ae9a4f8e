package snapshots

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/replikv/replikv/internal/apply"
	"go.uber.org/zap"
)

// Sink receives restored entries in strictly increasing key order (the store's *Loader satisfies it). key and value
// are only valid during the call.
type Sink interface {
	Add(key, value []byte, version uint64) error
}

// IdemSink is implemented by a Sink that takes the snapshot's idempotency records (the store's *Loader does).
// Restore calls AddIdem after every Add call, for each record in strictly increasing byte order of its key, with the
// log sequence of the write it belongs to; rec.Key is only valid during the call. Restore checks the records of a
// Sink that is no IdemSink all the same, and skips them.
type IdemSink interface {
	AddIdem(rec apply.Idem, seq uint64) error
}

// progressEvery throttles Restore's progress callback.
const progressEvery = 1 << 20

// Restore streams m's data into sink, calling progress(bytesDone, bytesTotal) as bytes arrive (at the start, about
// every MiB, and once with done == total at the end; progress may be nil). It runs on the caller's goroutine.
//
// It verifies, while streaming: header seq == m.Seq, records well-formed with strictly increasing keys, the trailer
// count, byte count == m.Bytes, SHA-256 == m.SHA256, key count == m.Keys, state digest == m.Digest and idempotency
// record count == m.IdempotencyRecords (0 when the manifest has none). Any mismatch returns an error wrapping
// ErrCorrupt that says what. The idempotency records go to sink when it is an IdemSink, after all its Add calls. If
// the snapshot disappears while downloading (retention deletes the manifest first, then the data) the error wraps
// ErrNotFound. A sink error is returned wrapped as it is. The sink may have received entries before any error: the
// caller discards it.
func (r *Repo) Restore(ctx context.Context, m Manifest, sink Sink, progress func(done, total int64)) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("snapshots: restore: %w", err)
	}
	if m.Stream != r.stream {
		return fmt.Errorf("snapshots: restore %d: %w: manifest of stream %q, repo of %q", m.Seq, ErrCorrupt, m.Stream, r.stream)
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	err := r.restore(ctx, m, sink, progress)
	var se *sinkError
	switch {
	case err == nil:
		r.log.Info("restored snapshot", zap.Uint64(logSeq, m.Seq), zap.Uint64(logKeys, m.Keys),
			zap.Uint64(logIdems, m.IdempotencyRecords), zap.Int64(logBytes, m.Bytes))
		return nil
	case errors.As(err, &se):
		return fmt.Errorf("snapshots: restore %d: sink: %w", m.Seq, se.err)
	case ctx.Err() != nil || errors.Is(err, ErrNotFound):
		return fmt.Errorf("snapshots: restore %d: %w", m.Seq, err)
	}
	// Corrupt or unreadable: if the manifest is gone, retention removed the snapshot under us, and that is the story.
	if _, merr := r.readManifest(ctx, m.Seq); errors.Is(merr, ErrNotFound) {
		return fmt.Errorf("snapshots: restore %d: snapshot deleted during restore: %w (%w)", m.Seq, ErrNotFound, err)
	}
	return fmt.Errorf("snapshots: restore %d: %w", m.Seq, err)
}

// sinkError marks an error returned by the Sink, so Restore does not blame the data for it.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

func (r *Repo) restore(ctx context.Context, m Manifest, sink Sink, progress func(done, total int64)) error {
	rc, err := r.store.Get(ctx, dataKey(r.stream, m.Seq))
	if err != nil {
		return err
	}
	defer rc.Close()
	progress(0, m.Bytes)
	vr := &verifyReader{r: rc, h: sha256.New(), limit: m.Bytes, progress: progress}
	zr, err := newZstdReader(vr)
	if err != nil {
		return err
	}
	defer zr.Close()
	dec, err := NewDecoder(zr)
	if err != nil {
		return vr.classify(err)
	}
	if dec.Seq() != m.Seq {
		return fmt.Errorf("%w: data header seq %d, manifest seq %d", ErrCorrupt, dec.Seq(), m.Seq)
	}
	idemSink, _ := sink.(IdemSink)
	dig := apply.NewDigest()
	for {
		rec, err := dec.NextRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return vr.classify(err)
		}
		if (dec.Count()+dec.IdemCount())%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if rec.IsIdem() {
			if dec.IdemCount() > m.IdempotencyRecords {
				return fmt.Errorf("%w: more than the manifest's %d idempotency records", ErrCorrupt, m.IdempotencyRecords)
			}
			if idemSink != nil {
				if err := idemSink.AddIdem(rec.Idem, rec.Version); err != nil {
					return &sinkError{err: err}
				}
			}
			continue
		}
		if dec.Count() > m.Keys {
			return fmt.Errorf("%w: more than the manifest's %d keys", ErrCorrupt, m.Keys)
		}
		if err := sink.Add(rec.Key, rec.Value, rec.Version); err != nil {
			return &sinkError{err: err}
		}
		dig.Add(rec.Key, rec.Value, rec.Version)
	}
	// zstd normally stops at the end of input already; anything left would be counted (and rejected) here.
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return vr.classify(err)
	}
	switch sum := hex.EncodeToString(vr.h.Sum(nil)); {
	case vr.n != m.Bytes:
		return fmt.Errorf("%w: data is %d bytes, manifest says %d", ErrCorrupt, vr.n, m.Bytes)
	case sum != m.SHA256:
		return fmt.Errorf("%w: data SHA-256 %s, manifest says %s", ErrCorrupt, sum, m.SHA256)
	case dig.Keys() != m.Keys:
		return fmt.Errorf("%w: %d keys, manifest says %d", ErrCorrupt, dig.Keys(), m.Keys)
	case dig.Sum() != m.Digest:
		return fmt.Errorf("%w: state digest %s, manifest says %s", ErrCorrupt, dig.Sum(), m.Digest)
	case dec.IdemCount() != m.IdempotencyRecords:
		return fmt.Errorf("%w: %d idempotency records, manifest says %d", ErrCorrupt, dec.IdemCount(),
			m.IdempotencyRecords)
	}
	progress(vr.n, m.Bytes)
	return nil
}

// verifyReader hashes and counts the stored bytes, refuses more than limit, reports progress, and remembers the
// underlying reader's first real error so that decoder errors can be told apart from transport errors.
type verifyReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	limit    int64
	progress func(done, total int64)
	reported int64
	err      error // first non-EOF error, sticky
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	// Read at most one byte past the limit: enough to detect an object larger than its manifest says. (limit - n
	// never overflows; limit + 1 would for a manifest claiming math.MaxInt64 bytes.)
	if rem := v.limit - v.n; rem < int64(len(p))-1 {
		p = p[:rem+1]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.limit {
		v.err = fmt.Errorf("%w: data is larger than the manifest's %d bytes", ErrCorrupt, v.limit)
		return n, v.err
	}
	if v.n-v.reported >= progressEvery {
		v.reported = v.n
		v.progress(v.n, v.limit)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		v.err = err
	}
	return n, err
}

// classify turns an error seen through the decoders into Restore's: the transport's own error if there was one,
// else decoder corruption, else (a zstd error) corruption too.
func (v *verifyReader) classify(err error) error {
	switch {
	case v.err != nil:
		return v.err
	case errors.Is(err, ErrCorrupt):
		return err
	default:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
}
