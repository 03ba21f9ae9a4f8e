package snapshots

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hexB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func validManifest() Manifest {
	return Manifest{Format: 1, Stream: "REPLIKV", Seq: 42, Keys: 3, Bytes: 100, SHA256: hexA, Digest: hexB,
		CreatedAt: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Leader: "leader-1"}
}

func TestDecodeManifest(t *testing.T) {
	t.Parallel()
	valid, err := validManifest().encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(valid)
	if err != nil {
		t.Fatalf("DecodeManifest(valid): %v", err)
	}
	if got != validManifest() {
		t.Fatalf("round trip = %+v, want %+v", got, validManifest())
	}

	// The wire names are part of the contract.
	var fields map[string]any
	if err := json.Unmarshal(valid, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"format", "stream", "seq", "keys", "bytes", "sha256", "digest", "created_at", "leader"} {
		if _, ok := fields[name]; !ok {
			t.Errorf("encoded manifest lacks %q: %s", name, valid)
		}
	}

	// idempotency_records is omitted when 0, and has this name otherwise.
	if _, ok := fields["idempotency_records"]; ok {
		t.Errorf("manifest without idempotency records names the field: %s", valid)
	}
	withIdem := validManifest()
	withIdem.IdempotencyRecords = 7
	if b, err := withIdem.encode(); err != nil || !strings.Contains(string(b), `"idempotency_records": 7`) {
		t.Errorf("manifest with 7 idempotency records encodes as %s (%v)", b, err)
	} else if got, err := DecodeManifest(b); err != nil || got != withIdem {
		t.Errorf("round trip = %+v, %v; want %+v", got, err, withIdem)
	}

	mutate := func(f func(m *Manifest)) []byte {
		m := validManifest()
		f(&m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"UnknownField", []byte(strings.Replace(string(valid), `"format"`, `"future": [1], "format"`, 1)), true},
		{"ZeroKeys", mutate(func(m *Manifest) { m.Keys = 0 }), true},
		{"EmptyLeader", mutate(func(m *Manifest) { m.Leader = "" }), true},
		{"TrailingSpace", append(append([]byte{}, valid...), " \n\t"...), true},
		{"Empty", nil, false},
		{"Null", []byte("null"), false},
		{"Array", []byte("[]"), false},
		{"Truncated", valid[:len(valid)/2], false},
		{"TrailingData", append(append([]byte{}, valid...), "{}"...), false},
		{"TooLarge", []byte(strings.Replace(string(valid), `"leader"`, `"pad":"`+strings.Repeat("x", maxManifestSize)+`","leader"`, 1)), false},
		{"Format0", mutate(func(m *Manifest) { m.Format = 0 }), false},
		{"Format2", mutate(func(m *Manifest) { m.Format = 2 }), false},
		{"Seq0", mutate(func(m *Manifest) { m.Seq = 0 }), false},
		{"NegativeSeq", []byte(strings.Replace(string(valid), `"seq": 42`, `"seq": -42`, 1)), false},
		{"Bytes0", mutate(func(m *Manifest) { m.Bytes = 0 }), false},
		{"NoStream", mutate(func(m *Manifest) { m.Stream = "" }), false},
		{"StreamWithSlash", mutate(func(m *Manifest) { m.Stream = "a/b" }), false},
		{"ShortSHA", mutate(func(m *Manifest) { m.SHA256 = hexA[:63] }), false},
		{"UpperSHA", mutate(func(m *Manifest) { m.SHA256 = strings.ToUpper(hexB) }), false},
		{"NonHexDigest", mutate(func(m *Manifest) { m.Digest = "g" + hexA[1:] }), false},
		{"NoCreatedAt", mutate(func(m *Manifest) { m.CreatedAt = time.Time{} }), false},
		{"EntryMark", mutate(func(m *Manifest) { m.EntryMark = hexA[:32] }), true},
		{"ShortEntryMark", mutate(func(m *Manifest) { m.EntryMark = hexA[:31] }), false},
		{"LongEntryMark", mutate(func(m *Manifest) { m.EntryMark = hexA[:34] }), false},
		{"UpperEntryMark", mutate(func(m *Manifest) { m.EntryMark = strings.ToUpper(hexB[:32]) }), false},
		{"CheckpointSeq", mutate(func(m *Manifest) { m.CheckpointSeq = m.Seq + 1 }), true},
		{"CheckpointSeqAtSeq", mutate(func(m *Manifest) { m.CheckpointSeq = m.Seq }), false},
		{"CheckpointSeqBefore", mutate(func(m *Manifest) { m.CheckpointSeq = m.Seq - 1 }), false},
		{"CheckpointSeqHuge", mutate(func(m *Manifest) { m.CheckpointSeq = 1 << 63 }), false},
		{"IdempotencyRecords", mutate(func(m *Manifest) { m.IdempotencyRecords = 5 }), true},
		{"IdempotencyRecordsAtBound", mutate(func(m *Manifest) { m.IdempotencyRecords = uint64(m.Bytes) * maxKeysPerByte }), true},
		{"IdempotencyRecordsBeyondBytes", mutate(func(m *Manifest) { m.IdempotencyRecords = uint64(m.Bytes)*maxKeysPerByte + 1 }), false},
		{"IdempotencyRecordsNegative", []byte(strings.Replace(string(valid), `"keys": 3`, `"keys": 3, "idempotency_records": -1`, 1)), false},
		{"WrongType", []byte(strings.Replace(string(valid), `"seq": 42`, `"seq": "42"`, 1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeManifest(tt.b)
			if tt.ok && err != nil {
				t.Fatalf("DecodeManifest: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeManifest = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key       string
		seq       uint64
		name      string
		ok        bool
		roundTrip bool
	}{
		{"S/00000000000000000042/data", 42, "data", true, true},
		{"S/18446744073709551615/manifest.json", ^uint64(0), "manifest.json", true, true},
		{"S/00000000000000000000/data", 0, "", false, false},
		{"S/99999999999999999999/data", 0, "", false, false}, // overflows uint64
		{"S/0000000000000000042/data", 0, "", false, false},  // 19 digits
		{"S/0000000000000000004a/data", 0, "", false, false},
		{"S/00000000000000000042/a/b", 0, "", false, false},
		{"S/00000000000000000042", 0, "", false, false},
		{"T/00000000000000000042/data", 0, "", false, false},
		{"SS/00000000000000000042/data", 0, "", false, false},
	}
	for _, tt := range tests {
		seq, name, ok := parseKey("S", tt.key)
		if ok != tt.ok || seq != tt.seq || name != tt.name {
			t.Errorf("parseKey(%q) = %d, %q, %v; want %d, %q, %v", tt.key, seq, name, ok, tt.seq, tt.name, tt.ok)
		}
		if tt.roundTrip && snapshotDir("S", seq)+"/"+name != tt.key {
			t.Errorf("snapshotDir(%d) does not round-trip %q", seq, tt.key)
		}
	}
	if got := dataKey("REPLIKV", 7); got != "REPLIKV/00000000000000000007/data" {
		t.Errorf("dataKey = %q", got)
	}
	if got := manifestKey("REPLIKV", 7); got != "REPLIKV/00000000000000000007/manifest.json" {
		t.Errorf("manifestKey = %q", got)
	}
}
