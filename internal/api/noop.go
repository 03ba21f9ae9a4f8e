package api

import (
	"context"
	"sync/atomic"
)

// NoopWriter is a Writer that commits nothing and answers at once with increasing versions. It exists for
// benchmarks: it measures the HTTP layer alone (the "no-op PUT" baseline of ingest benchmarks). Never use it to serve
// real writes. The zero value is ready; it is safe for concurrent use.
type NoopWriter struct {
	seq atomic.Uint64
}

// Write returns the next version (1, 2, ...) without doing anything else.
func (w *NoopWriter) Write(_ context.Context, _ WriteRequest) (WriteResult, error) {
	return WriteResult{Version: w.seq.Add(1)}, nil
}

// WriteTxn returns the next version, like Write: NoopWriter is also a TxnWriter (the "no-op transaction" baseline).
func (w *NoopWriter) WriteTxn(_ context.Context, _ TxnRequest) (WriteResult, error) {
	return WriteResult{Version: w.seq.Add(1)}, nil
}
