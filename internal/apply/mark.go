package apply

import (
	"crypto/sha256"
	"encoding/binary"
)

// MarkSize is the length of a Mark.
const MarkSize = 16

// Mark identifies one log entry of one log's history: a hash of its sequence, its message id (the Nats-Msg-Id the
// leader gave it: leader id, boot nonce, sequence) and its payload. Two logs that disagree on the entry at a
// sequence give different marks there, even when the payloads happen to be equal, because no two leader
// incarnations share message ids. A store keeps the mark of an entry it applied, so a node can tell, before it reads
// on, whether the log it is about to follow is the one its store came from. The zero Mark means "unknown".
type Mark [MarkSize]byte

// IsZero reports whether m is the zero (unknown) Mark.
func (m Mark) IsZero() bool { return m == Mark{} }

// EntryMark returns the Mark of the entry with sequence seq, message id msgID ("" when it has none) and payload data.
func EntryMark(seq uint64, msgID string, data []byte) Mark {
	h := sha256.New()
	var buf [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(buf[:], seq)
	n += binary.PutUvarint(buf[n:], uint64(len(msgID)))
	h.Write(buf[:n])
	h.Write([]byte(msgID))
	h.Write(data)
	var sum [sha256.Size]byte
	var m Mark
	copy(m[:], h.Sum(sum[:0]))
	if m.IsZero() {
		m[0] = 1 // keep "unknown" unambiguous
	}
	return m
}
