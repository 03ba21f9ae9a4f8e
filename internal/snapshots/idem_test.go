package snapshots

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/apply"
	"go.uber.org/zap/zaptest"
)

// idemRecord is one idempotency record of a snapshot in tests: the record and the log sequence of its write.
type idemRecord struct {
	key  string
	hash [apply.IdemHashSize]byte
	at   uint64
	seq  uint64
}

func (r idemRecord) idem() apply.Idem { return apply.Idem{Key: []byte(r.key), Hash: r.hash, At: r.at} }

// testHash is a request hash whose bytes count up from first.
func testHash(first byte) (h [apply.IdemHashSize]byte) {
	for i := range h {
		h[i] = first + byte(i)
	}
	return h
}

// encodeFull encodes key records, then idempotency records, at seq with the Encoder.
func encodeFull(t testing.TB, seq uint64, recs []record, idems []idemRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := NewEncoder(&buf, seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := enc.Add([]byte(r.key), []byte(r.value), r.version); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range idems {
		if err := enc.AddIdem(r.idem(), r.seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if enc.Count() != uint64(len(recs)) || enc.IdemCount() != uint64(len(idems)) {
		t.Fatalf("encoder counts %d and %d, want %d and %d", enc.Count(), enc.IdemCount(), len(recs), len(idems))
	}
	return buf.Bytes()
}

// decodeFull decodes b fully with NextRecord.
func decodeFull(b []byte) (uint64, []record, []idemRecord, error) {
	dec, err := NewDecoder(bytes.NewReader(b))
	if err != nil {
		return 0, nil, nil, err
	}
	var recs []record
	var idems []idemRecord
	for {
		r, err := dec.NextRecord()
		if errors.Is(err, io.EOF) {
			if dec.Count() != uint64(len(recs)) || dec.IdemCount() != uint64(len(idems)) {
				return 0, nil, nil, errors.New("decoder counts differ from the records returned")
			}
			return dec.Seq(), recs, idems, nil
		}
		if err != nil {
			return dec.Seq(), recs, idems, err
		}
		if r.IsIdem() {
			if r.Key != nil || r.Value != nil {
				return 0, nil, nil, errors.New("idempotency record with a key or value")
			}
			idems = append(idems, idemRecord{string(r.Idem.Key), r.Idem.Hash, r.Idem.At, r.Version})
			continue
		}
		recs = append(recs, record{string(r.Key), string(r.Value), r.Version})
	}
}

// rawIdem encodes one idempotency record by hand.
func rawIdem(key string, seq uint64, hash [apply.IdemHashSize]byte, at uint64) []byte {
	b := []byte{tagIdem}
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, seq)
	b = append(b, hash[:]...)
	return binary.AppendUvarint(b, at)
}

// idemSliceSource is a sliceSource with idempotency records (an IdemSource).
type idemSliceSource struct {
	*sliceSource
	idems []idemRecord
	err   error // returned by IterateIdem after all records when set
}

func (s *idemSliceSource) IterateIdem(fn func(rec apply.Idem, seq uint64) error) error {
	for _, r := range s.idems {
		if err := fn(r.idem(), r.seq); err != nil {
			return err
		}
	}
	return s.err
}

// idemCollectSink is a collectSink that takes idempotency records too (an IdemSink), and notes an Add after one.
type idemCollectSink struct {
	collectSink
	idems        []idemRecord
	addAfterIdem bool
	err          error // returned by AddIdem when set
}

func (s *idemCollectSink) Add(key, value []byte, version uint64) error {
	if len(s.idems) > 0 {
		s.addAfterIdem = true
	}
	return s.collectSink.Add(key, value, version)
}

func (s *idemCollectSink) AddIdem(rec apply.Idem, seq uint64) error {
	if s.err != nil {
		return s.err
	}
	s.idems = append(s.idems, idemRecord{string(rec.Key), rec.Hash, rec.At, seq})
	return nil
}

func TestEncoder_IdemRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		seq   uint64
		recs  []record
		idems []idemRecord
	}{
		{"OnlyIdem", 5, nil, []idemRecord{{"k1", testHash(0), 1, 5}}},
		{"KeysAndIdems", 9, []record{{"a", "1", 1}, {"b", "", 9}}, []idemRecord{
			{"!", testHash(0), 1, 1},
			{"0b6e1c1e-6f1c-4c53-9f2e-3d3a2b1c0d9e", testHash(7), 1700000000000, 9},
			{"a", testHash(0xf0), 1<<64 - 1, 3},
			{"~~", testHash(1), 2, 9},
		}},
		{"Limits", ^uint64(0), []record{{"z", "v", ^uint64(0)}}, []idemRecord{
			{strings.Repeat("~", apply.MaxIdemKeyLen), testHash(0xff), 1<<64 - 1, ^uint64(0)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeFull(t, tt.seq, tt.recs, tt.idems)
			seq, recs, idems, err := decodeFull(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if seq != tt.seq || !slices.Equal(recs, tt.recs) || !slices.Equal(idems, tt.idems) {
				t.Fatalf("decoded seq %d, %+v, %+v; want %d, %+v, %+v", seq, recs, idems, tt.seq, tt.recs, tt.idems)
			}
			if again := encodeFull(t, seq, recs, idems); !bytes.Equal(again, b) {
				t.Fatal("re-encoding differs")
			}
			// Next returns the key records only, and checks the rest to the end.
			_, keysOnly, err := decodeAll(b)
			if err != nil || !slices.Equal(keysOnly, tt.recs) {
				t.Fatalf("Next gave %+v, %v; want %+v", keysOnly, err, tt.recs)
			}
		})
	}
}

func TestEncoder_IdemLayout(t *testing.T) {
	t.Parallel()
	// The documented byte layout, spelled out: docs/formats.md must agree with this test.
	got := encodeFull(t, 300, []record{{"ab", "xyz", 300}}, []idemRecord{{"k1", testHash(0), 1700000000000, 300}})
	want := []byte("RKVSNAP1")
	want = append(want, 0x01, 0xac, 0x02) // format 1, seq 300
	want = append(want, 0x01, 0x02, 'a', 'b', 0x03, 'x', 'y', 'z', 0xac, 0x02)
	want = append(want, 0x02, 0x02, 'k', '1', 0xac, 0x02) // idempotency record: key "k1", seq 300
	for i := range 32 {
		want = append(want, byte(i)) // hash
	}
	want = append(want, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31) // at 1700000000000
	want = append(want, 0x00, 0x01)                         // trailer: 1 key record
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding = % x\nwant      % x", got, want)
	}
}

// A snapshot without idempotency records is the format as it was before they existed.
func TestEncoder_NoIdemUnchanged(t *testing.T) {
	t.Parallel()
	for _, recs := range [][]record{nil, {{"a", "1", 1}}, {{"a", "1", 1}, {"b", "22", 5}}} {
		want := [][]byte{}
		for _, r := range recs {
			want = append(want, rec(r.key, r.value, r.version))
		}
		want = append(want, trailer(uint64(len(recs))))
		if got := encodeFull(t, 5, recs, nil); !bytes.Equal(got, rawPlain(5, want...)) {
			t.Fatalf("encoding of %+v = % x, want % x", recs, got, rawPlain(5, want...))
		}
	}
}

func TestEncoder_AddIdem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prev    *idemRecord
		r       idemRecord
		wantErr error
	}{
		{"EmptyKey", nil, idemRecord{"", testHash(0), 1, 1}, apply.ErrInvalidKey},
		{"LongKey", nil, idemRecord{strings.Repeat("k", apply.MaxIdemKeyLen+1), testHash(0), 1, 1}, apply.ErrInvalidKey},
		{"SpaceInKey", nil, idemRecord{"a b", testHash(0), 1, 1}, apply.ErrInvalidKey},
		{"DELInKey", nil, idemRecord{"a\x7f", testHash(0), 1, 1}, apply.ErrInvalidKey},
		{"UTF8Key", nil, idemRecord{"clé", testHash(0), 1, 1}, apply.ErrInvalidKey},
		{"SeqZero", nil, idemRecord{"k", testHash(0), 1, 0}, nil},
		{"SeqAboveSnapshot", nil, idemRecord{"k", testHash(0), 1, 11}, nil},
		{"AtZero", nil, idemRecord{"k", testHash(0), 0, 1}, nil},
		{"Duplicate", &idemRecord{"k", testHash(0), 1, 1}, idemRecord{"k", testHash(1), 2, 2}, nil},
		{"Decreasing", &idemRecord{"k", testHash(0), 1, 1}, idemRecord{"j", testHash(1), 2, 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := NewEncoder(io.Discard, 10)
			if err != nil {
				t.Fatal(err)
			}
			if tt.prev != nil {
				if err := enc.AddIdem(tt.prev.idem(), tt.prev.seq); err != nil {
					t.Fatal(err)
				}
			}
			err = enc.AddIdem(tt.r.idem(), tt.r.seq)
			if err == nil {
				t.Fatal("AddIdem accepted an invalid record")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("AddIdem = %v, want %v", err, tt.wantErr)
			}
			if err2 := enc.AddIdem(apply.Idem{Key: []byte("~~~"), At: 1}, 1); err2 == nil {
				t.Fatal("AddIdem after a failed AddIdem succeeded")
			}
			if err2 := enc.Close(); err2 == nil {
				t.Fatal("Close after a failed AddIdem succeeded")
			}
		})
	}
	t.Run("AddAfterAddIdem", func(t *testing.T) {
		enc, err := NewEncoder(io.Discard, 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Add([]byte("a"), nil, 1); err != nil {
			t.Fatal(err)
		}
		if err := enc.AddIdem(apply.Idem{Key: []byte("k"), At: 1}, 1); err != nil {
			t.Fatal(err)
		}
		if err := enc.Add([]byte("b"), nil, 1); err == nil {
			t.Fatal("Add after AddIdem succeeded")
		}
		if err := enc.Close(); err == nil {
			t.Fatal("Close after a failed Add succeeded")
		}
	})
	t.Run("AfterClose", func(t *testing.T) {
		enc, err := NewEncoder(io.Discard, 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := enc.AddIdem(apply.Idem{Key: []byte("k"), At: 1}, 1); err == nil {
			t.Fatal("AddIdem after Close succeeded")
		}
	})
}

func TestDecoder_CorruptIdem(t *testing.T) {
	t.Parallel()
	h := testHash(0)
	k1 := rawIdem("k1", 5, h, 1)
	valid := rawPlain(5, rec("a", "1", 1), k1, rawIdem("k2", 1, h, 9), trailer(1))
	if _, _, _, err := decodeFull(valid); err != nil {
		t.Fatalf("the valid baseline does not decode: %v", err)
	}
	// piece is an idempotency record whose fields are given as raw bytes.
	piece := func(parts ...[]byte) []byte { return slices.Concat(append([][]byte{{tagIdem}}, parts...)...) }
	u := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"KeyEmpty", rawPlain(5, rawIdem("", 1, h, 1), trailer(0))},
		{"KeyTooLong", rawPlain(5, rawIdem(strings.Repeat("k", apply.MaxIdemKeyLen+1), 1, h, 1), trailer(0))},
		{"KeyLenHuge", rawPlain(5, piece(u(1<<40)))},
		{"KeyLenNonMinimal", rawPlain(5, piece([]byte{0x82, 0x00}, []byte("k1"), u(1), h[:], u(1)), trailer(0))},
		{"KeySpace", rawPlain(5, rawIdem("k 1", 1, h, 1), trailer(0))},
		{"KeyControl", rawPlain(5, rawIdem("k\n", 1, h, 1), trailer(0))},
		{"KeyDEL", rawPlain(5, rawIdem("k\x7f", 1, h, 1), trailer(0))},
		{"KeyHighBit", rawPlain(5, rawIdem("k\xc3\xa9", 1, h, 1), trailer(0))},
		{"Unordered", rawPlain(5, rawIdem("k2", 1, h, 1), k1, trailer(0))},
		{"Duplicate", rawPlain(5, k1, rawIdem("k1", 2, h, 2), trailer(0))},
		{"Seq0", rawPlain(5, rawIdem("k1", 0, h, 1), trailer(0))},
		{"SeqAboveSnapshot", rawPlain(5, rawIdem("k1", 6, h, 1), trailer(0))},
		{"SeqNonMinimal", rawPlain(5, piece(u(2), []byte("k1"), []byte{0x85, 0x00}, h[:], u(1)), trailer(0))},
		{"SeqOverflow", rawPlain(5, piece(u(2), []byte("k1"), bytes.Repeat([]byte{0xff}, 9), []byte{0x02}))},
		{"At0", rawPlain(5, rawIdem("k1", 1, h, 0), trailer(0))},
		{"AtNonMinimal", rawPlain(5, piece(u(2), []byte("k1"), u(1), h[:], []byte{0x81, 0x00}), trailer(0))},
		{"AtOverflow", rawPlain(5, piece(u(2), []byte("k1"), u(1), h[:], bytes.Repeat([]byte{0xff}, 9), []byte{0x02}))},
		{"KeyRecordAfterIdem", rawPlain(5, k1, rec("a", "1", 1), trailer(1))},
		{"KeyRecordBetweenIdems", rawPlain(5, rec("a", "1", 1), k1, rec("b", "1", 1), rawIdem("k2", 1, h, 1), trailer(2))},
		{"TrailerCountsIdems", rawPlain(5, rec("a", "1", 1), k1, trailer(2))},
		{"TrailerCountOnlyIdems", rawPlain(5, k1, trailer(1))},
		{"NoTrailer", rawPlain(5, rec("a", "1", 1), k1)},
		{"TruncatedKey", rawPlain(5, piece(u(2), []byte("k")))},
		{"TruncatedSeq", rawPlain(5, piece(u(2), []byte("k1")))},
		{"TruncatedHash", rawPlain(5, piece(u(2), []byte("k1"), u(1), h[:31]))},
		{"TruncatedAt", rawPlain(5, piece(u(2), []byte("k1"), u(1), h[:]))},
		{"TruncatedAtMidUvarint", rawPlain(5, piece(u(2), []byte("k1"), u(1), h[:], []byte{0x80}))},
		{"TrailingByte", append(append([]byte{}, valid...), 0x00)},
		{"UnknownTagAfterIdem", rawPlain(5, k1, []byte{0x03})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := decodeFull(tt.b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("NextRecord: decode = %v, want ErrCorrupt", err)
			}
			if _, _, err := decodeAll(tt.b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Next: decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestDecoder_NextRecord(t *testing.T) {
	t.Parallel()
	h := testHash(3)
	b := rawPlain(9, rec("a", "1", 1), rec("b", "2", 9), rawIdem("k1", 4, h, 77), rawIdem("k2", 9, h, 78), trailer(2))
	t.Run("Order", func(t *testing.T) {
		dec, err := NewDecoder(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			r, err := dec.NextRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.IsIdem() {
				if r.Idem.Hash != h {
					t.Fatalf("hash of %q = %x", r.Idem.Key, r.Idem.Hash)
				}
				got = append(got, "idem "+string(r.Idem.Key))
			} else {
				got = append(got, "key "+string(r.Key))
			}
		}
		if want := []string{"key a", "key b", "idem k1", "idem k2"}; !slices.Equal(got, want) {
			t.Fatalf("records %q, want %q", got, want)
		}
		for i := range 2 {
			if _, err := dec.NextRecord(); !errors.Is(err, io.EOF) {
				t.Fatalf("NextRecord #%d after the end = %v, want io.EOF", i, err)
			}
		}
	})
	t.Run("NextSkipsIdem", func(t *testing.T) {
		dec, err := NewDecoder(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"a", "b"} {
			if k, _, _, err := dec.Next(); err != nil || string(k) != want {
				t.Fatalf("Next = %q, %v; want %q", k, err, want)
			}
		}
		if dec.IdemCount() != 0 {
			t.Fatalf("IdemCount %d before the records were read", dec.IdemCount())
		}
		if _, _, _, err := dec.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("Next = %v, want io.EOF", err)
		}
		if dec.Count() != 2 || dec.IdemCount() != 2 {
			t.Fatalf("Count %d, IdemCount %d; want 2 and 2", dec.Count(), dec.IdemCount())
		}
	})
	t.Run("ErrorSticky", func(t *testing.T) {
		dec, err := NewDecoder(bytes.NewReader(rawPlain(9, rawIdem("k1", 10, h, 1), trailer(0))))
		if err != nil {
			t.Fatal(err)
		}
		_, err = dec.NextRecord()
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("NextRecord = %v, want ErrCorrupt", err)
		}
		if _, _, _, again := dec.Next(); !errors.Is(again, ErrCorrupt) {
			t.Fatalf("error not sticky: %v", again)
		}
	})
}

// Reading idempotency records allocates nothing per record: memory stays bounded by one record.
func TestDecoder_IdemAllocations(t *testing.T) {
	const n = 1000
	pieces := make([][]byte, 0, n+1)
	for i := range n {
		pieces = append(pieces, rawIdem(fmt.Sprintf("%s%04d", strings.Repeat("k", 100), i), 5, testHash(byte(i)),
			uint64(i+1)))
	}
	b := rawPlain(5, append(pieces, trailer(0))...)
	allocs := testing.AllocsPerRun(5, func() {
		if _, _, err := decodeAll(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Fatalf("decoding %d idempotency records allocates %v times", n, allocs)
	}
}

func TestRepo_Idem(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	newRepo := func(t *testing.T) (*Repo, Store) {
		t.Helper()
		s := newFileTestStore(t)
		if err := s.Init(ctx, true); err != nil {
			t.Fatal(err)
		}
		return NewRepo(s, testStream, zaptest.NewLogger(t)), s
	}
	keys := []record{{"a", "1", 1}, {"b/c", strings.Repeat("v", 1000), 30}, {"ключ", "", 50}}
	idems := []idemRecord{
		{"0b6e1c1e-6f1c-4c53-9f2e-3d3a2b1c0d9e", testHash(1), 1700000000000, 50},
		{"k1", testHash(2), 1, 1},
		{strings.Repeat("~", apply.MaxIdemKeyLen), testHash(3), 1<<64 - 1, 49},
	}
	newSource := func() *idemSliceSource {
		return &idemSliceSource{sliceSource: &sliceSource{seq: 50, recs: keys}, idems: idems}
	}
	// plaintext returns the decompressed data object of m.
	plaintext := func(t *testing.T, s Store, m Manifest) []byte {
		t.Helper()
		zr, err := newZstdReader(bytes.NewReader(mustGet(t, s, dataKey(testStream, m.Seq))))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("RoundTrip", func(t *testing.T) {
		r, s := newRepo(t)
		src := newSource()
		m, err := r.Create(ctx, src, "leader-1")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		wantKeys, wantDigest := digestOf(src)
		if m.Keys != wantKeys || m.Digest != wantDigest || m.IdempotencyRecords != uint64(len(idems)) {
			t.Fatalf("manifest = %+v; want %d keys, digest %s, %d idempotency records", m, wantKeys, wantDigest,
				len(idems))
		}
		var fields map[string]any
		if err := json.Unmarshal(mustGet(t, s, manifestKey(testStream, m.Seq)), &fields); err != nil ||
			fields["idempotency_records"] != float64(len(idems)) {
			t.Fatalf("stored manifest has idempotency_records %v (%v), want %d", fields["idempotency_records"], err,
				len(idems))
		}
		if got := plaintext(t, s, m); !bytes.Equal(got, encodeFull(t, 50, keys, idems)) {
			t.Fatal("data is not the encoding of the keys then the idempotency records")
		}
		list, err := r.List(ctx)
		if err != nil || len(list) != 1 || list[0] != m {
			t.Fatalf("List = %+v, %v; want [%+v]", list, err, m)
		}

		var sink idemCollectSink
		if err := r.Restore(ctx, list[0], &sink, nil); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if !slices.Equal(sink.recs, keys) || !slices.Equal(sink.idems, idems) || sink.addAfterIdem {
			t.Fatalf("restored %+v and %+v (an Add after AddIdem: %v)", sink.recs, sink.idems, sink.addAfterIdem)
		}
		// A sink that takes no idempotency records gets the keys; the records are checked and skipped.
		var plain collectSink
		if err := r.Restore(ctx, m, &plain, nil); err != nil || !slices.Equal(plain.recs, keys) {
			t.Fatalf("Restore into a plain sink = %v with %+v", err, plain.recs)
		}
	})

	t.Run("NoRecords", func(t *testing.T) {
		// An IdemSource without records, or a plain Source, writes the format as it was: no idempotency records,
		// and a manifest without the field.
		for name, src := range map[string]Source{
			"IdemSource": &idemSliceSource{sliceSource: &sliceSource{seq: 50, recs: keys}},
			"Source":     &sliceSource{seq: 50, recs: keys},
		} {
			t.Run(name, func(t *testing.T) {
				r, s := newRepo(t)
				m, err := r.Create(ctx, src, "leader-1")
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if m.IdempotencyRecords != 0 {
					t.Fatalf("manifest claims %d idempotency records", m.IdempotencyRecords)
				}
				if body := mustGet(t, s, manifestKey(testStream, m.Seq)); bytes.Contains(body, []byte("idempotency")) {
					t.Fatalf("manifest names idempotency records: %s", body)
				}
				if got := plaintext(t, s, m); !bytes.Equal(got, encodePlain(t, 50, keys)) {
					t.Fatal("data differs from the format without idempotency records")
				}
				var sink idemCollectSink
				if err := r.Restore(ctx, m, &sink, nil); err != nil || !slices.Equal(sink.recs, keys) ||
					len(sink.idems) != 0 {
					t.Fatalf("Restore = %v with %d keys and %d idempotency records", err, len(sink.recs), len(sink.idems))
				}
			})
		}
	})

	t.Run("ManifestMismatch", func(t *testing.T) {
		r, _ := newRepo(t)
		m, err := r.Create(ctx, newSource(), "leader-1")
		if err != nil {
			t.Fatal(err)
		}
		plainM, err := r.Create(ctx, &sliceSource{seq: 60, recs: keys}, "leader-1")
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			m    Manifest
			n    uint64
		}{
			{"Fewer", m, uint64(len(idems)) - 1},
			{"More", m, uint64(len(idems)) + 1},
			{"Absent", m, 0},
			{"NoneInData", plainM, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mm := tt.m
				mm.IdempotencyRecords = tt.n
				for _, sink := range []Sink{&idemCollectSink{}, &collectSink{}} {
					err := r.Restore(ctx, mm, sink, nil)
					t.Log(err)
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("Restore into %T = %v, want ErrCorrupt", sink, err)
					}
				}
			})
		}
	})

	t.Run("CreateFailsInvisible", func(t *testing.T) {
		errSource := errors.New("source failed")
		tests := []struct {
			name    string
			idems   []idemRecord
			err     error
			wantErr error
		}{
			{"SourceError", idems, errSource, errSource},
			{"InvalidKey", []idemRecord{{"k 1", testHash(0), 1, 1}}, nil, apply.ErrInvalidKey},
			{"Unordered", []idemRecord{{"k2", testHash(0), 1, 1}, {"k1", testHash(0), 1, 1}}, nil, nil},
			{"SeqAboveSnapshot", []idemRecord{{"k1", testHash(0), 1, 51}}, nil, nil},
			{"SeqZero", []idemRecord{{"k1", testHash(0), 1, 0}}, nil, nil},
			{"AtZero", []idemRecord{{"k1", testHash(0), 0, 1}}, nil, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, s := newRepo(t)
				src := &idemSliceSource{sliceSource: &sliceSource{seq: 50, recs: keys}, idems: tt.idems, err: tt.err}
				_, err := r.Create(ctx, src, "l")
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Create = %v, want %v", err, tt.wantErr)
				}
				if objs, err := s.List(ctx, ""); err != nil || len(objs) != 0 {
					t.Fatalf("objects after a failed Create: %q, %v", objs, err)
				}
			})
		}
	})

	t.Run("SinkError", func(t *testing.T) {
		r, _ := newRepo(t)
		m, err := r.Create(ctx, newSource(), "l")
		if err != nil {
			t.Fatal(err)
		}
		errSink := errors.New("disk full")
		sink := &idemCollectSink{err: errSink}
		err = r.Restore(ctx, m, sink, nil)
		if !errors.Is(err, errSink) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			t.Fatalf("Restore = %v, want the sink's error only", err)
		}
		if len(sink.recs) != len(keys) {
			t.Fatalf("AddIdem failed after %d of %d keys", len(sink.recs), len(keys))
		}
	})
}
