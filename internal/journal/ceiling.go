package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The ceilings measure bare JetStream on the same machine and in the same run as replikv's own benchmarks, so the
// two can be compared. They open their own connection and touch nothing else.

// PublishCeiling publishes n messages of size bytes on a fresh stream named stream (created with the log's
// configuration; it must not exist yet or be empty) using PublishAsync pipelining with expected-last-sequence on
// every message and 4096 acks in flight, and returns the time from the first publish to the last ack.
func PublishCeiling(ctx context.Context, url, stream string, n, size int) (time.Duration, error) {
	if err := ValidateStreamName(stream); err != nil {
		return 0, err
	}
	if n <= 0 || size < 0 {
		return 0, fmt.Errorf("journal: publish ceiling: %w: n %d, size %d", ErrMalformed, n, size)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, wrapErr("publish ceiling", err)
	}
	defer nc.Close()
	var failed atomic.Int64
	var firstErr atomic.Value
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			if failed.Add(1) == 1 {
				firstErr.Store(err)
			}
		}))
	if err != nil {
		return 0, wrapErr("publish ceiling", err)
	}
	s, err := js.CreateStream(ctx, logStreamConfig(stream, 1, nil))
	if err != nil {
		return 0, wrapErr("publish ceiling", err)
	}
	if last := s.CachedInfo().State.LastSeq; last != 0 {
		return 0, fmt.Errorf("journal: publish ceiling: stream %s is not fresh (last seq %d)", stream, last)
	}
	subject := logSubject(stream)
	data := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		h := nats.Header{jetstream.ExpectedLastSeqHeader: []string{strconv.Itoa(i)}}
		msg := &nats.Msg{Subject: subject, Data: data, Header: h}
		for {
			_, err := js.PublishMsgAsync(msg)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return 0, wrapErr("publish ceiling", err)
			}
			if err := ctx.Err(); err != nil {
				return 0, wrapErr("publish ceiling", err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, wrapErr("publish ceiling", ctx.Err())
	}
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		err, _ := firstErr.Load().(error)
		return 0, fmt.Errorf("journal: publish ceiling: %d publishes failed: %w", f, err)
	}
	return elapsed, nil
}

// ConsumeCeiling drains messages 1..n of an existing stream with a bare ordered consumer (callback delivery, pulls of
// 4096) and returns the time from creating the consumer to receiving message n.
func ConsumeCeiling(ctx context.Context, url, stream string, n int) (time.Duration, error) {
	if err := ValidateStreamName(stream); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("journal: consume ceiling: %w: n %d", ErrMalformed, n)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, wrapErr("consume ceiling", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, wrapErr("consume ceiling", err)
	}
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   1,
	})
	if err != nil {
		return 0, wrapErr("consume ceiling", err)
	}
	done := make(chan struct{})
	var count atomic.Int64
	cc, err := cons.Consume(func(jetstream.Msg) {
		if count.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(pullBatch))
	if err != nil {
		return 0, wrapErr("consume ceiling", err)
	}
	defer func() {
		cc.Stop()
		<-cc.Closed()
	}()
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, wrapErr("consume ceiling", ctx.Err())
	}
}
