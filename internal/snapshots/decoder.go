package snapshots

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/replikv/replikv/internal/apply"
)

const decoderBufSize = 64 << 10

// Decoder reads the plaintext of a v1 snapshot strictly: any deviation from the format (bad magic or version,
// truncation, an unknown tag, a non-minimal or overflowing uvarint, a key or value over the limits, an invalid key,
// keys not strictly increasing, a version outside [1, seq], an invalid idempotency key, idempotency keys not strictly
// increasing, an idempotency record's seq outside [1, seq] or its time 0, a key record after an idempotency record,
// a wrong trailer count, bytes after the trailer) returns an error wrapping ErrCorrupt. Errors of the underlying
// reader are returned wrapped as they are (not ErrCorrupt).
//
// Next returns the key records only; NextRecord returns the idempotency records that follow them too. Memory is
// bounded by one key, one value and two idempotency keys whatever the input. A Decoder is not safe for concurrent
// use.
type Decoder struct {
	r        *bufio.Reader
	seq      uint64
	count    uint64
	idems    uint64
	key      []byte // the key record returned last
	prev     []byte // the key record before it, for the order check; swapped with key
	value    []byte
	idemKey  []byte // the idempotency record returned last
	idemPrev []byte // the one before it; swapped with idemKey
	hash     [apply.IdemHashSize]byte
	err      error // sticky
}

// Record is one record of a snapshot, as Decoder.NextRecord returns it. Like an apply.Mutation, it is a key record
// (Key, Value, and Version, the log sequence that last wrote the key) unless Idem.Key is not empty: then it is an
// idempotency record, Idem, written by the entry at log sequence Version, and Key and Value are nil.
type Record struct {
	Key     []byte
	Value   []byte
	Version uint64
	Idem    apply.Idem
}

// IsIdem reports whether r is an idempotency record.
func (r Record) IsIdem() bool { return len(r.Idem.Key) > 0 }

// NewDecoder reads and checks the header from r. The error wraps ErrCorrupt for a malformed header.
func NewDecoder(r io.Reader) (*Decoder, error) {
	d := &Decoder{r: bufio.NewReaderSize(r, decoderBufSize)}
	var magic [len(dataMagic)]byte
	if err := d.readFull(magic[:], "magic"); err != nil {
		return nil, err
	}
	if string(magic[:]) != dataMagic {
		return nil, corruptf("bad magic")
	}
	format, err := d.uvarint("format version")
	if err != nil {
		return nil, err
	}
	if format != dataFormat {
		return nil, corruptf("format version %d, want %d", format, dataFormat)
	}
	if d.seq, err = d.uvarint("seq"); err != nil {
		return nil, err
	}
	if d.seq == 0 {
		return nil, corruptf("seq 0")
	}
	return d, nil
}

// Seq returns the snapshot's sequence from the header.
func (d *Decoder) Seq() uint64 { return d.seq }

// Count returns how many key records Next or NextRecord has returned.
func (d *Decoder) Count() uint64 { return d.count }

// IdemCount returns how many idempotency records the Decoder has read (returned by NextRecord, or checked and
// skipped by Next).
func (d *Decoder) IdemCount() uint64 { return d.idems }

// Next returns the next key record. key and value are only valid until the next call. It checks and skips the
// idempotency records that follow the key records (NextRecord returns them). After the last record it checks the
// trailer and the end of input and returns io.EOF; any error is returned again by later calls.
func (d *Decoder) Next() (key, value []byte, version uint64, err error) {
	for {
		r, err := d.NextRecord()
		if err != nil {
			return nil, nil, 0, err
		}
		if !r.IsIdem() {
			return r.Key, r.Value, r.Version, nil
		}
	}
}

// NextRecord returns the next record: every key record, then every idempotency record. Its slices (the key, the
// value, the idempotency key) are only valid until the next call. After the last record it checks the trailer and
// the end of input and returns io.EOF; any error is returned again by later calls.
func (d *Decoder) NextRecord() (Record, error) {
	if d.err != nil {
		return Record{}, d.err
	}
	r, err := d.next()
	if err != nil {
		d.err = err
		return Record{}, err
	}
	return r, nil
}

func (d *Decoder) next() (Record, error) {
	tag, err := d.r.ReadByte()
	if err != nil {
		return Record{}, d.readErr(err, "record tag")
	}
	switch tag {
	case tagTrailer:
		return Record{}, d.trailer()
	case tagRecord:
		return d.keyRecord()
	case tagIdem:
		return d.idemRecord()
	}
	return Record{}, corruptf("record %d: unknown tag 0x%02x", d.count+d.idems, tag)
}

