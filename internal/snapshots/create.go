package snapshots

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/replikv/replikv/internal/apply"
	"go.uber.org/zap"
)

// Source is a consistent point-in-time view (the store's *View satisfies it). Iterate calls fn for every live key in
// strictly increasing key order and stops at fn's first error, returning it; key and value are only valid during
// the call.
type Source interface {
	Seq() uint64
	Iterate(fn func(key, value []byte, version uint64) error) error
}

// MarkedSource is a Source that may know the apply.EntryMark of the log entry at its Seq; Create records it in the
// manifest (Manifest.EntryMark).
type MarkedSource interface {
	Source
	EntryMark() (apply.Mark, bool)
}

// IdemSource is implemented by a Source that holds idempotency records (the store's *View does). IterateIdem calls
// fn for every record in strictly increasing byte order of its key, with the log sequence of the write it belongs
// to, and stops at fn's first error, returning it; rec.Key is only valid during the call. Create writes the records
// after the keys (see Manifest.IdempotencyRecords).
type IdemSource interface {
	IterateIdem(fn func(rec apply.Idem, seq uint64) error) error
}

// logIdems is the structured log field of an idempotency record count (see log.go).
const logIdems = "idempotency_records"

// ctxCheckEvery is how many records Create encodes between checks of its context; paceEvery between looks at the
// clock when paced.
const (
	ctxCheckEvery = 1024
	paceEvery     = 64
)

// errUploadStopped is what the encoding goroutine sees when Put returned before reading everything.
var errUploadStopped = errors.New("snapshots: create: upload stopped")

// Create streams src into <stream>/<seq>/data (encoder -> zstd -> SHA-256 + byte count -> Store.Put through an
// io.Pipe; the encoding goroutine is owned here and joined before Create returns), computes the state digest and key
// count on the way, then writes manifest.json last and returns it. The data holds src's idempotency records too
// when src is an IdemSource. Memory is bounded (zstd window and one upload part). Create only reads src; the caller
// keeps owning (and closes) it.
//
// When a valid manifest for this seq already exists, Create returns it without writing anything: re-uploading would
// replace data a follower may be downloading. The exception is a manifest whose entry mark differs from src's (see
// MarkedSource): a snapshot of another history of the log, which is replaced. A source at seq 0 returns ErrEmptyLog.
// On failure nothing is visible (an uploaded data object without a manifest is an orphan that Prune removes later).
func (r *Repo) Create(ctx context.Context, src Source, leader string) (Manifest, error) {
	return r.CreateVouched(ctx, src, leader, nil)
}

// Vouch is called by CreateVouched once the data object is stored and before the manifest is written, with the
// manifest as it will be written (CheckpointSeq aside). It returns the log sequence of the entry that vouches for the
// manifest's Keys and Digest at its Seq (see Manifest.CheckpointSeq). An error fails the snapshot.
type Vouch func(ctx context.Context, draft Manifest) (checkpointSeq uint64, err error)

