package store

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/replikv/replikv/internal/apply"
)

// BenchmarkDB_Apply measures the follower's apply path: batches of 256 puts with 128-byte values over a keyspace of
// one million keys. One op is one batch.
func BenchmarkDB_Apply(b *testing.B) {
	const batchSize, keyspace = 256, 1 << 20
	db := openTest(b, b.TempDir())
	keys := make([][]byte, batchSize)
	for i := range keys {
		keys[i] = make([]byte, 0, 16)
	}
	value := make([]byte, 128)
	muts := make([]apply.Mutation, batchSize)
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		for i := range muts {
			seq++
			keys[i] = strconv.AppendUint(append(keys[i][:0], "key/"...), 1e7+(seq*2654435761)%keyspace, 10)
			muts[i] = apply.Mutation{Key: keys[i], Value: value, Version: seq}
		}
		if err := db.Apply(seq, muts, apply.Mark{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkLoader measures a restore's bulk load with 128-byte values, including Finish. One op is one key.
func BenchmarkLoader(b *testing.B) {
	l, err := NewLoader(filepath.Join(b.TempDir(), "restore"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Abort)
	key, value := make([]byte, 0, 16), make([]byte, 128)
	n := uint64(0)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		n++
		key = strconv.AppendUint(append(key[:0], "key/"...), 1e12+n, 10)
		if err := l.Add(key, value, n); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Finish(n, n, apply.Mark{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "entries/s")
}
