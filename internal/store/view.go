package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/replikv/replikv/internal/apply"
)

// View is a consistent point-in-time view of the store (a pebble snapshot). Its data and Seq always agree, and
// later Applies are invisible to it. Its methods are safe for concurrent use; it must be closed, and must not be closed
// from inside its own Iterate callback.
type View struct {
	db   *DB
	gate *gate
	snap *pebble.Snapshot
	seq  uint64
}

// View returns a point-in-time view whose Seq is the applied sequence read from the same snapshot. Taking a view
// never blocks writers. The caller must Close it. Errors wrap ErrClosed, ErrCorrupt, the Err() failure (a failed
// engine may hold the lock a snapshot needs) or pebble's errors.
func (db *DB) View() (*View, error) {
	if !db.gate.enter() {
		return nil, fmt.Errorf("store: view: %w", ErrClosed)
	}
	defer db.gate.leave()
	if err := db.guard.err(); err != nil {
		return nil, wrapErr("view", err)
	}
	snap := db.db.NewSnapshot()
	seq, err := readSeq(snap, keyApplied)
	if err != nil {
		_ = snap.Close()
		return nil, fmt.Errorf("store: view: %w", err)
	}
	v := &View{db: db, gate: newGate(), snap: snap, seq: seq}
	db.viewsMu.Lock()
	db.views[v] = struct{}{}
	db.viewsMu.Unlock()
	return v, nil
}

// Seq returns the applied log sequence the view shows.
func (v *View) Seq() uint64 { return v.seq }

// EntryMark returns the mark of the entry at Seq (see DB.Mark), and false when the view's store had none recorded for
// that sequence or the view is closed.
func (v *View) EntryMark() (apply.Mark, bool) {
	if !v.enter() {
		return apply.Mark{}, false
	}
	defer v.leave()
	seq, mark, err := readMark(v.snap)
	if err != nil || seq != v.seq || mark.IsZero() {
		return apply.Mark{}, false
	}
	return mark, true
}

// enter admits a call if both the view and its DB are open; leave must follow a true result.
func (v *View) enter() bool {
	if !v.gate.enter() {
		return false
	}
	if !v.db.gate.enter() {
		v.gate.leave()
		return false
	}
	return true
}

func (v *View) leave() {
	v.db.gate.leave()
	v.gate.leave()
}

// Close releases the view. It waits for the view's calls in progress; it is idempotent and fine after the DB closed.
func (v *View) Close() error {
	if !v.gate.close() {
		return nil
	}
	if !v.db.gate.enter() {
		return nil // the DB is closed and released the snapshot
	}
	defer v.db.gate.leave()
	if v.db.guard.err() != nil {
		return nil // the engine failed; its snapshots are abandoned with it
	}
	v.db.viewsMu.Lock()
	delete(v.db.views, v)
	v.db.viewsMu.Unlock()
	if err := v.snap.Close(); err != nil {
		return fmt.Errorf("store: view close: %w", err)
	}
	return nil
}

// Get returns a copy of key's value and its version as of the view. Errors wrap ErrNotFound, ErrClosed or ErrCorrupt.
func (v *View) Get(key []byte) (value []byte, version uint64, err error) {
	if !v.enter() {
		return nil, 0, fmt.Errorf("store: view get: %w", ErrClosed)
	}
	defer v.leave()
	value, version, err = get(v.snap, key, true)
	if err != nil {
		return nil, 0, fmt.Errorf("store: view get: %w", err)
	}
	return value, version, nil
}

// Item is one key of a List page. Key and Value are copies owned by the caller; Value is nil unless values were
// requested.
type Item struct {
	Key     []byte
	Version uint64
	Value   []byte
}

// errBadLimit is returned for a List limit below 1.
var errBadLimit = errors.New("limit must be positive")

// List returns the keys having prefix and strictly greater than after (if after is non-empty), in ascending byte
// order, at most limit of them (limit > 0), with values only if values is true. next is the last returned key when
// more keys remain, else nil, so the next page is List(prefix, next, ...). Errors wrap ErrClosed or ErrCorrupt.
func (v *View) List(prefix, after []byte, limit int, values bool) (items []Item, next []byte, err error) {
	if limit <= 0 {
		return nil, nil, fmt.Errorf("store: list: %w: %d", errBadLimit, limit)
	}
	if !v.enter() {
		return nil, nil, fmt.Errorf("store: list: %w", ErrClosed)
	}
	defer v.leave()
	lower := dataKey(nil, prefix)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixUpper(lower)})
	if err != nil {
		return nil, nil, fmt.Errorf("store: list: %w", err)
	}
	start, skipEqual := lower, false
	if len(after) > 0 {
		if a := dataKey(nil, after); bytes.Compare(a, lower) >= 0 {
			start, skipEqual = a, true
		}
	}
	valid := it.SeekGE(start)
	if valid && skipEqual && bytes.Equal(it.Key(), start) {
		valid = it.Next()
	}
	items = make([]Item, 0, min(limit, 256))
	for ; valid && len(items) < limit; valid = it.Next() {
		version, value, err := iterValue(it)
		if err != nil {
			_ = it.Close()
			return nil, nil, fmt.Errorf("store: list: %w", err)
		}
		item := Item{Key: bytes.Clone(it.Key()[1:]), Version: version}
		if values {
			item.Value = append(make([]byte, 0, len(value)), value...)
		}
		items = append(items, item)
	}
	if valid && len(items) > 0 {
		next = items[len(items)-1].Key
	}
	if err := closeIter(it); err != nil {
		return nil, nil, fmt.Errorf("store: list: %w", err)
	}
	return items, next, nil
}

// iterValue decodes the version and value at the iterator's position (the value aliases the iterator's buffers).
func iterValue(it *pebble.Iterator) (uint64, []byte, error) {
	raw, err := it.ValueAndErr()
	if err != nil {
		return 0, nil, err
	}
	return decodeValue(raw)
}

// closeIter returns the iterator's accumulated error or its close error.
func closeIter(it *pebble.Iterator) error {
	err := it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

// Iterate calls fn for every live key in byte order with its value and version. The slices are valid only during the
// call. An error from fn stops the iteration and is returned as is; other errors wrap ErrClosed, ErrCorrupt or
// pebble's errors. fn may call the view's other methods but not Close.
func (v *View) Iterate(fn func(key, value []byte, version uint64) error) error {
	if !v.enter() {
		return fmt.Errorf("store: iterate: %w", ErrClosed)
	}
	defer v.leave()
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: dataLower, UpperBound: dataUpper})
	if err != nil {
		return fmt.Errorf("store: iterate: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		version, value, err := iterValue(it)
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("store: iterate: %w", err)
		}
		if err := fn(it.Key()[1:], value, version); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := closeIter(it); err != nil {
		return fmt.Errorf("store: iterate: %w", err)
	}
	return nil
}

// Digest computes the contract's state digest of the view with apply.Digest: the number of live keys and the
// lowercase hex SHA-256. Errors are Iterate's.
func (v *View) Digest() (keys uint64, digest string, err error) {
	d := apply.NewDigest()
	err = v.Iterate(func(key, value []byte, version uint64) error {
		d.Add(key, value, version)
		return nil
	})
	if err != nil {
		return 0, "", fmt.Errorf("store: digest: %w", err)
	}
	return d.Keys(), d.Sum(), nil
}
