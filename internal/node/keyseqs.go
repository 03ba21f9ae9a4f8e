package node

import (
	"hash/maphash"
	"sync"
)

// keySeqShards is the number of independently locked shards of a keySeqs: enough that readers and the writer
// rarely meet on one lock.
const keySeqShards = 64

// keySeqs maps each key with a write in flight to the sequence of its newest such write, for the per-key read
// barrier. The writer sets a key before it publishes, the committer drops it once that write is applied; readers
// look keys up concurrently. Safe for concurrent use.
type keySeqs struct {
	seed   maphash.Seed
	shards [keySeqShards]struct {
		mu sync.Mutex
		m  map[string]uint64
	}
}

func newKeySeqs() *keySeqs {
	k := &keySeqs{seed: maphash.MakeSeed()}
	for i := range k.shards {
		k.shards[i].m = map[string]uint64{}
	}
	return k
}

func (k *keySeqs) shard(key []byte) int { return int(maphash.Bytes(k.seed, key) % keySeqShards) }

// set records seq as key's newest write in flight and returns the sequence it replaced (0 if none).
func (k *keySeqs) set(key []byte, seq uint64) (prev uint64) {
	s := &k.shards[k.shard(key)]
	s.mu.Lock()
	prev = s.m[string(key)]
	s.m[string(key)] = seq
	s.mu.Unlock()
	return prev
}

// restore undoes set(key, seq) when nothing was sent: key goes back to prev (0 = no write in flight), unless a later
// write replaced seq meanwhile.
func (k *keySeqs) restore(key []byte, seq, prev uint64) {
	s := &k.shards[k.shard(key)]
	s.mu.Lock()
	if s.m[string(key)] == seq {
		if prev == 0 {
			delete(s.m, string(key))
		} else {
			s.m[string(key)] = prev
		}
	}
	s.mu.Unlock()
}

// applied drops key when seq, now applied, is still its newest write in flight.
func (k *keySeqs) applied(key []byte, seq uint64) {
	s := &k.shards[k.shard(key)]
	s.mu.Lock()
	if s.m[string(key)] == seq {
		delete(s.m, string(key))
	}
	s.mu.Unlock()
}

// get returns the sequence of key's newest write in flight, 0 if none.
func (k *keySeqs) get(key []byte) uint64 {
	s := &k.shards[k.shard(key)]
	s.mu.Lock()
	seq := s.m[string(key)]
	s.mu.Unlock()
	return seq
}

// clear forgets every key (a resync has applied the log to its end: nothing is in flight).
func (k *keySeqs) clear() {
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}
