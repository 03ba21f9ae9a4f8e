package node_test

import (
	"context"
	"strconv"
	"time"

	"github.com/replikv/replikv/internal/testutil/httpload"
)

// putLoad is a closed-loop write load of one value: conns keep-alive connections, each with one request in flight.
type putLoad struct {
	pool  *httpload.Pool
	value []byte
}

// newPutLoad dials conns connections to addr. The caller must call close.
func newPutLoad(ctx context.Context, addr string, conns int, value []byte) (*putLoad, error) {
	pool, err := httpload.DialPool(ctx, addr, conns)
	if err != nil {
		return nil, err
	}
	return &putLoad{pool: pool, value: value}, nil
}

func (l *putLoad) close() { l.pool.Close() }

// run writes n distinct keys (prefix + index) and returns the time from the first request to the last answer. It
// stops at the first error; ctx ending closes the connections (the load cannot be used afterwards).
func (l *putLoad) run(ctx context.Context, prefix string, n int) (time.Duration, error) {
	return l.pool.Run(ctx, n, func(c *httpload.PutConn, _, i int) error {
		return c.Put(prefix+strconv.Itoa(i), l.value)
	})
}
