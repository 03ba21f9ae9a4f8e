package journal

import (
	"errors"
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
		s, err := c.js.Stream(ctx, "CREATE")
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
		if _, err := c.js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.EnsureStream(ctx); err != nil {
			t.Fatalf("EnsureStream: %v", err)
		}
		s, err := c.js.Stream(ctx, "OLDWINDOW")
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
			if _, err := c.js.CreateStream(testCtx(t), cfg); err != nil {
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
		want     Info
		wantErr  error
	}{
		{"NoOpBelowFirst", 1, Info{FirstSeq: 1, LastSeq: 10, Msgs: 10}, nil},
		{"Below4", 4, Info{FirstSeq: 4, LastSeq: 10, Msgs: 7}, nil},
		{"NoOpAgain", 2, Info{FirstSeq: 4, LastSeq: 10, Msgs: 7}, nil},
		{"BeyondLast", 12, Info{FirstSeq: 4, LastSeq: 10, Msgs: 7}, ErrMalformed},
		{"All", 11, Info{FirstSeq: 11, LastSeq: 10, Msgs: 0}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := c.Purge(ctx, st.keepFrom)
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("Purge(%d) = %v, want %v", st.keepFrom, err, st.wantErr)
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
