package snapshots

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	// zstdWindow bounds the encoder's back-references and so the memory both sides need; zstdMaxWindow is what the
	// decoder accepts (docs/formats.md promises readers this limit).
	zstdWindow    = 4 << 20
	zstdMaxWindow = 8 << 20
)

// newZstdWriter returns the encoder Create uses. With parallel, concurrency 2 overlaps compression with encoding on
// the 2-core machines we target; without, blocks are compressed synchronously inside Write, on the caller's
// goroutine, so a pacer around the caller accounts for all of it. See BenchmarkZstdLevel for the level choice. The
// caller must Close it (that also stops its goroutines).
func newZstdWriter(w io.Writer, parallel bool) (*zstd.Encoder, error) {
	conc := 1
	if parallel {
		conc = 2
	}
	zw, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(conc),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, fmt.Errorf("snapshots: zstd writer: %w", err)
	}
	return zw, nil
}

// newZstdReader returns a synchronous, low-memory decoder that refuses windows above zstdMaxWindow. The caller must
// Close it.
func newZstdReader(r io.Reader) (*zstd.Decoder, error) {
	zr, err := zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		return nil, fmt.Errorf("snapshots: zstd reader: %w", err)
	}
	return zr, nil
}

// zstdCache keeps one idle encoder of each kind (parallel or not) for the next snapshot. A zstd encoder allocates
// its window history and block buffers (several MiB) when it is created; taking a fresh one per snapshot made every
// snapshot a burst of allocation, and so a garbage collection cycle, on the leader's write path.
type zstdCache struct {
	mu   sync.Mutex
	idle [2]*zstd.Encoder // [0] not parallel, [1] parallel
}

func cacheSlot(parallel bool) int {
	if parallel {
		return 1
	}
	return 0
}

// get returns an encoder writing to w: the idle one reset onto w, or a new one.
func (c *zstdCache) get(w io.Writer, parallel bool) (*zstd.Encoder, error) {
	c.mu.Lock()
	zw := c.idle[cacheSlot(parallel)]
	c.idle[cacheSlot(parallel)] = nil
	c.mu.Unlock()
	if zw == nil {
		return newZstdWriter(w, parallel)
	}
	zw.Reset(w)
	return zw, nil
}

// put keeps zw, which must have been closed without error, for the next get.
func (c *zstdCache) put(zw *zstd.Encoder, parallel bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle[cacheSlot(parallel)] == nil {
		c.idle[cacheSlot(parallel)] = zw
	}
}
