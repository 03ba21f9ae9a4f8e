package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/replikv/replikv/internal/apply"
)

// Idempotency records live under prefixIdem + the idempotency key, their value apply.AppendIdemRecord's encoding.
// They are not keys of the state: Get, List, Iterate and Digest never see them.
const (
	prefixIdem = 'i'
	idemEnd    = prefixIdem + 1
	// idemSweepEvery is how often Apply looks for expired idempotency records, and idemSweepMax how many records one
	// look reads at most (it goes on from there the next time, and from the start after the last record).
	idemSweepEvery = time.Second
	idemSweepMax   = 1024
)

var (
	idemLower = []byte{prefixIdem}
	idemUpper = []byte{idemEnd}
)

// idemKey appends the pebble key of the idempotency key key to dst.
func idemKey(dst, key []byte) []byte {
	dst = append(dst, prefixIdem)
	return append(dst, key...)
}

// Idem returns the idempotency record stored under key and the sequence of the write it belongs to; found is false
// when there is none. Expired records may still be found until Apply sweeps them: the caller compares Idem.At with
// its retention. Errors wrap ErrClosed or ErrCorrupt.
func (db *DB) Idem(key []byte) (seq uint64, rec apply.Idem, found bool, err error) {
	if !db.gate.enter() {
		return 0, apply.Idem{}, false, fmt.Errorf("store: idempotency record: %w", ErrClosed)
	}
	defer db.gate.leave()
	var stack [1 + apply.MaxIdemKeyLen]byte
	b, closer, err := db.db.Get(idemKey(stack[:0], key))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, apply.Idem{}, false, nil
	}
	if err != nil {
		return 0, apply.Idem{}, false, fmt.Errorf("store: idempotency record: %w", err)
	}
	defer closer.Close()
	seq, rec, err = apply.DecodeIdemRecord(b)
	if err != nil {
		return 0, apply.Idem{}, false, fmt.Errorf("store: idempotency record: %w: %w", ErrCorrupt, err)
	}
	rec.Key = append([]byte(nil), key...)
	return seq, rec, true, nil
}

// sweepIdem adds to b the deletion of expired idempotency records (At + IdemTTL at or before now), reading at most
// idemSweepMax records from where the previous sweep stopped. It runs at most once per idemSweepEvery, under writeMu,
// before the batch's own mutations: a record the batch writes again is never deleted by it.
func (db *DB) sweepIdem(b *pebble.Batch) error {
	if db.idemTTL <= 0 {
		return nil
	}
	now := db.now()
	if now.Sub(db.idemSwept) < idemSweepEvery {
		return nil
	}
	db.idemSwept = now
	lower := idemLower
	if db.idemCursor != nil {
		lower = db.idemCursor
	}
	it, err := db.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: idemUpper})
	if err != nil {
		return fmt.Errorf("store: sweep idempotency records: %w", err)
	}
	cutoff := now.Add(-db.idemTTL).UnixMilli()
	n := 0
	valid := it.First()
	for ; valid && n < idemSweepMax; valid = it.Next() {
		n++
		_, rec, err := apply.DecodeIdemRecord(it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("store: sweep idempotency records: %w: %w", ErrCorrupt, err)
		}
		if cutoff >= 0 && rec.At <= uint64(cutoff) {
			if err := b.Delete(it.Key(), nil); err != nil {
				_ = it.Close()
				return fmt.Errorf("store: sweep idempotency records: %w", err)
			}
			db.idemExpired++
		}
	}
	if valid {
		db.idemCursor = append(db.idemCursor[:0], it.Key()...)
	} else {
		db.idemCursor = nil
	}
	if err := closeIter(it); err != nil {
		return fmt.Errorf("store: sweep idempotency records: %w", err)
	}
	return nil
}

// IterateIdem calls fn for every idempotency record of the view in byte order of its key, with the sequence of its
// write (expired ones too, until a sweep removes them). rec.Key is valid only during the call. An error from fn stops
// the iteration and is returned as is; other errors wrap ErrClosed, ErrCorrupt or pebble's errors.
func (v *View) IterateIdem(fn func(rec apply.Idem, seq uint64) error) error {
	if !v.enter() {
		return fmt.Errorf("store: iterate idempotency records: %w", ErrClosed)
	}
	defer v.leave()
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: idemLower, UpperBound: idemUpper})
	if err != nil {
		return fmt.Errorf("store: iterate idempotency records: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		seq, rec, err := apply.DecodeIdemRecord(it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("store: iterate idempotency records: %w: %w", ErrCorrupt, err)
		}
		rec.Key = it.Key()[1:]
		if err := fn(rec, seq); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := closeIter(it); err != nil {
		return fmt.Errorf("store: iterate idempotency records: %w", err)
	}
	return nil
}
