package journal

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestConn_EnsureStream(t *testing.T) {
	e := startServer(t)
	t.Run("Create", func(t *testing.T) {
		c := connect(t, e.ClientURL(), "CREATE")
		ctx := testCtx(t)
		info, err := c.EnsureStream(ctx)
		if err != nil {
			t.Fatalf("EnsureStream: %v", err)
		}
		if info != (Info{FirstSeq: 1, LastSeq: 0, Msgs: 0}) {
			t.Fatalf("info = %+v, want empty stream with FirstSeq 1", info)
		}
		s, err := c.jetStream().Stream(ctx, "CREATE")
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Subjects[0] != "replikv.CREATE.log" || cfg.Storage != jetstream.FileStorage || cfg.Duplicates != time.Second {
			t.Fatalf("stream config = %+v", cfg)
		}
	})
	t.Run("Recheck", func(t *testing.T) {
		c := connect(t, e.ClientURL(), "RECHECK")
		ctx := testCtx(t)
		if _, err := c.EnsureStream(ctx); err != nil {
			t.Fatal(err)
		}
		publishN(t, c, 0, 3)
		info, err := c.EnsureStream(ctx)
		if err != nil {
			t.Fatalf("second EnsureStream: %v", err)
		}
		if info != (Info{FirstSeq: 1, LastSeq: 3, Msgs: 3}) {
			t.Fatalf("info = %+v", info)
		}
	})

	t.Run("ShortensDuplicateWindow", func(t *testing.T) {
		// A stream created with the server's default window (as earlier versions did) gets the short one.
		c := connect(t, e.ClientURL(), "OLDWINDOW")
		ctx := testCtx(t)
		cfg := logStreamConfig("OLDWINDOW", 1, nil)
		cfg.Duplicates = 2 * time.Minute
		if _, err := c.jetStream().CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.EnsureStream(ctx); err != nil {
			t.Fatalf("EnsureStream: %v", err)
		}
		s, err := c.jetStream().Stream(ctx, "OLDWINDOW")
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Duplicates; got != duplicateWindow {
			t.Fatalf("duplicate window = %v, want %v", got, duplicateWindow)
		}
	})

	incompatible := []struct {
		name   string
		mutate func(*jetstream.StreamConfig)
	}{
		{"MaxAge", func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }},
		{"MaxMsgs", func(c *jetstream.StreamConfig) { c.MaxMsgs = 1000 }},
		{"MaxBytes", func(c *jetstream.StreamConfig) { c.MaxBytes = 1 << 20 }},
		{"MaxMsgsPerSubject", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 1 }},
		{"Memory", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
		{"WorkQueue", func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy }},
		{"DiscardNew", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardNew }},
		{"OtherSubject", func(c *jetstream.StreamConfig) { c.Subjects = []string{"other." + c.Name} }},
		{"ExtraSubject", func(c *jetstream.StreamConfig) { c.Subjects = append(c.Subjects, "x."+c.Name) }},
		{"DenyPurge", func(c *jetstream.StreamConfig) { c.DenyPurge = true }},
	}
	for _, tt := range incompatible {
		t.Run("Incompatible"+tt.name, func(t *testing.T) {
			stream := "BAD" + tt.name
			c := connect(t, e.ClientURL(), stream)
			cfg := logStreamConfig(stream, 1, nil)
			tt.mutate(&cfg)
			if _, err := c.jetStream().CreateStream(testCtx(t), cfg); err != nil {
				t.Fatalf("create mutated stream: %v", err)
			}
			_, err := c.EnsureStream(testCtx(t))
			if !errors.Is(err, ErrStreamConfig) {
				t.Fatalf("EnsureStream = %v, want ErrStreamConfig", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestConn_Info(t *testing.T) {
	e := startServer(t)
	c := connect(t, e.ClientURL(), "INFO")
	ctx := testCtx(t)
	if _, err := c.Info(ctx); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Info before EnsureStream = %v, want ErrNoStream", err)
	}
	if _, err := c.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 5)
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info != (Info{FirstSeq: 1, LastSeq: 5, Msgs: 5}) {
		t.Fatalf("info = %+v", info)
	}
}

func TestConn_Purge(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "PURGE")
	ctx := testCtx(t)
	publishN(t, c, 0, 10)

	steps := []struct {
		name     string
		keepFrom uint64
		purged   uint64
		want     Info
		wantErr  error
	}{
		{"NoOpBelowFirst", 1, 0, Info{FirstSeq: 1, LastSeq: 10, Msgs: 10}, nil},
		{"Below4", 4, 3, Info{FirstSeq: 4, LastSeq: 10, Msgs: 7}, nil},
		{"NoOpAgain", 2, 0, Info{FirstSeq: 4, LastSeq: 10, Msgs: 7}, nil},
		{"BeyondLast", 12, 0, Info{FirstSeq: 4, LastSeq: 10, Msgs: 7}, ErrMalformed},
		{"All", 11, 7, Info{FirstSeq: 11, LastSeq: 10, Msgs: 0}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			purged, err := c.Purge(ctx, st.keepFrom)
			if !errors.Is(err, st.wantErr) || purged != st.purged {
				t.Fatalf("Purge(%d) = %d, %v; want %d, %v", st.keepFrom, purged, err, st.purged, st.wantErr)
			}
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info != st.want {
				t.Fatalf("info = %+v, want %+v", info, st.want)
			}
		})
	}
	t.Run("NumberingKept", func(t *testing.T) {
		seqs := publishN(t, c, 10, 1)
		if seqs[0] != 11 {
			t.Fatalf("next seq after purging all = %d, want 11", seqs[0])
		}
	})
}

// Purge removes a long prefix in steps of about purgeStepBytes each, the log and its mirror alike, and ends where one
// request would have; a purge cut short by its context leaves a consistent prefix purged, and the next one goes on.
func TestConn_PurgeInSteps(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "STEPS")
	ctx := testCtx(t)
	if err := c.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatal(err)
	}
	publishN(t, c, 0, 1000)
	waitMirror(t, c, 1000)
	s, err := c.jetStream().Stream(ctx, "STEPS")
	if err != nil {
		t.Fatal(err)
	}
	state := s.CachedInfo().State
	per := state.Bytes / state.Msgs

	t.Run("Steps", func(t *testing.T) {
		steps, err := purgeInSteps(ctx, s, state, 251, 50*per)
		if err != nil {
			t.Fatal(err)
		}
		if steps != 5 {
			t.Fatalf("purging 250 entries 50 at a time took %d steps, want 5", steps)
		}
		if info, err := c.Info(ctx); err != nil || info.FirstSeq != 251 || info.Msgs != 750 {
			t.Fatalf("after purgeInSteps: %+v, %v; want entries 251..1000", info, err)
		}
	})
	t.Run("Canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		s, err := c.jetStream().Stream(ctx, "STEPS")
		if err != nil {
			t.Fatal(err)
		}
		steps, err := purgeInSteps(cctx, s, s.CachedInfo().State, 1001, 50*per)
		if !errors.Is(err, context.Canceled) || steps > 1 {
			t.Fatalf("purgeInSteps with a canceled context: %d steps, %v; want at most 1 and context.Canceled", steps, err)
		}
		info, err := c.Info(ctx)
		if err != nil || info.LastSeq != 1000 || info.FirstSeq < 251 || info.FirstSeq > 301 || info.Msgs != 1001-info.FirstSeq {
			t.Fatalf("after a canceled purge: %+v, %v; want a consistent prefix purged", info, err)
		}
	})
	t.Run("Purge", func(t *testing.T) {
		c.purgeStepBytes = 100 * per
		if _, err := c.Purge(ctx, 901); err != nil {
			t.Fatal(err)
		}
		for name, get := range map[string]func(context.Context) (Info, error){"log": c.Info, "mirror": c.CatchUpMirrorInfo} {
			if info, err := get(ctx); err != nil || info.FirstSeq != 901 || info.LastSeq != 1000 || info.Msgs != 100 {
				t.Fatalf("%s after Purge(901): %+v, %v; want entries 901..1000", name, info, err)
			}
		}
	})
}

