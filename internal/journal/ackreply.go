package journal

import (
	"math"
	"strings"
)

// ackReply is what a JetStream delivery's reply subject says about the message.
type ackReply struct {
	consumer string // the consumer's name (a substring of the reply)
	seq      uint64 // the message's stream sequence
	pending  uint64 // how many messages the consumer had left after this one
	stored   int64  // when the stream stored the message, in Unix nanoseconds (the server's clock)
}

// parseAckReply extracts the consumer, the stream sequence, the time the stream stored the message and the
// consumer's pending count from a JetStream
// delivery's reply subject, without allocating. The two formats are
//
//	v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//	v2: $JS.ACK.<domain>.<acc hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>...]
//
// (9 tokens, or at least 11). ok is false for anything else.
func parseAckReply(reply string) (r ackReply, ok bool) {
	const prefix = "$JS.ACK."
	if !strings.HasPrefix(reply, prefix) {
		return ackReply{}, false
	}
	rest := reply[len(prefix):]
	// Collect the positions of up to 16 tokens after the prefix.
	var tok [16]string
	n := 0
	for n < len(tok) {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			tok[n] = rest
			n++
			break
		}
		tok[n] = rest[:i]
		rest = rest[i+1:]
		n++
	}
	// n counts the tokens after "$JS.ACK": v1 has 7, v2 at least 9.
	var base int
	switch {
	case n == 7:
		base = 0
	case n >= 9:
		base = 2
	default:
		return ackReply{}, false
	}
	seq, ok1 := parseUint(tok[base+3])
	pending, ok2 := parseUint(tok[base+6])
	stored, ok3 := parseUint(tok[base+5])
	if !ok1 || !ok2 || !ok3 || stored > math.MaxInt64 || tok[base+1] == "" {
		return ackReply{}, false
	}
	return ackReply{consumer: tok[base+1], seq: seq, pending: pending, stored: int64(stored)}, true
}

// parseUint parses a non-empty decimal string that fits in uint64 (leading zeros allowed, as strconv.ParseUint).
func parseUint(s string) (uint64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		next := n*10 + uint64(d-'0')
		if next/10 != n {
			return 0, false // overflow
		}
		n = next
	}
	return n, true
}
