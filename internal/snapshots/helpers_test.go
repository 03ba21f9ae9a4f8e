package snapshots

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/replikv/replikv/internal/apply"
)

// sliceSource is a Source over records already in key order.
type sliceSource struct {
	seq  uint64
	recs []record
	err  error // returned after all records when set
}

func (s *sliceSource) Seq() uint64 { return s.seq }

func (s *sliceSource) Iterate(fn func(key, value []byte, version uint64) error) error {
	for _, r := range s.recs {
		if err := fn([]byte(r.key), []byte(r.value), r.version); err != nil {
			return err
		}
	}
	return s.err
}

// markedSource is a Source that knows the entry mark at its Seq.
type markedSource struct {
	Source
	mark apply.Mark
}

func (s *markedSource) EntryMark() (apply.Mark, bool) { return s.mark, true }

// genSource generates n records on the fly (constant memory, whatever n): key "key/%012d", a value of valueLen
// bytes (random-looking when random, else repetitive), version = i % seq + 1.
type genSource struct {
	seq      uint64
	n        int
	valueLen int
	random   bool
}

func (g *genSource) Seq() uint64 { return g.seq }

func (g *genSource) Iterate(fn func(key, value []byte, version uint64) error) error {
	key := make([]byte, 0, 32)
	value := make([]byte, g.valueLen)
	var x uint64 = 0x9e3779b97f4a7c15
	for i := range g.n {
		key = fmt.Appendf(key[:0], "key/%012d", i)
		for j := 0; j < len(value); j += 8 {
			if g.random {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
			} else {
				x = uint64(i % 97)
			}
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], x)
			copy(value[j:], w[:])
		}
		if err := fn(key, value, uint64(i)%g.seq+1); err != nil {
			return err
		}
	}
	return nil
}

// digestOf computes the state digest of a source independently of Repo.
func digestOf(src Source) (keys uint64, digest string) {
	d := apply.NewDigest()
	_ = src.Iterate(func(k, v []byte, ver uint64) error { d.Add(k, v, ver); return nil })
	return d.Keys(), d.Sum()
}

// collectSink records what it receives.
type collectSink struct{ recs []record }

func (c *collectSink) Add(key, value []byte, version uint64) error {
	c.recs = append(c.recs, record{string(key), string(value), version})
	return nil
}

// funcSink calls f for each entry.
type funcSink func(key, value []byte, version uint64) error

func (f funcSink) Add(key, value []byte, version uint64) error { return f(key, value, version) }

// recordingStore wraps a Store and records Delete calls in order.
type recordingStore struct {
	Store
	mu      sync.Mutex
	deletes []string
}

func (r *recordingStore) Delete(ctx context.Context, key string) error {
	r.mu.Lock()
	r.deletes = append(r.deletes, key)
	r.mu.Unlock()
	return r.Store.Delete(ctx, key)
}
