package journal

import (
	"errors"
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
		name         string
		reply        string
		seq, pending uint64
		ok           bool
	}{
		{"V1", "$JS.ACK.S.C.1.42.7.1700000000.99", 42, 99, true},
		{"V2", "$JS.ACK._.HASH.S.C.1.42.7.1700000000.99.rand", 42, 99, true},
		{"V2NoToken", "$JS.ACK.dom.HASH.S.C.1.42.7.1700000000.99", 42, 99, true},
		{"V2ExtraTokens", "$JS.ACK.dom.HASH.S.C.1.42.7.1700000000.0.r.x.y", 42, 0, true},
		{"MaxUint", "$JS.ACK.S.C.1.18446744073709551615.7.1.0", 1<<64 - 1, 0, true},
		{"Overflow", "$JS.ACK.S.C.1.18446744073709551616.7.1.0", 0, 0, false},
		{"TooFew", "$JS.ACK.S.C.1.42.7.1", 0, 0, false},
		{"EightTokens", "$JS.ACK.d.S.C.1.42.7.1.0", 0, 0, false},
		{"BadPrefix", "$JS.NAK.S.C.1.42.7.1.0", 0, 0, false},
		{"NotNumber", "$JS.ACK.S.C.1.4x.7.1.0", 0, 0, false},
		{"EmptySeq", "$JS.ACK.S.C.1..7.1.0", 0, 0, false},
		{"Empty", "", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, pending, ok := parseAckReply(tt.reply)
			if ok != tt.ok || seq != tt.seq || pending != tt.pending {
				t.Fatalf("parseAckReply(%q) = %d, %d, %v; want %d, %d, %v", tt.reply, seq, pending, ok, tt.seq,
					tt.pending, tt.ok)
			}
		})
	}
}

func TestParseAckReply_NoAlloc(t *testing.T) {
	reply := "$JS.ACK._.HASH.S.C.1.42.7.1700000000.99.rand"
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, ok := parseAckReply(reply); !ok {
			t.Fatal("not parsed")
		}
	})
	if allocs != 0 {
		t.Fatalf("parseAckReply allocates %.0f times per call", allocs)
	}
}
