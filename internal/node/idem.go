package node

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/replikv/replikv/internal/api"
	"github.com/replikv/replikv/internal/apply"
)

// errIdemReused is the answer to a write whose idempotency key an earlier, different request used.
var errIdemReused = fmt.Errorf("node: %w", api.ErrIdempotencyKeyReused)

// idemInFlight is a write with an idempotency key that the leader published and has not applied yet.
type idemInFlight struct {
	seq  uint64
	hash [apply.IdemHashSize]byte
}

// idemExpired reports whether rec no longer answers retries at now: its retention ttl has passed since rec.At.
func idemExpired(rec apply.Idem, ttl time.Duration, now time.Time) bool {
	return rec.At+uint64(ttl.Milliseconds()) <= uint64(max(now.UnixMilli(), 0))
}

// newIdem returns the idempotency record of a request with key, accepted now, whose content is entry (the entry it
// makes, without a record) and conds (its preconditions, in request order). Hash is SHA-256 over a domain tag, the
// entry and the preconditions: a retry must send the same operation, keys, values and preconditions.
func newIdem(key, entry []byte, conds []apply.Cond, now time.Time) apply.Idem {
	h := sha256.New()
	h.Write([]byte("replikv idempotency v1\x00"))
	var buf [binary.MaxVarintLen64 + 1]byte
	h.Write(binary.AppendUvarint(buf[:0], uint64(len(entry))))
	h.Write(entry)
	for _, c := range conds {
		b := buf[:0]
		switch {
		case c.HasIfMatch:
			b = binary.AppendUvarint(append(b, 1), c.IfMatch)
		case c.IfNoneMatch:
			b = append(b, 2)
		default:
			b = append(b, 0)
		}
		h.Write(b)
	}
	rec := apply.Idem{Key: key, At: uint64(max(now.UnixMilli(), 1))}
	h.Sum(rec.Hash[:0])
	return rec
}
