package journal

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestValidateStreamName(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		ok     bool
	}{
		{"Default", "REPLIKV", true},
		{"AllClasses", "a-Z_09", true},
		{"Max", strings.Repeat("x", 64), true},
		{"Empty", "", false},
		{"TooLong", strings.Repeat("x", 65), false},
		{"Dot", "a.b", false},
		{"Wildcard", "a*", false},
		{"Space", "a b", false},
		{"Unicode", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateStreamName(tt.stream)
			if tt.ok && err != nil {
				t.Fatalf("ValidateStreamName(%q) = %v, want nil", tt.stream, err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ValidateStreamName(%q) = %v, want ErrMalformed", tt.stream, err)
			}
		})
	}
}

func TestParseAckReply(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		want  ackReply
		ok    bool
	}{
		{"V1", "$JS.ACK.S.C.1.42.7.1700000000.99", ackReply{"C", 42, 99, 1700000000}, true},
		{"V2", "$JS.ACK._.HASH.S.C.1.42.7.1700000000.99.rand", ackReply{"C", 42, 99, 1700000000}, true},
		{"V2NoToken", "$JS.ACK.dom.HASH.S.C.1.42.7.1700000000.99", ackReply{"C", 42, 99, 1700000000}, true},
		{"V2ExtraTokens", "$JS.ACK.dom.HASH.S.Cons_2.1.42.7.1700000000.0.r.x.y", ackReply{"Cons_2", 42, 0, 1700000000}, true},
		{"MaxUint", "$JS.ACK.S.C.1.18446744073709551615.7.1.0", ackReply{"C", 1<<64 - 1, 0, 1}, true},
		{"TimeOverflow", "$JS.ACK.S.C.1.42.7.9223372036854775808.0", ackReply{}, false},
		{"TimeNotNumber", "$JS.ACK.S.C.1.42.7.now.0", ackReply{}, false},
		{"Overflow", "$JS.ACK.S.C.1.18446744073709551616.7.1.0", ackReply{}, false},
		{"TooFew", "$JS.ACK.S.C.1.42.7.1", ackReply{}, false},
		{"EightTokens", "$JS.ACK.d.S.C.1.42.7.1.0", ackReply{}, false},
		{"BadPrefix", "$JS.NAK.S.C.1.42.7.1.0", ackReply{}, false},
		{"NotNumber", "$JS.ACK.S.C.1.4x.7.1.0", ackReply{}, false},
		{"EmptySeq", "$JS.ACK.S.C.1..7.1.0", ackReply{}, false},
		{"EmptyConsumer", "$JS.ACK.S..1.42.7.1.0", ackReply{}, false},
		{"Empty", "", ackReply{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseAckReply(tt.reply)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("parseAckReply(%q) = %+v, %v; want %+v, %v", tt.reply, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseAckReply checks parseAckReply against a plain strings.Split reading of the two formats: whatever the
// subject, it never panics, and it accepts exactly the subjects the reference accepts, with the same fields.
func FuzzParseAckReply(f *testing.F) {
	for _, s := range []string{
		"$JS.ACK.S.C.1.42.7.1700000000.99",
		"$JS.ACK._.HASH.S.C.1.42.7.1700000000.99.rand",
		"$JS.ACK.dom.HASH.S.C.1.42.7.1700000000.0.r.x.y.z.a.b.c.d.e",
		"$JS.ACK.S.C.1.18446744073709551616.7.1.0",
		"$JS.ACK.S..1.42.7.1.0",
		"$JS.ACK....",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		got, ok := parseAckReply(reply)
		want, wantOK := refParseAckReply(reply)
		if ok != wantOK || got != want {
			t.Fatalf("parseAckReply(%q) = %+v, %v; reference %+v, %v", reply, got, ok, want, wantOK)
		}
	})
}

// refParseAckReply is the reference for FuzzParseAckReply: split on dots, pick the format by the token count.
func refParseAckReply(reply string) (ackReply, bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return ackReply{}, false
	}
	tok := strings.Split(rest, ".")
	var base int
	switch {
	case len(tok) == 7:
	case len(tok) >= 9:
		base = 2
	default:
		return ackReply{}, false
	}
	seq, err1 := strconv.ParseUint(tok[base+3], 10, 64)
	pending, err2 := strconv.ParseUint(tok[base+6], 10, 64)
	stored, err3 := strconv.ParseUint(tok[base+5], 10, 63)
	if err1 != nil || err2 != nil || err3 != nil || tok[base+1] == "" {
		return ackReply{}, false
	}
	return ackReply{consumer: tok[base+1], seq: seq, pending: pending, stored: int64(stored)}, true
}
