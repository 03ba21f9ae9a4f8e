package journal

import (
	"errors"
	"fmt"
	"testing"
)

func TestConn_PublishAsync(t *testing.T) {
	e := startServer(t)

	t.Run("Pipelined10k", func(t *testing.T) {
		c := connectStream(t, e.ClientURL(), "PIPE")
		ctx := testCtx(t)
		const n = 10000
		// One goroutine publishes, another waits for the acks in order, as the leader does.
		acks := make(chan *Ack, 256)
		errc := make(chan error, 1)
		go func() {
			defer close(acks)
			for i := range uint64(n) {
				a, err := c.PublishAsync(ctx, entry(i+1), i, "")
				if err != nil {
					errc <- err
					return
				}
				acks <- a
			}
		}()
		want := uint64(1)
		for a := range acks {
			seq, err := a.Wait(ctx)
			if err != nil {
				t.Fatalf("Wait for seq %d: %v", want, err)
			}
			if seq != want {
				t.Fatalf("ack seq = %d, want %d", seq, want)
			}
			want++
		}
		select {
		case err := <-errc:
			t.Fatalf("PublishAsync: %v", err)
		default:
		}
		if want != n+1 {
			t.Fatalf("got %d acks, want %d", want-1, n)
		}
		info, err := c.Info(ctx)
		if err != nil || info.LastSeq != n || info.Msgs != n {
			t.Fatalf("Info = %+v, %v", info, err)
		}
	})

	t.Run("Fenced", func(t *testing.T) {
		a := connectStream(t, e.ClientURL(), "FENCE")
		b := connect(t, e.ClientURL(), "FENCE")
		ctx := testCtx(t)
		publishN(t, a, 0, 3)
		// b believes the log ends at 1: its pipeline of two entries (expecting 1 and 2) must both be refused.
		// (A third, expecting 3, would line up with the real log and be stored: a stale pipeline is fenced only
		// until one of its expected sequences matches.)
		var acks []*Ack
		for i := range uint64(2) {
			ack, err := b.PublishAsync(ctx, []byte("stale"), 1+i, "")
			if err != nil {
				t.Fatalf("PublishAsync: %v", err)
			}
			acks = append(acks, ack)
		}
		for i, ack := range acks {
			if seq, err := ack.Wait(ctx); !errors.Is(err, ErrWrongLastSeq) {
				t.Fatalf("stale publish %d: seq %d, err %v; want ErrWrongLastSeq", i, seq, err)
			}
		}
		info, err := a.Info(ctx)
		if err != nil || info != (Info{FirstSeq: 1, LastSeq: 3, Msgs: 3}) {
			t.Fatalf("stream changed by fenced writer: %+v, %v", info, err)
		}
		// The rightful writer continues.
		if seqs := publishN(t, a, 3, 1); seqs[0] != 4 {
			t.Fatalf("next seq = %d, want 4", seqs[0])
		}
	})

	t.Run("ChainedStalePipelineNeverLands", func(t *testing.T) {
		a := connectStream(t, e.ClientURL(), "CHAIN")
		b := connect(t, e.ClientURL(), "CHAIN")
		ctx := testCtx(t)
		publishN(t, a, 0, 3)
		// b believes the log ends at 1 and pipelines 4 chained entries expecting 1, 2, 3, 4: the third lines up
		// with the real last sequence, but its predecessor's Msg-Id is not the log's last, so all are refused.
		var acks []*Ack
		prev := ""
		for i := range uint64(4) {
			id := fmt.Sprintf("b-%d", i)
			ack, err := b.PublishChained(ctx, []byte("stale"), 1+i, prev, id)
			if err != nil {
				t.Fatalf("PublishChained: %v", err)
			}
			prev = id
			acks = append(acks, ack)
		}
		for i, ack := range acks {
			if seq, err := ack.Wait(ctx); err == nil {
				t.Fatalf("stale chained publish %d stored at seq %d", i, seq)
			}
		}
		info, err := a.Info(ctx)
		if err != nil || info.LastSeq != 3 {
			t.Fatalf("stream changed by a stale chained pipeline: %+v, %v", info, err)
		}
	})

	t.Run("DuplicateMsgID", func(t *testing.T) {
		c := connectStream(t, e.ClientURL(), "DEDUPE")
		ctx := testCtx(t)
		first, err := c.PublishAsync(ctx, []byte("v"), 0, "id-1")
		if err != nil {
			t.Fatal(err)
		}
		if seq, err := first.Wait(ctx); err != nil || seq != 1 {
			t.Fatalf("first publish = %d, %v", seq, err)
		}
		// The server checks the expected last sequence before the Msg-Id: a re-send with the stale expectation is
		// refused, a re-send expecting the current last sequence is recognised as a duplicate.
		stale, err := c.PublishAsync(ctx, []byte("v"), 0, "id-1")
		if err != nil {
			t.Fatal(err)
		}
		if seq, err := stale.Wait(ctx); !errors.Is(err, ErrWrongLastSeq) {
			t.Fatalf("stale re-send = %d, %v; want ErrWrongLastSeq", seq, err)
		}
		again, err := c.PublishAsync(ctx, []byte("v"), 1, "id-1")
		if err != nil {
			t.Fatal(err)
		}
		seq, err := again.Wait(ctx)
		if err != nil || seq != 1 {
			t.Fatalf("duplicate publish = %d, %v; want the original seq 1", seq, err)
		}
		info, err := c.Info(ctx)
		if err != nil || info.LastSeq != 1 || info.Msgs != 1 {
			t.Fatalf("duplicate was stored: %+v, %v", info, err)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		c := connectStream(t, e.ClientURL(), "CLOSED")
		pending, err := c.PublishAsync(testCtx(t), []byte("x"), 0, "")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if seq, err := pending.Wait(testCtx(t)); err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after Close = %d, %v; want a sequence or ErrClosed", seq, err)
		}
		if _, err := c.PublishAsync(testCtx(t), []byte("x"), 0, ""); !errors.Is(err, ErrClosed) {
			t.Fatalf("PublishAsync after Close = %v, want ErrClosed", err)
		}
	})
}
