package snapshots

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/replikv/replikv/internal/apply"
	"go.uber.org/zap"
)

// FuzzDecoder checks the Decoder never panics, only fails with ErrCorrupt on in-memory input, that whatever it
// accepts re-encodes to exactly the same bytes (the format is canonical), and that Next accepts exactly what
// NextRecord does and returns its key records.
func FuzzDecoder(f *testing.F) {
	f.Add(rawPlain(5, rec("a", "1", 1), rec("b", "2", 5), trailer(2)))
	f.Add(rawPlain(1, trailer(0)))
	f.Add(rawPlain(300, rec("ab", "xyz", 300), trailer(1)))
	f.Add(rawPlain(5, rec("b", "1", 1), rec("a", "2", 1), trailer(2)))
	f.Add(rawPlain(5, []byte{tagRecord, 0x81, 0x00, 'a', 0x01, '1', 0x01}, trailer(1)))
	h := testHash(0)
	f.Add(rawPlain(5, rec("a", "1", 1), rawIdem("k1", 5, h, 1), rawIdem("k2", 1, h, 1700000000000), trailer(1)))
	f.Add(rawPlain(5, rawIdem("k1", 5, h, 1), trailer(0)))
	f.Add(rawPlain(5, rawIdem("k2", 5, h, 1), rawIdem("k1", 5, h, 1), trailer(0)))             // unordered
	f.Add(rawPlain(5, rawIdem("k1", 5, h, 1), rec("a", "1", 1), trailer(1)))                   // key after idem
	f.Add(rawPlain(5, rec("a", "1", 1), rawIdem("k1", 6, h, 1), trailer(1)))                   // seq above the snapshot's
	f.Add(rawPlain(5, rawIdem("k 1", 5, h, 0), trailer(0)))                                    // bad key, at 0
	f.Add(rawPlain(5, rawIdem(strings.Repeat("~", apply.MaxIdemKeyLen), 5, h, 1), trailer(0))) // longest key
	f.Add([]byte("RKVSNAP1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, recs, idems, err := decodeFull(b)
		_, keysOnly, nextErr := decodeAll(b)
		if (err == nil) != (nextErr == nil) {
			t.Fatalf("NextRecord: %v, Next: %v", err, nextErr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !errors.Is(nextErr, ErrCorrupt) {
				t.Fatalf("decode errors %v, %v do not wrap ErrCorrupt", err, nextErr)
			}
			return
		}
		if !slices.Equal(keysOnly, recs) {
			t.Fatalf("Next returned %d key records, NextRecord %d", len(keysOnly), len(recs))
		}
		if again := encodeFull(t, seq, recs, idems); !bytes.Equal(again, b) {
			t.Fatalf("accepted input does not re-encode identically:\n in % x\nout % x", b, again)
		}
	})
}

// FuzzDecodeManifest checks DecodeManifest never panics, fails only with ErrCorrupt, and that accepted manifests
// survive a re-encode unchanged.
func FuzzDecodeManifest(f *testing.F) {
	valid, err := validManifest().encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"format":1,"stream":"S","seq":1,"keys":0,"bytes":1,"sha256":"` + hexA + `","digest":"` + hexB +
		`","created_at":"2026-01-02T03:04:05.999999999+07:00","leader":""}`))
	f.Add([]byte(`{"format":1,"stream":"S","seq":1,"keys":0,"bytes":1,"sha256":"` + hexA + `","digest":"` + hexB +
		`","created_at":"2026-01-02T03:04:05Z","leader":"l","entry_mark":"` + hexA[:32] + `","checkpoint_seq":2}`))
	f.Add([]byte(`{"format":1,"stream":"S","seq":1,"keys":0,"idempotency_records":3,"bytes":1,"sha256":"` + hexA +
		`","digest":"` + hexB + `","created_at":"2026-01-02T03:04:05Z","leader":"l"}`))
	f.Add([]byte(`{"format":1,"stream":"S","seq":1,"keys":0,"idempotency_records":4097,"bytes":1,"sha256":"` + hexA +
		`","digest":"` + hexB + `","created_at":"2026-01-02T03:04:05Z","leader":"l"}`))
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc, err := m.encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := DecodeManifest(enc)
		if err != nil {
			t.Fatalf("re-encoded manifest rejected: %v", err)
		}
		if !m2.CreatedAt.Equal(m.CreatedAt) {
			t.Fatalf("created_at changed: %v -> %v", m.CreatedAt, m2.CreatedAt)
		}
		m2.CreatedAt = m.CreatedAt
		if m2 != m {
			t.Fatalf("manifest changed on re-encode: %+v -> %+v", m, m2)
		}
	})
}