// CreateVouched is Create with vouch (nil: none) called between the data object and the manifest, so that a
// manifest is visible only once the log vouches for its digest, and names where. vouch is not called when Create
// returns an existing manifest.
func (r *Repo) CreateVouched(ctx context.Context, src Source, leader string, vouch Vouch) (Manifest, error) {
	seq := src.Seq()
	if seq == 0 {
		return Manifest{}, fmt.Errorf("snapshots: create: %w", ErrEmptyLog)
	}
	if err := validStream(r.stream); err != nil {
		return Manifest{}, fmt.Errorf("snapshots: create: %w", err)
	}
	var mark apply.Mark
	hasMark := false
	if ms, ok := src.(MarkedSource); ok {
		mark, hasMark = ms.EntryMark()
	}
	existing, err := r.readManifest(ctx, seq)
	existingMark, existingHasMark := existing.Mark()
	switch {
	case err == nil && hasMark && existingHasMark && existingMark != mark:
		// Left behind by another history of the log (deleted and recreated since): it is not this state.
		r.log.Warn("replacing a snapshot of another history of the log", zap.Uint64(logSeq, seq),
			zap.String("leader", existing.Leader), zap.Time("created_at", existing.CreatedAt))
	case err == nil:
		r.log.Info("snapshot already exists", zap.Uint64(logSeq, seq))
		return existing, nil
	case errors.Is(err, ErrNotFound):
	case errors.Is(err, ErrCorrupt):
		r.log.Warn("replacing invalid snapshot manifest", zap.Uint64(logSeq, seq), zap.Error(err))
	default:
		return Manifest{}, fmt.Errorf("snapshots: create %d: %w", seq, err)
	}

	start := time.Now()
	pr, pw := io.Pipe()
	var res encodeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		res = encode(ctx, src, seq, pw, r.createCPU, r.zstd)
		_ = pw.CloseWithError(res.err) // nil: Put reads io.EOF
	}()
	n, putErr := r.store.Put(ctx, dataKey(r.stream, seq), pr)
	_ = pr.CloseWithError(errUploadStopped) // unblocks the encoder if Put stopped early
	<-done
	switch {
	case res.err != nil && !res.downstream: // the source or the encoder failed first
		return Manifest{}, fmt.Errorf("snapshots: create %d: %w", seq, res.err)
	case putErr != nil:
		return Manifest{}, fmt.Errorf("snapshots: create %d: %w", seq, putErr)
	case res.err != nil:
		return Manifest{}, fmt.Errorf("snapshots: create %d: %w", seq, res.err)
	case n != res.bytes:
		return Manifest{}, fmt.Errorf("snapshots: create %d: store wrote %d bytes, encoder produced %d", seq, n, res.bytes)
	}

	m := Manifest{
		Format:             ManifestFormat,
		Stream:             r.stream,
		Seq:                seq,
		Keys:               res.keys,
		IdempotencyRecords: res.idems,
		Bytes:              res.bytes,
		SHA256:             res.sha256,
		Digest:             res.digest,
		CreatedAt:          time.Now().UTC(),
		Leader:             leader,
	}
	if hasMark {
		m.EntryMark = hex.EncodeToString(mark[:])
	}
	if vouch != nil {
		cp, err := vouch(ctx, m)
		if err != nil {
			return Manifest{}, fmt.Errorf("snapshots: create %d: vouch: %w", seq, err)
		}
		m.CheckpointSeq = cp
	}
	if err := m.validate(); err != nil {
		return Manifest{}, fmt.Errorf("snapshots: create %d: %w", seq, err)
	}
	body, err := m.encode()
	if err != nil {
		return Manifest{}, fmt.Errorf("snapshots: create %d: %w", seq, err)
	}
	if _, err := r.store.Put(ctx, manifestKey(r.stream, seq), bytes.NewReader(body)); err != nil {
		return Manifest{}, fmt.Errorf("snapshots: create %d: manifest: %w", seq, err)
	}
	r.log.Info("created snapshot", zap.Uint64(logSeq, seq), zap.Uint64(logKeys, m.Keys),
		zap.Uint64(logIdems, m.IdempotencyRecords), zap.Int64(logBytes, m.Bytes), zap.Duration("took", time.Since(start)))
	return m, nil
}

// encodeResult is what the encoding goroutine hands back.
type encodeResult struct {
	keys   uint64
	idems  uint64
	bytes  int64
	sha256 string
	digest string
	err    error
	// downstream is true when err started as a failed write to the pipe, i.e. on the upload side.
	downstream bool
}

// encode runs src (its keys, then its idempotency records when it is an IdemSource) through the Encoder and zstd into
// w, hashing and counting the compressed bytes. cpuShare in (0, 1) paces it (see Repo.WithCreateCPU).
func encode(ctx context.Context, src Source, seq uint64, w io.Writer, cpuShare float64, zc *zstdCache) encodeResult {
	pace := newPacer(cpuShare)
	hw := &hashWriter{w: w, h: sha256.New(), pace: pace}
	parallel := pace == nil
	zw, err := zc.get(hw, parallel)
	if err != nil {
		return encodeResult{err: err}
	}
	enc, err := NewEncoder(zw, seq)
	if err != nil {
		_ = zw.Close() // stops its goroutines
		return encodeResult{err: err}
	}
	dig := apply.NewDigest()
	// tick checks the context and paces, before the nth record of a kind.
	tick := func(n uint64) error {
		if n%paceEvery != 0 {
			return nil
		}
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return pace.tick(ctx)
	}
	pace.start()
	err = src.Iterate(func(key, value []byte, version uint64) error {
		if err := tick(enc.Count()); err != nil {
			return err
		}
		if err := enc.Add(key, value, version); err != nil {
			return err
		}
		dig.Add(key, value, version)
		return nil
	})
	if is, ok := src.(IdemSource); ok && err == nil {
		err = is.IterateIdem(func(rec apply.Idem, seq uint64) error {
			if err := tick(enc.IdemCount()); err != nil {
				return err
			}
			return enc.AddIdem(rec, seq)
		})
	}
	if err == nil {
		err = enc.Close()
	}
	zerr := zw.Close()
	if err == nil && zerr != nil {
		err = fmt.Errorf("zstd: %w", zerr)
	}
	if err == nil {
		zc.put(zw, parallel)
	}
	if err != nil {
		return encodeResult{err: err, downstream: hw.err != nil}
	}
	return encodeResult{keys: dig.Keys(), idems: enc.IdemCount(), bytes: hw.n, sha256: hex.EncodeToString(hw.h.Sum(nil)),
		digest: dig.Sum()}
}

// hashWriter counts and hashes what passes through it, and remembers the first write error. The time its writes
// wait for the upload does not count as the encoder's work for pace.
type hashWriter struct {
	w    io.Writer
	h    hash.Hash
	pace *pacer
	n    int64
	err  error
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.pace.timeWrite(func() (int, error) { return hw.w.Write(p) })
	hw.h.Write(p[:n])
	hw.n += int64(n)
	if err != nil && hw.err == nil {
		hw.err = err
	}
	return n, err
}
