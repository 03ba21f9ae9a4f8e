package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/replikv/replikv/internal/ctxtime"
	"go.uber.org/zap"
)

// duplicateWindow is how long the server remembers Nats-Msg-Id values to drop re-sent entries. replikv never re-sends
// an entry (a pipeline that lost track of its publishes re-reads the log instead), and the Expected-Last-Msg-Id chain
// only needs the stream's last id, which the server keeps apart from this window. So the window is short: the server
// keeps one map entry per message of the window, and at the server default of 2 minutes that map (240,000 entries
// at 2,000 writes/s) was most of the leader's live heap, so that every garbage collection took longer and stalled
// writes longer.
const duplicateWindow = time.Second

// Info is the state of the log stream. An empty stream has FirstSeq = LastSeq+1 (a purged stream keeps its
// LastSeq, so the next entry still gets LastSeq+1).
type Info struct {
	FirstSeq, LastSeq, Msgs uint64
}

// logStreamConfig is the configuration the replication log is created with: nothing ever drops an entry except an
// explicit Purge.
func logStreamConfig(name string, replicas int, tags []string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{logSubject(name)},
		Retention:  jetstream.LimitsPolicy,
		MaxMsgs:    -1,
		MaxBytes:   -1,
		MaxAge:     0,
		Discard:    jetstream.DiscardOld,
		Storage:    jetstream.FileStorage,
		Replicas:   replicas,
		Duplicates: duplicateWindow,
		Placement:  placement(tags),
	}
}

// EnsureStream creates the log stream if it is missing (subject replikv.<stream>.log, file storage, limits
// retention, no message/byte/age limits, 1 second duplicate window, Config.Replicas). If the stream exists it checks
// that nothing in its configuration would reject or drop entries and returns ErrStreamConfig naming the first
// difference; a longer duplicate window (a stream created by an earlier version) is shortened, and a failure to do
// so is only logged. Other failures: ErrUnavailable, ErrClosed.
func (c *Conn) EnsureStream(ctx context.Context) (Info, error) {
	return c.ensureStream(ctx, true)
}

// RequireStream is EnsureStream for a log that must exist already (a store holds entries from it): a missing
// stream is ErrNoStream, never created, so that a log the server failed to recover is not replaced by an empty one.
func (c *Conn) RequireStream(ctx context.Context) (Info, error) {
	return c.ensureStream(ctx, false)
}

func (c *Conn) ensureStream(ctx context.Context, create bool) (Info, error) {
	stream, err := c.jetStream().Stream(ctx, c.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && !create {
		return Info{}, fmt.Errorf("journal: require stream %s: %w", c.stream, ErrNoStream)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = c.jetStream().CreateStream(ctx, logStreamConfig(c.stream, c.replicas, c.streamTags))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created concurrently with a different config, or it existed all along: check what is there.
			stream, err = c.jetStream().Stream(ctx, c.stream)
		} else if err == nil {
			c.log.Info("created log stream", zap.Int("replicas", c.replicas))
		}
	}
	if err != nil {
		return Info{}, wrapErr("ensure stream", err)
	}
	si := stream.CachedInfo()
	if err := checkStreamConfig(si.Config, logSubject(c.stream)); err != nil {
		return Info{}, fmt.Errorf("journal: ensure stream %s: %w", c.stream, err)
	}
	if si.Config.Duplicates > duplicateWindow {
		cfg := si.Config
		cfg.Duplicates = duplicateWindow
		if _, err := c.jetStream().UpdateStream(ctx, cfg); err != nil {
			c.log.Warn("cannot shorten the log stream's duplicate window", zap.Duration("window", si.Config.Duplicates),
				zap.Error(err))
		} else {
			c.log.Info("shortened the log stream's duplicate window", zap.Duration("from", si.Config.Duplicates),
				zap.Duration("to", duplicateWindow))
		}
	}
	if si.Config.Replicas != c.replicas {
		c.log.Warn("log stream replicas differ from config", zap.Int("stream_replicas", si.Config.Replicas),
			zap.Int("want_replicas", c.replicas))
	}
	if have := placementTags(si.Config.Placement); len(c.streamTags) > 0 && !sameTags(have, c.streamTags) {
		c.log.Warn("log stream placement tags differ from config; the stream is kept where it is",
			zap.Strings("stream_tags", have), zap.Strings("want_tags", c.streamTags))
	}
	return infoFromState(si.State), nil
}