// FuzzRestoreStream runs arbitrary bytes through the zstd + Decoder path Restore uses: it must never panic and must
// report corruption, never anything else, for in-memory input.
func FuzzRestoreStream(f *testing.F) {
	var buf bytes.Buffer
	zw, err := newZstdWriter(&buf, true)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := zw.Write(rawPlain(5, rec("a", "1", 1), trailer(1))); err != nil {
		f.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	var withIdem bytes.Buffer
	zw, err = newZstdWriter(&withIdem, true)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := zw.Write(rawPlain(5, rec("a", "1", 1), rawIdem("k1", 5, testHash(0), 1), trailer(1))); err != nil {
		f.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(withIdem.Bytes())
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, b []byte) {
		vr := &verifyReader{r: bytes.NewReader(b), h: nopHash{}, limit: int64(len(b)), progress: func(int64, int64) {}}
		zr, err := newZstdReader(vr)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		dec, err := NewDecoder(zr)
		if err != nil {
			if cerr := vr.classify(err); !errors.Is(cerr, ErrCorrupt) {
				t.Fatalf("header error %v classified as %v", err, cerr)
			}
			return
		}
		for {
			_, err := dec.NextRecord()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if cerr := vr.classify(err); !errors.Is(cerr, ErrCorrupt) {
					t.Fatalf("error %v classified as %v", err, cerr)
				}
				return
			}
		}
	})
}

// nopHash is a hash.Hash that does nothing, for fuzzing speed.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

// FuzzRepo_Restore sends a fuzzed manifest and a fuzzed data object through the whole restore path (manifest
// decoding and range checks, the store's Get, the byte limit, SHA-256, zstd, the decoder, the key count and the
// digest): nothing may panic, and every refusal wraps ErrCorrupt.
func FuzzRepo_Restore(f *testing.F) {
	ctx := f.Context()
	seed, err := Open("file://"+filepath.Join(f.TempDir(), "root"), S3Config{}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	if err := seed.Init(ctx, true); err != nil {
		f.Fatal(err)
	}
	r := NewRepo(seed, testStream, zap.NewNop())
	m, err := r.Create(ctx, &sliceSource{seq: 7, recs: []record{{"a", "1", 1}, {"b", "22", 7}}}, "l")
	if err != nil {
		f.Fatal(err)
	}
	enc, err := m.encode()
	if err != nil {
		f.Fatal(err)
	}
	rc, err := seed.Get(ctx, dataKey(testStream, m.Seq))
	if err != nil {
		f.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc, data)
	mi, err := r.Create(ctx, &idemSliceSource{sliceSource: &sliceSource{seq: 9, recs: []record{{"a", "1", 1}}},
		idems: []idemRecord{{"k1", testHash(0), 1700000000000, 9}, {"k2", testHash(1), 1, 2}}}, "l")
	if err != nil {
		f.Fatal(err)
	}
	if enc, err := mi.encode(); err == nil {
		f.Add(enc, readData(f, seed, mi))
	}
	huge := m
	huge.Bytes = math.MaxInt64
	if enc, err := huge.encode(); err == nil {
		f.Add(enc, data)
	}
	f.Add(enc, data[:len(data)/2])
	f.Add(enc, append(append([]byte{}, data...), 0))
	f.Fuzz(func(t *testing.T, manifest, data []byte) {
		m, err := DecodeManifest(manifest)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeManifest: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Not t.TempDir: a seed's name has a '#', which a file:// URL cannot hold.
		dir, err := os.MkdirTemp("", "fuzz-restore-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		s, err := Open("file://"+filepath.Join(dir, "root"), S3Config{}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Init(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(t.Context(), dataKey(m.Stream, m.Seq), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		err = NewRepo(s, m.Stream, zap.NewNop()).Restore(t.Context(), m, nopIdemSink{}, nil)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Restore: %v does not wrap ErrCorrupt", err)
		}
	})
}

// nopIdemSink is a Sink and an IdemSink that keeps nothing.
type nopIdemSink struct{}

func (nopIdemSink) Add([]byte, []byte, uint64) error { return nil }
func (nopIdemSink) AddIdem(apply.Idem, uint64) error { return nil }

// readData returns the data object of m.
func readData(tb testing.TB, s Store, m Manifest) []byte {
	tb.Helper()
	rc, err := s.Get(tb.Context(), dataKey(m.Stream, m.Seq))
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// A manifest claiming math.MaxInt64 bytes is corrupt, and the restore's byte limit cannot overflow whatever the limit
// (limit + 1 would, and slicing with it panics every follower that restores the snapshot).
func TestRestore_HugeManifestBytes(t *testing.T) {
	m := validManifest()
	m.Bytes = math.MaxInt64
	if err := m.validate(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("validate(bytes=MaxInt64) = %v, want ErrCorrupt", err)
	}
	vr := &verifyReader{r: bytes.NewReader([]byte("abc")), h: nopHash{}, limit: math.MaxInt64, progress: func(int64, int64) {}}
	b, err := io.ReadAll(vr)
	if err != nil || string(b) != "abc" {
		t.Fatalf("read through a MaxInt64 limit = %q, %v", b, err)
	}
}
