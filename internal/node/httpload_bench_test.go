package node_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replikv/replikv/internal/testutil/httpload"
)

// putLoad is a closed-loop write load: conns keep-alive connections, each with one request in flight.
type putLoad struct {
	addr  string
	conns []*httpload.PutConn
	value []byte
}

// newPutLoad dials conns connections to addr. The caller must call close.
func newPutLoad(ctx context.Context, addr string, conns int, value []byte) (*putLoad, error) {
	l := &putLoad{addr: addr, value: value}
	for range conns {
		c, err := httpload.DialPut(ctx, addr)
		if err != nil {
			l.close()
			return nil, err
		}
		l.conns = append(l.conns, c)
	}
	return l, nil
}

func (l *putLoad) close() {
	for _, c := range l.conns {
		c.Close()
	}
}

// run writes n distinct keys (prefix + index) and returns the time from the first request to the last answer. It
// stops at the first error; ctx ending closes the connections (the load cannot be used afterwards).
func (l *putLoad) run(ctx context.Context, prefix string, n int) (time.Duration, error) {
	stop := context.AfterFunc(ctx, l.close)
	defer stop()
	var (
		next     atomic.Int64
		failed   atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for _, c := range l.conns {
		wg.Go(func() {
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := c.Put(prefix+strconv.FormatInt(i, 10), l.value); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("bench: put load: %w", ctx.Err())
		}
		return 0, firstErr
	}
	return elapsed, nil
}