// checkStreamConfig returns an error wrapping ErrStreamConfig if cfg could reject, drop or reorder log entries.
func checkStreamConfig(cfg jetstream.StreamConfig, subject string) error {
	bad := func(what string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrStreamConfig, fmt.Sprintf(what, args...))
	}
	switch {
	case !slices.Equal(cfg.Subjects, []string{subject}):
		return bad("subjects are %q, want [%q]", cfg.Subjects, subject)
	case cfg.Storage != jetstream.FileStorage:
		return bad("storage is %s, want file", cfg.Storage)
	case cfg.Retention != jetstream.LimitsPolicy:
		return bad("retention is %s, want limits", cfg.Retention)
	case cfg.MaxMsgs > 0:
		return bad("max_msgs is %d, want unlimited", cfg.MaxMsgs)
	case cfg.MaxBytes > 0:
		return bad("max_bytes is %d, want unlimited", cfg.MaxBytes)
	case cfg.MaxAge > 0:
		return bad("max_age is %s, want unlimited", cfg.MaxAge)
	case cfg.MaxMsgsPerSubject > 0:
		return bad("max_msgs_per_subject is %d, want unlimited", cfg.MaxMsgsPerSubject)
	case cfg.Discard != jetstream.DiscardOld:
		return bad("discard policy is %s, want old", cfg.Discard)
	case cfg.Sealed:
		return bad("stream is sealed")
	case cfg.DenyPurge:
		return bad("deny_purge is set, log compaction needs purge")
	case cfg.Mirror != nil || len(cfg.Sources) > 0:
		return bad("stream has a mirror or sources")
	case cfg.SubjectTransform != nil:
		return bad("stream has a subject transform")
	case cfg.PersistMode != jetstream.DefaultPersistMode:
		return bad("persist mode is %s, want default", cfg.PersistMode)
	}
	return nil
}

func infoFromState(st jetstream.StreamState) Info {
	info := Info{FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Msgs: st.Msgs}
	if info.Msgs == 0 {
		// A never-written stream reports 0/0; normalise so that "empty" always reads FirstSeq = LastSeq+1.
		info.FirstSeq = info.LastSeq + 1
	}
	return info
}

// Info returns the current state of the log stream. Errors: ErrNoStream, ErrUnavailable (while the connection is down,
// with why, as Health says: ErrAuth too when the server refuses the credentials), ErrClosed.
func (c *Conn) Info(ctx context.Context) (Info, error) {
	stream, err := c.jetStream().Stream(ctx, c.stream)
	if err != nil {
		if h := c.Health(); !h.Connected && ctx.Err() == nil && classify(err) == ErrUnavailable {
			// "outbound buffer limit exceeded" says nothing of why: the connection's failure does.
			return Info{}, fmt.Errorf("journal: info: %w", h.Err)
		}
		return Info{}, wrapErr("info", err)
	}
	return infoFromState(stream.CachedInfo().State), nil
}

// Entry returns the log's entry at seq, as Subscribe would deliver it but without Pending (one request to the server,
// for spot checks: Subscribe reads the log). Errors: ErrNoEntry when the log holds none there (compacted away, or
// beyond its end), ErrNoStream, ErrUnavailable, ErrClosed.
func (c *Conn) Entry(ctx context.Context, seq uint64) (Msg, error) {
	stream, err := c.jetStream().Stream(ctx, c.stream)
	if err != nil {
		return Msg{}, wrapErr("entry", err)
	}
	m, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Msg{}, fmt.Errorf("journal: entry %d: %w", seq, ErrNoEntry)
	}
	if err != nil {
		return Msg{}, wrapErr("entry", err)
	}
	return Msg{Seq: m.Sequence, Data: m.Data, ID: m.Header.Get(jetstream.MsgIDHeader)}, nil
}