// keyRecord reads a key record after its tag.
func (d *Decoder) keyRecord() (Record, error) {
	d.prev, d.key = d.key, d.prev
	klen, err := d.length("key length", apply.MaxKeyLen, false)
	if err != nil {
		return Record{}, err
	}
	d.key = grow(d.key, klen)
	if err := d.readFull(d.key, "key"); err != nil {
		return Record{}, err
	}
	vlen, err := d.length("value length", apply.MaxValueLen, false)
	if err != nil {
		return Record{}, err
	}
	d.value = grow(d.value, vlen)
	if err := d.readFull(d.value, "value"); err != nil {
		return Record{}, err
	}
	version, err := d.uvarint("version")
	if err != nil {
		return Record{}, err
	}
	if err := checkRecord(d.seq, d.prev, d.count == 0, d.idems, d.key, d.value, version); err != nil {
		return Record{}, corruptf("record %d: %w", d.count, err)
	}
	d.count++
	return Record{Key: d.key, Value: d.value, Version: version}, nil
}

// idemRecord reads an idempotency record after its tag.
func (d *Decoder) idemRecord() (Record, error) {
	d.idemPrev, d.idemKey = d.idemKey, d.idemPrev
	klen, err := d.length("idempotency key length", apply.MaxIdemKeyLen, true)
	if err != nil {
		return Record{}, err
	}
	d.idemKey = grow(d.idemKey, klen)
	if err := d.readFull(d.idemKey, "idempotency key"); err != nil {
		return Record{}, err
	}
	seq, err := d.uvarint("idempotency seq")
	if err != nil {
		return Record{}, err
	}
	if err := d.readFull(d.hash[:], "idempotency hash"); err != nil {
		return Record{}, err
	}
	at, err := d.uvarint("idempotency time")
	if err != nil {
		return Record{}, err
	}
	rec := apply.Idem{Key: d.idemKey, Hash: d.hash, At: at}
	if err := checkIdem(d.seq, d.idemPrev, d.idems == 0, rec, seq); err != nil {
		return Record{}, corruptf("idempotency record %d: %w", d.idems, err)
	}
	d.idems++
	return Record{Version: seq, Idem: rec}, nil
}

// trailer checks the key record count and that nothing follows it.
func (d *Decoder) trailer() error {
	n, err := d.uvarint("trailer count")
	if err != nil {
		return err
	}
	if n != d.count {
		return corruptf("trailer count %d, read %d key records", n, d.count)
	}
	if _, err := d.r.ReadByte(); err == nil {
		return corruptf("data after trailer")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("snapshots: decode: %w", err)
	}
	return io.EOF
}

// length reads a uvarint length and checks it against limit, for a key record or an idempotency record (idem).
func (d *Decoder) length(what string, limit int, idem bool) (int, error) {
	n, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		if idem {
			return 0, corruptf("idempotency record %d: %s %d exceeds %d", d.idems, what, n, limit)
		}
		return 0, corruptf("record %d: %s %d exceeds %d", d.count, what, n, limit)
	}
	return int(n), nil
}

// uvarint reads a minimally encoded uvarint (as binary.AppendUvarint writes it).
func (d *Decoder) uvarint(what string) (uint64, error) {
	var x uint64
	for i := 0; ; i++ {
		b, err := d.r.ReadByte()
		if err != nil {
			return 0, d.readErr(err, what)
		}
		if i == 9 && b > 1 {
			return 0, corruptf("%s: uvarint overflows 64 bits", what)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, corruptf("%s: non-minimal uvarint", what)
			}
			return x, nil
		}
	}
}

// readFull fills b; running out of input is corruption (truncation).
func (d *Decoder) readFull(b []byte, what string) error {
	if _, err := io.ReadFull(d.r, b); err != nil {
		return d.readErr(err, what)
	}
	return nil
}

// readErr classifies a read error: the end of input in the middle of the format is truncation (ErrCorrupt); other
// errors come from the underlying reader and keep their identity.
func (d *Decoder) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("truncated at %s after %d records", what, d.count+d.idems)
	}
	return fmt.Errorf("snapshots: decode: %w", err)
}

// grow returns b resized to n bytes, reusing its array when large enough.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// corruptf builds an error wrapping ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("snapshots: decode: %w: %w", ErrCorrupt, fmt.Errorf(format, args...))
}
