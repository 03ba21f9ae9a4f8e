package snapshots

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/replikv/replikv/internal/apply"
)

// Plaintext of the snapshot data format v1 (before zstd; see docs/formats.md):
//
//	magic "RKVSNAP1" | uvarint(format version = 1) | uvarint(seq)
//	records:  0x01 uvarint(len key) key uvarint(len value) value uvarint(version)   (strictly increasing keys)
//	idem:     0x02 uvarint(len idemkey) idemkey uvarint(seq) hash(32 bytes) uvarint(at)
//	          (after the key records, strictly increasing idempotency keys)
//	trailer:  0x00 uvarint(count of key records)
//	EOF
const (
	dataMagic      = "RKVSNAP1"
	dataFormat     = 1
	tagRecord      = 0x01
	tagIdem        = 0x02
	tagTrailer     = 0x00
	encoderBufSize = 64 << 10
)

// Encoder writes the plaintext of a v1 snapshot: the key records (Add), then the idempotency records (AddIdem). It
// checks every record the way Decoder does, so whatever it accepts decodes again. An Encoder is not safe for
// concurrent use.
type Encoder struct {
	w        *bufio.Writer
	seq      uint64
	count    uint64
	idems    uint64
	prevKey  []byte
	prevIdem []byte
	scratch  []byte
	closed   bool
	err      error // sticky
}

// NewEncoder writes the header for a snapshot at sequence seq (at least 1) to w. Nothing is flushed to w until
// Close or the internal buffer fills; Close does not close w.
func NewEncoder(w io.Writer, seq uint64) (*Encoder, error) {
	if seq == 0 {
		return nil, errors.New("snapshots: encode: seq must be at least 1")
	}
	e := &Encoder{w: bufio.NewWriterSize(w, encoderBufSize), seq: seq, scratch: make([]byte, 0, 2*binary.MaxVarintLen64)}
	e.scratch = append(e.scratch, dataMagic...)
	e.scratch = binary.AppendUvarint(e.scratch, dataFormat)
	e.scratch = binary.AppendUvarint(e.scratch, seq)
	if _, err := e.w.Write(e.scratch); err != nil {
		return nil, fmt.Errorf("snapshots: encode: %w", err)
	}
	return e, nil
}

// Add appends one key record. key must be a valid key (apply.ValidateKey) greater than the previous one, value at
// most apply.MaxValueLen bytes, and 1 <= version <= seq, and no idempotency record may have been added yet. The
// first failure is returned by every later call.
func (e *Encoder) Add(key, value []byte, version uint64) error {
	if e.err != nil {
		return e.err
	}
	if e.closed {
		return errors.New("snapshots: encode: add after close")
	}
	if err := checkRecord(e.seq, e.prevKey, e.count == 0, e.idems, key, value, version); err != nil {
		e.err = fmt.Errorf("snapshots: encode: record %d: %w", e.count, err)
		return e.err
	}
	e.scratch = append(e.scratch[:0], tagRecord)
	e.scratch = binary.AppendUvarint(e.scratch, uint64(len(key)))
	e.write(e.scratch)
	e.write(key)
	e.scratch = binary.AppendUvarint(e.scratch[:0], uint64(len(value)))
	e.write(e.scratch)
	e.write(value)
	e.scratch = binary.AppendUvarint(e.scratch[:0], version)
	e.write(e.scratch)
	if e.err != nil {
		return e.err
	}
	e.prevKey = append(e.prevKey[:0], key...)
	e.count++
	return nil
}

// AddIdem appends one idempotency record, rec written at log sequence seq, after all key records. rec.Key must be
// a valid idempotency key (apply.ValidateIdemKey) greater than the previous record's, 1 <= seq <= the snapshot's
// seq, and rec.At at least 1. The first failure is returned by every later call.
func (e *Encoder) AddIdem(rec apply.Idem, seq uint64) error {
	if e.err != nil {
		return e.err
	}
	if e.closed {
		return errors.New("snapshots: encode: add after close")
	}
	if err := checkIdem(e.seq, e.prevIdem, e.idems == 0, rec, seq); err != nil {
		e.err = fmt.Errorf("snapshots: encode: idempotency record %d: %w", e.idems, err)
		return e.err
	}
	e.scratch = append(e.scratch[:0], tagIdem)
	e.scratch = binary.AppendUvarint(e.scratch, uint64(len(rec.Key)))
	e.write(e.scratch)
	e.write(rec.Key)
	e.scratch = binary.AppendUvarint(e.scratch[:0], seq)
	e.write(e.scratch)
	e.write(rec.Hash[:])
	e.scratch = binary.AppendUvarint(e.scratch[:0], rec.At)
	e.write(e.scratch)
	if e.err != nil {
		return e.err
	}
	e.prevIdem = append(e.prevIdem[:0], rec.Key...)
	e.idems++
	return nil
}

// checkRecord applies the format's rules for one key record, after idems idempotency records; the Encoder and the
// Decoder share it so that they agree.
func checkRecord(seq uint64, prevKey []byte, first bool, idems uint64, key, value []byte, version uint64) error {
	if idems > 0 {
		return errors.New("key record after an idempotency record")
	}
	if err := apply.ValidateKey(key); err != nil {
		return err
	}
	if err := apply.ValidateValue(value); err != nil {
		return err
	}
	if version == 0 || version > seq {
		return fmt.Errorf("version %d outside [1, %d]", version, seq)
	}
	if !first && bytes.Compare(key, prevKey) <= 0 {
		return errors.New("keys not strictly increasing")
	}
	return nil
}

// checkIdem applies the format's rules for one idempotency record, written at log sequence recSeq; the Encoder and
// the Decoder share it so that they agree.
func checkIdem(seq uint64, prevKey []byte, first bool, rec apply.Idem, recSeq uint64) error {
	if err := apply.ValidateIdemKey(rec.Key); err != nil {
		return err
	}
	if recSeq == 0 || recSeq > seq {
		return fmt.Errorf("seq %d outside [1, %d]", recSeq, seq)
	}
	if rec.At == 0 {
		return errors.New("time 0")
	}
	if !first && bytes.Compare(rec.Key, prevKey) <= 0 {
		return errors.New("idempotency keys not strictly increasing")
	}
	return nil
}

// write records the first write error.
func (e *Encoder) write(b []byte) {
	if e.err == nil {
		if _, err := e.w.Write(b); err != nil {
			e.err = fmt.Errorf("snapshots: encode: %w", err)
		}
	}
}

// Count returns how many key records were added.
func (e *Encoder) Count() uint64 { return e.count }

// IdemCount returns how many idempotency records were added.
func (e *Encoder) IdemCount() uint64 { return e.idems }

// Close writes the trailer (the count of key records) and flushes to w. It does not close w. Calling Close again
// returns the same result.
func (e *Encoder) Close() error {
	if e.closed || e.err != nil {
		return e.err
	}
	e.closed = true
	e.scratch = append(e.scratch[:0], tagTrailer)
	e.scratch = binary.AppendUvarint(e.scratch, e.count)
	e.write(e.scratch)
	if e.err == nil {
		if err := e.w.Flush(); err != nil {
			e.err = fmt.Errorf("snapshots: encode: %w", err)
		}
	}
	return e.err
}