// Purge removes every log entry with a sequence below keepFrom (log compaction below a snapshot) and returns how
// many it removed. keepFrom <= the first sequence is a no-op; keepFrom = LastSeq+1 empties the stream but keeps its
// sequence numbering. keepFrom beyond LastSeq+1 is refused (the server would move the next sequence forward),
// wrapping ErrMalformed. The catch-up mirror, if there is one, is trimmed the same way; failing to is only logged.
// Both are purged in steps (see purgeInSteps), so a purge takes a while; if ctx ends or a step fails, what was
// purged stays purged, and the next Purge goes on from there.
// Errors: ErrNoStream, ErrUnavailable, ErrClosed.
func (c *Conn) Purge(ctx context.Context, keepFrom uint64) (uint64, error) {
	stream, err := c.jetStream().Stream(ctx, c.stream)
	if err != nil {
		return 0, wrapErr("purge", err)
	}
	info := infoFromState(stream.CachedInfo().State)
	if keepFrom > info.LastSeq+1 {
		return 0, fmt.Errorf("journal: purge: %w: keep-from %d beyond last sequence %d + 1", ErrMalformed, keepFrom,
			info.LastSeq)
	}
	var purged uint64
	if keepFrom > info.FirstSeq {
		start := time.Now()
		steps, err := purgeInSteps(ctx, stream, stream.CachedInfo().State, keepFrom, c.purgeStepBytes)
		if err != nil {
			return 0, wrapErr("purge", err)
		}
		purged = keepFrom - info.FirstSeq
		c.log.Info("purged log", zap.Uint64("keep_from", keepFrom), zap.Uint64("entries", purged),
			zap.Int("steps", steps), zap.Duration("took", time.Since(start)))
	}
	if err := c.purgeMirror(ctx, keepFrom); err != nil {
		// The log is compacted; the mirror only keeps more than it needs until the next purge.
		c.log.Warn("could not purge the catch-up mirror", zap.Uint64("keep_from", keepFrom), zap.Error(err))
	}
	return purged, nil
}

// purgeStepBytes is about how much of a stream one purge request removes: the server's file store block (8 MiB for
// a stream without byte limits). The server purges under the stream's lock, which the leader's publishes wait for,
// and the time it takes grows with what it removes: it loads the subject state of every block it drops. One request
// for a million entries held publishes back for 300 ms; requests of a block each, for 20-30 ms each
// (BenchmarkPurgeStall). Much smaller steps cost more: each request also rewrites the stream's
// index, and one that removes less than half of a block writes a tombstone per entry.
const purgeStepBytes = 8 << 20

// Between two steps the purge leaves the stream to the publishers for purgePauseFactor times as long as the last
// step took, within [purgeMinPause, purgeMaxPause].
const (
	purgePauseFactor = 4
	purgeMinPause    = 10 * time.Millisecond
	purgeMaxPause    = 250 * time.Millisecond
)

// purgeInSteps removes the entries of stream below keepFrom (state is its state before) with purge requests of
// about stepBytes each, pausing between them, and returns how many requests it made.
func purgeInSteps(ctx context.Context, stream jetstream.Stream, state jetstream.StreamState, keepFrom uint64,
	stepBytes uint64) (int, error) {
	per := uint64(1)
	if state.Msgs > 0 && state.Bytes > 0 {
		per = max(1, stepBytes/max(1, state.Bytes/state.Msgs))
	}
	steps := 0
	for next := state.FirstSeq; next < keepFrom; {
		next = min(next+per, keepFrom)
		t0 := time.Now()
		if err := stream.Purge(ctx, jetstream.WithPurgeSequence(next)); err != nil {
			return steps, err
		}
		steps++
		if next < keepFrom {
			pause := min(max(purgePauseFactor*time.Since(t0), purgeMinPause), purgeMaxPause)
			if err := ctxtime.Sleep(ctx, pause); err != nil {
				return steps, err
			}
		}
	}
	return steps, nil
}
