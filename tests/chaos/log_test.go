//go:build chaos

package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/replikv/replikv/internal/apply"
)

// logEntry is one entry of the replication log.
type logEntry struct {
	Seq   uint64
	Op    apply.Op
	Key   string
	Value string // put only
	At    int64  // when the server stored it, on the history clock
}

// keyState is a key's state after a prefix of the log.
type keyState struct {
	Exists  bool
	Value   string
	Version uint64
}

// logIndex is the whole replication log, read after the run, indexed for the checks.
type logIndex struct {
	first, last uint64
	entries     []logEntry          // in sequence order
	bySeq       map[uint64]int      // seq -> index in entries (a transaction's first operation)
	byKey       map[string][]int    // key -> indexes in entries, ascending
	valueSeq    map[string][]uint64 // put value -> the sequences that wrote it (one, unless a value was written twice)
}

// readLog reads the stream from sequence 1 with a plain ordered consumer, directly from nats-server.
func readLog(ctx context.Context, url string, clk *clock) (*logIndex, error) {
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("read log: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("read log: stream %s: %w", streamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read log: info: %w", err)
	}
	l := &logIndex{
		first: info.State.FirstSeq, last: info.State.LastSeq,
		bySeq: map[uint64]int{}, byKey: map[string][]int{}, valueSeq: map[string][]uint64{},
	}
	if l.first != 1 {
		// --snapshot-keep is far above what a run creates, so nothing should have been purged.
		return nil, fmt.Errorf("read log: the stream starts at sequence %d, not 1: it was compacted, and unknown outcomes "+
			"cannot be resolved", l.first)
	}
	if l.last == 0 {
		return l, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("read log: consumer: %w", err)
	}
	next := uint64(1)
	for next <= l.last {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read log: at %d of %d: %w", next, l.last, err)
		}
		batch, err := cons.Fetch(2000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read log: fetch: %w", err)
		}
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read log: metadata: %w", err)
			}
			seq := md.Sequence.Stream
			if seq != next {
				return nil, fmt.Errorf("read log: got sequence %d, want %d (a hole in the log)", seq, next)
			}
			e, err := apply.DecodeEntry(msg.Data())
			if err != nil {
				return nil, fmt.Errorf("read log: entry %d: %w", seq, err)
			}
			switch {
			case e.Op == apply.OpTxn: // one entry per key it writes, all at its sequence (the workload sends none)
				for _, o := range e.Ops {
					l.add(logEntry{Seq: seq, Op: o.Op, Key: string(o.Key), Value: string(o.Value), At: clk.fromWall(md.Timestamp)})
				}
			case e.Mutates(): // a checkpoint (a snapshot's) changes no key and is no client's write
				l.add(logEntry{Seq: seq, Op: e.Op, Key: string(e.Key), Value: string(e.Value), At: clk.fromWall(md.Timestamp)})
			}
			next++
			if next > l.last {
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && next <= l.last {
			return nil, fmt.Errorf("read log: batch: %w", err)
		}
	}
	return l, nil
}

// newLogIndex builds an index from entries in sequence order starting at 1 (for the model tests).
func newLogIndex(entries []logEntry) *logIndex {
	l := &logIndex{first: 1, bySeq: map[uint64]int{}, byKey: map[string][]int{}, valueSeq: map[string][]uint64{}}
	for _, e := range entries {
		l.add(e)
		l.last = e.Seq
	}
	return l
}

func (l *logIndex) add(e logEntry) {
	i := len(l.entries)
	l.entries = append(l.entries, e)
	if _, ok := l.bySeq[e.Seq]; !ok {
		l.bySeq[e.Seq] = i
	}
	l.byKey[e.Key] = append(l.byKey[e.Key], i)
	if e.Op == apply.OpPut {
		l.valueSeq[e.Value] = append(l.valueSeq[e.Value], e.Seq)
	}
}

// entry returns the entry at seq.
func (l *logIndex) entry(seq uint64) (logEntry, bool) {
	i, ok := l.bySeq[seq]
	if !ok {
		return logEntry{}, false
	}
	return l.entries[i], true
}

// stateAt is key's state after the log's prefix up to and including seq.
func (l *logIndex) stateAt(key string, seq uint64) keyState {
	idx := l.byKey[key]
	n := sort.Search(len(idx), func(i int) bool { return l.entries[idx[i]].Seq > seq })
	if n == 0 {
		return keyState{}
	}
	e := l.entries[idx[n-1]]
	if e.Op == apply.OpDelete {
		return keyState{}
	}
	return keyState{Exists: true, Value: e.Value, Version: e.Seq}
}

// digest is the state digest (docs/api.md, "Digest") of the log's prefix up to seq: SHA-256 over every live key in byte
// order, each as uvarint(len(key)) key uvarint(len(value)) value uvarint(version).
func (l *logIndex) digest(seq uint64) string {
	keys := make([]string, 0, len(l.byKey))
	for k := range l.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	var buf []byte
	for _, k := range keys {
		st := l.stateAt(k, seq)
		if !st.Exists {
			continue
		}
		buf = binary.AppendUvarint(buf[:0], uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(st.Value)))
		buf = append(buf, st.Value...)
		buf = binary.AppendUvarint(buf, st.Version)
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// deletedAfter reports whether the log deletes key at a sequence above seq.
func (l *logIndex) deletedAfter(key string, seq uint64) bool {
	for _, i := range l.byKey[key] {
		if e := l.entries[i]; e.Seq > seq && e.Op == apply.OpDelete {
			return true
		}
	}
	return false
}
