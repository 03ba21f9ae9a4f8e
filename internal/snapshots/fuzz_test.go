package snapshots

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecoder checks the Decoder never panics, only fails with ErrCorrupt on in-memory input, and that whatever it
// accepts re-encodes to exactly the same bytes (the format is canonical).
func FuzzDecoder(f *testing.F) {
	f.Add(rawPlain(5, rec("a", "1", 1), rec("b", "2", 5), trailer(2)))
	f.Add(rawPlain(1, trailer(0)))
	f.Add(rawPlain(300, rec("ab", "xyz", 300), trailer(1)))
	f.Add(rawPlain(5, rec("b", "1", 1), rec("a", "2", 1), trailer(2)))
	f.Add(rawPlain(5, []byte{tagRecord, 0x81, 0x00, 'a', 0x01, '1', 0x01}, trailer(1)))
	f.Add([]byte("RKVSNAP1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, recs, err := decodeAll(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := encodePlain(t, seq, recs); !bytes.Equal(again, b) {
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
			_, _, _, err := dec.Next()
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