// TestConn_Entry: Entry returns an entry's payload and message id as Subscribe delivers them, from the log and
// through the catch-up mirror, and ErrNoEntry where the log holds none.
func TestConn_Entry(t *testing.T) {
	e := startServer(t)
	c := connectStream(t, e.ClientURL(), "ENTRY")
	ctx := testCtx(t)
	if err := c.EnsureCatchUpMirror(ctx); err != nil {
		t.Fatal(err)
	}
	id := func(seq uint64) string {
		if seq == 5 {
			return "" // an entry published without a message id
		}
		return "leader-1-00ff-" + strconv.FormatUint(seq, 10)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		a, err := c.PublishAsync(ctx, entry(seq), seq-1, id(seq))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(t, c, 5)
	sub, err := c.Subscribe(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	msub, err := c.Subscribe(ctx, 1, 0, FromCatchUpMirror())
	if err != nil {
		t.Fatal(err)
	}
	defer msub.Stop()
	for seq := uint64(1); seq <= 5; seq++ {
		got, err := c.Entry(ctx, seq)
		if err != nil || got.Seq != seq || !bytes.Equal(got.Data, entry(seq)) || got.ID != id(seq) {
			t.Fatalf("Entry(%d) = %+v, %v; want %q with id %q", seq, got, err, entry(seq), id(seq))
		}
		for name, s := range map[string]*Subscription{"log": sub, "mirror": msub} {
			if m := receive(t, s, 5*time.Second); m.Seq != seq || !bytes.Equal(m.Data, got.Data) || m.ID != got.ID {
				t.Fatalf("%s delivered %+v as seq %d; Entry has %+v", name, m, seq, got)
			}
		}
	}
	if _, err := c.Entry(ctx, 6); !errors.Is(err, ErrNoEntry) {
		t.Fatalf("Entry beyond the end: %v, want ErrNoEntry", err)
	}
	if _, err := c.Purge(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Entry(ctx, 2); !errors.Is(err, ErrNoEntry) {
		t.Fatalf("Entry of a purged sequence: %v, want ErrNoEntry", err)
	}
	if got, err := c.Entry(ctx, 3); err != nil || !bytes.Equal(got.Data, entry(3)) {
		t.Fatalf("Entry(3) after the purge = %+v, %v", got, err)
	}
	other := connectStream(t, e.ClientURL(), "ENTRY_NONE")
	if err := other.jetStream().DeleteStream(ctx, "ENTRY_NONE"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Entry(ctx, 1); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Entry without a stream: %v, want ErrNoStream", err)
	}
}
