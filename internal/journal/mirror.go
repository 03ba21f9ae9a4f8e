package journal

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// The catch-up mirror is a JetStream mirror of the log that followers read their catch-up from. The server keeps a
// mirror's sequence numbers equal to its origin's, so an entry has the same sequence in both. It exists because the
// server serves every read of a stream under that stream's lock, which its publishes take too: three followers
// catching up from the log itself held the leader's publishes back for tens of milliseconds, while reads of a
// mirror take the mirror's lock and leave the log's to the leader (BenchmarkPublishP99_CatchUpReaders measures it).
// On a cluster the mirror can also live on other servers than the log.

// mirrorName is the name of the catch-up mirror of stream.
func mirrorName(stream string) string { return stream + "_catchup" }

// isMirrorOf reports whether cfg is that of a mirror of stream: only such a stream is used, trimmed or removed as
// the catch-up mirror.
func isMirrorOf(cfg jetstream.StreamConfig, stream string) bool {
	return cfg.Mirror != nil && cfg.Mirror.Name == stream
}

// mirrorStreamConfig is the configuration the catch-up mirror is created with: a mirror of the log that keeps
// everything until Purge trims it along with the log.
func mirrorStreamConfig(stream string, replicas int, tags []string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:      mirrorName(stream),
		Mirror:    &jetstream.StreamSource{Name: stream},
		Retention: jetstream.LimitsPolicy,
		MaxMsgs:   -1,
		MaxBytes:  -1,
		Discard:   jetstream.DiscardOld,
		Storage:   jetstream.FileStorage,
		Replicas:  replicas,
		Placement: placement(tags),
	}
}

// EnsureCatchUpMirror creates the log's catch-up mirror (<stream>_catchup, file storage, Config.Replicas) if it is
// missing. A stream of that name that is not a mirror of the log is refused with ErrStreamConfig; one that is (an
// operator may create it with placement of their own) is kept as it is. Other failures: ErrUnavailable, ErrClosed.
func (c *Conn) EnsureCatchUpMirror(ctx context.Context) error {
	name := mirrorName(c.stream)
	stream, err := c.jetStream().Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = c.jetStream().CreateStream(ctx, mirrorStreamConfig(c.stream, c.replicas, c.mirrorTags))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = c.jetStream().Stream(ctx, name)
		} else if err == nil {
			c.log.Info("created the log's catch-up mirror", zap.String("mirror", name), zap.Int("replicas", c.replicas),
				zap.Strings("tags", c.mirrorTags))
		}
	}
	if err != nil {
		return wrapErr("ensure catch-up mirror", err)
	}
	if !isMirrorOf(stream.CachedInfo().Config, c.stream) {
		return fmt.Errorf("journal: ensure catch-up mirror: %w: stream %s exists and is not a mirror of %s",
			ErrStreamConfig, name, c.stream)
	}
	if have := placementTags(stream.CachedInfo().Config.Placement); len(c.mirrorTags) > 0 && !sameTags(have, c.mirrorTags) {
		c.log.Warn("catch-up mirror placement tags differ from config; the mirror is kept where it is",
			zap.String("mirror", name), zap.Strings("mirror_tags", have), zap.Strings("want_tags", c.mirrorTags))
	}
	return nil
}

// RemoveCatchUpMirror deletes the log's catch-up mirror if there is one (a leader started without it removes one left
// by an earlier run, which would otherwise keep copying the log). A stream of that name that is not a mirror of the
// log is left alone. Subscriptions reading the mirror end with ErrNoStream. Errors: ErrUnavailable, ErrClosed.
func (c *Conn) RemoveCatchUpMirror(ctx context.Context) error {
	name := mirrorName(c.stream)
	stream, err := c.jetStream().Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return wrapErr("remove catch-up mirror", err)
	}
	if !isMirrorOf(stream.CachedInfo().Config, c.stream) {
		return nil
	}
	if err := c.jetStream().DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return wrapErr("remove catch-up mirror", err)
	}
	c.log.Info("removed the log's catch-up mirror", zap.String("mirror", name))
	return nil
}

// CatchUpMirrorInfo returns the state of the log's catch-up mirror. Errors: ErrNoStream when there is none,
// ErrStreamConfig when the stream of its name is not a mirror of the log, ErrUnavailable, ErrClosed.
func (c *Conn) CatchUpMirrorInfo(ctx context.Context) (Info, error) {
	stream, err := c.jetStream().Stream(ctx, mirrorName(c.stream))
	if err != nil {
		return Info{}, wrapErr("catch-up mirror info", err)
	}
	if !isMirrorOf(stream.CachedInfo().Config, c.stream) {
		return Info{}, fmt.Errorf("journal: catch-up mirror info: %w: stream %s is not a mirror of %s",
			ErrStreamConfig, mirrorName(c.stream), c.stream)
	}
	return infoFromState(stream.CachedInfo().State), nil
}

// purgeMirror trims the catch-up mirror below keepFrom, as Purge did the log, if there is a mirror. It never purges
// past the mirror's own last entry + 1: that would move its next sequence, and the mirror's sequences must stay the
// log's.
func (c *Conn) purgeMirror(ctx context.Context, keepFrom uint64) error {
	stream, err := c.jetStream().Stream(ctx, mirrorName(c.stream))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return wrapErr("purge catch-up mirror", err)
	}
	si := stream.CachedInfo()
	if !isMirrorOf(si.Config, c.stream) {
		return nil // not ours: EnsureCatchUpMirror reports it
	}
	info := infoFromState(si.State)
	keepFrom = min(keepFrom, info.LastSeq+1)
	if keepFrom <= info.FirstSeq {
		return nil
	}
	if _, err := purgeInSteps(ctx, stream, si.State, keepFrom, c.purgeStepBytes); err != nil {
		return wrapErr("purge catch-up mirror", err)
	}
	return nil
}
