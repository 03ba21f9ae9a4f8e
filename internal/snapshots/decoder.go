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
// keys not strictly increasing, a version outside [1, seq], a wrong trailer count, bytes after the trailer) returns
// an error wrapping ErrCorrupt. Errors of the underlying reader are returned wrapped as they are (not ErrCorrupt).
//
// Memory is bounded by one key and one value whatever the input. A Decoder is not safe for concurrent use.
type Decoder struct {
	r     *bufio.Reader
	seq   uint64
	count uint64
	key   []byte // the record returned last
	prev  []byte // the record before it, for the order check; swapped with key
	value []byte
	err   error // sticky
}

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

// Count returns how many records Next has returned.
func (d *Decoder) Count() uint64 { return d.count }

// Next returns the next record. key and value are only valid until the next call. After the last record it checks
// the trailer and the end of input and returns io.EOF; any error is returned again by later calls.
func (d *Decoder) Next() (key, value []byte, version uint64, err error) {
	if d.err != nil {
		return nil, nil, 0, d.err
	}
	key, value, version, err = d.next()
	if err != nil {
		d.err = err
		return nil, nil, 0, err
	}
	return key, value, version, nil
}

func (d *Decoder) next() ([]byte, []byte, uint64, error) {
	tag, err := d.r.ReadByte()
	if err != nil {
		return nil, nil, 0, d.readErr(err, "record tag")
	}
	switch tag {
	case tagTrailer:
		return nil, nil, 0, d.trailer()
	case tagRecord:
	default:
		return nil, nil, 0, corruptf("record %d: unknown tag 0x%02x", d.count, tag)
	}
	d.prev, d.key = d.key, d.prev
	klen, err := d.length("key length", apply.MaxKeyLen)
	if err != nil {
		return nil, nil, 0, err
	}
	d.key = grow(d.key, klen)
	if err := d.readFull(d.key, "key"); err != nil {
		return nil, nil, 0, err
	}
	vlen, err := d.length("value length", apply.MaxValueLen)
	if err != nil {
		return nil, nil, 0, err
	}
	d.value = grow(d.value, vlen)
	if err := d.readFull(d.value, "value"); err != nil {
		return nil, nil, 0, err
	}
	version, err := d.uvarint("version")
	if err != nil {
		return nil, nil, 0, err
	}
	if err := checkRecord(d.seq, d.prev, d.count == 0, d.key, d.value, version); err != nil {
		return nil, nil, 0, corruptf("record %d: %w", d.count, err)
	}
	d.count++
	return d.key, d.value, version, nil
}

// trailer checks the record count and that nothing follows it.
func (d *Decoder) trailer() error {
	n, err := d.uvarint("trailer count")
	if err != nil {
		return err
	}
	if n != d.count {
		return corruptf("trailer count %d, read %d records", n, d.count)
	}
	if _, err := d.r.ReadByte(); err == nil {
		return corruptf("data after trailer")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("snapshots: decode: %w", err)
	}
	return io.EOF
}

// length reads a uvarint length and checks it against limit.
func (d *Decoder) length(what string, limit int) (int, error) {
	n, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
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
		return corruptf("truncated at %s after %d records", what, d.count)
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
