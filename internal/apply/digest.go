package apply

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// Digest computes the contract's state digest incrementally: SHA-256 over every live key in byte order, each written
// as uvarint(len(key)) key uvarint(len(value)) value uvarint(version). The empty store's digest is the SHA-256 of
// nothing.
//
// Keys must be added in strictly increasing byte order; Digest does not check it (the store's iteration order
// guarantees it). A Digest is not safe for concurrent use.
type Digest struct {
	h    hash.Hash
	keys uint64
	buf  []byte
}

// NewDigest returns the digest of an empty store, ready for Add.
func NewDigest() *Digest {
	return &Digest{h: sha256.New(), buf: make([]byte, 0, 2*binary.MaxVarintLen64)}
}

// Add appends one live key with its value and version.
func (d *Digest) Add(key, value []byte, version uint64) {
	d.buf = binary.AppendUvarint(d.buf[:0], uint64(len(key)))
	d.h.Write(d.buf)
	d.h.Write(key)
	d.buf = binary.AppendUvarint(d.buf[:0], uint64(len(value)))
	d.h.Write(d.buf)
	d.h.Write(value)
	d.buf = binary.AppendUvarint(d.buf[:0], version)
	d.h.Write(d.buf)
	d.keys++
}

// Keys returns how many keys were added.
func (d *Digest) Keys() uint64 { return d.keys }

// Sum returns the digest of what was added so far as lowercase hex. It does not change the state: Add may continue.
func (d *Digest) Sum() string {
	var sum [sha256.Size]byte
	return hex.EncodeToString(d.h.Sum(sum[:0]))
}
