package snapshots

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

const (
	// zstdWindow bounds the encoder's back-references and so the memory both sides need; zstdMaxWindow is what the
	// decoder accepts (docs/formats.md promises readers this limit).
	zstdWindow    = 4 << 20
	zstdMaxWindow = 8 << 20
)

// newZstdWriter returns the encoder Create uses. Concurrency 2 overlaps compression with encoding on the 2-core
// machines we target; see BenchmarkZstdLevel for the level choice. The caller must Close it (that also stops its
// goroutines).
func newZstdWriter(w io.Writer) (*zstd.Encoder, error) {
	zw, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(2),
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
