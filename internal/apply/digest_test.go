package apply

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

type kv struct {
	key, value string
	version    uint64
}

func TestDigest_Sum(t *testing.T) {
	// Expected values computed outside Go: printf '<bytes>' | sha256sum.
	tests := []struct {
		name  string
		items []kv
		want  string
	}{
		{"Empty", nil, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		// 01 'a' 01 'b' 01
		{"One", []kv{{"a", "b", 1}}, "431a8f04a98b9f2054def1c018afc650199f9dc5f30e48053e15ba64e062e0ff"},
		// 01 'a' 01 'b' 05 | 02 'bc' 00 ac02
		{"TwoMultiByteVersion", []kv{{"a", "b", 5}, {"bc", "", 300}},
			"b6c6340cc4663db84da8ea28e2a32fef750ebaf701b65fe0aba03434210a3081"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDigest()
			for _, it := range tt.items {
				d.Add([]byte(it.key), []byte(it.value), it.version)
			}
			if got := d.Sum(); got != tt.want {
				t.Fatalf("Sum = %s, want %s", got, tt.want)
			}
			if d.Keys() != uint64(len(tt.items)) {
				t.Fatalf("Keys = %d, want %d", d.Keys(), len(tt.items))
			}
		})
	}
}

func TestDigest_SumThenAdd(t *testing.T) {
	d := NewDigest()
	d.Add([]byte("a"), []byte("b"), 5)
	_ = d.Sum()
	d.Add([]byte("bc"), nil, 300)
	if got, want := d.Sum(), "b6c6340cc4663db84da8ea28e2a32fef750ebaf701b65fe0aba03434210a3081"; got != want {
		t.Fatalf("Sum after an intermediate Sum = %s, want %s", got, want)
	}
}

// referenceDigest builds the contract's byte stream in one buffer and hashes it.
func referenceDigest(items []kv) string {
	var b []byte
	for _, it := range items {
		b = binary.AppendUvarint(b, uint64(len(it.key)))
		b = append(b, it.key...)
		b = binary.AppendUvarint(b, uint64(len(it.value)))
		b = append(b, it.value...)
		b = binary.AppendUvarint(b, it.version)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func FuzzDigest(f *testing.F) {
	f.Add("a", "b", uint64(1), "bc", "", uint64(300))
	f.Add("", "", uint64(0), "", "", uint64(0))
	f.Add("k", "\x00\xff", ^uint64(0), "k2", "long value", uint64(1<<35))
	f.Fuzz(func(t *testing.T, k1, v1 string, ver1 uint64, k2, v2 string, ver2 uint64) {
		items := []kv{{k1, v1, ver1}, {k2, v2, ver2}}
		d := NewDigest()
		for _, it := range items {
			d.Add([]byte(it.key), []byte(it.value), it.version)
		}
		if got, want := d.Sum(), referenceDigest(items); got != want {
			t.Fatalf("Sum = %s, reference %s", got, want)
		}
		// Moving a byte between key and value must change the digest: the length prefixes separate them.
		if len(k1) > 0 {
			moved := []kv{{k1[:len(k1)-1], k1[len(k1)-1:] + v1, ver1}, {k2, v2, ver2}}
			if referenceDigest(moved) == d.Sum() {
				t.Fatalf("digest ignores the key/value boundary")
			}
		}
	})
}

func BenchmarkDigest_Add(b *testing.B) {
	d := NewDigest()
	key, value := []byte("bench/key/0000000001"), make([]byte, 128)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		d.Add(key, value, 123456)
	}
}
