package journal

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func consumeChan(url, stream string, n int) time.Duration {
	nc, _ := nats.Connect(url)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	start := time.Now()
	cons, _ := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 1})
	ch := make(chan Msg, 4096)
	cc, _ := cons.Consume(func(m jetstream.Msg) {
		seq, p, _ := parseAckReply(m.Reply())
		ch <- Msg{Seq: seq, Data: m.Data(), Pending: p}
	}, jetstream.PullMaxMessages(4096))
	for m := range ch {
		if m.Seq == uint64(n) {
			break
		}
	}
	d := time.Since(start)
	cc.Stop()
	return d
}

func TestZZCompare(t *testing.T) {
	const n = 200000
	e := startServer(t)
	if _, err := PublishCeiling(context.Background(), e.ClientURL(), "CMP", n, 128); err != nil {
		t.Fatal(err)
	}
	c := connect(t, e.ClientURL(), "CMP")
	var tc, tcc, ts time.Duration
	for r := 0; r < 4; r++ {
		d, err := ConsumeCeiling(context.Background(), e.ClientURL(), "CMP", n)
		if err != nil {
			t.Fatal(err)
		}
		dc := consumeChan(e.ClientURL(), "CMP", n)
		start := time.Now()
		s, err := c.Subscribe(context.Background(), 1, 4096)
		if err != nil {
			t.Fatal(err)
		}
		for m := range s.C() {
			if m.Seq == n {
				break
			}
		}
		ds := time.Since(start)
		s.Stop()
		tc += d
		tcc += dc
		ts += ds
		t.Logf("consume %.0f/s  consume+chan %.0f/s  subscribe %.0f/s", n/d.Seconds(), n/dc.Seconds(), n/ds.Seconds())
	}
	t.Logf("TOTAL consume %.0f/s  consume+chan %.0f/s  subscribe %.0f/s  ratio %.2f", 4*n/tc.Seconds(), 4*n/tcc.Seconds(), 4*n/ts.Seconds(), tc.Seconds()/ts.Seconds())
}
