package journal

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	maxStreamName = 64
	maxTag        = 64
	leaseKey      = "leader"
	componentName = "journal"

	// Log field names, shared so the same thing is always logged under the same key.
	fieldComponent = "component"
	fieldStream    = "stream"
	fieldSeq       = "seq"
	fieldURL       = "url"
	fieldID        = "id"
)

// ValidateStreamName checks that name matches ^[A-Za-z0-9_-]{1,64}$, the names replikv accepts for a stream (they
// are also used in subjects and in the lease bucket name). It returns an error wrapping ErrMalformed otherwise.
func ValidateStreamName(name string) error {
	if len(name) == 0 || len(name) > maxStreamName {
		return fmt.Errorf("journal: stream name: %w: length %d, want 1..%d", ErrMalformed, len(name), maxStreamName)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '-':
		default:
			return fmt.Errorf("journal: stream name: %w: byte %d (%q) not in [A-Za-z0-9_-]", ErrMalformed, i, b)
		}
	}
	return nil
}

// logSubject is the subject the replication log of stream is published on.
func logSubject(stream string) string { return "replikv." + stream + ".log" }

// heartbeatSubject is the core NATS subject follower heartbeats of stream are published on.
func heartbeatSubject(stream string) string { return "replikv." + stream + ".heartbeat" }

// pressureSubject is the core NATS subject the leader's pressure reports of stream are published on.
func pressureSubject(stream string) string { return "replikv." + stream + ".pressure" }

// leaseBucket is the KV bucket holding the leader lease of stream.
func leaseBucket(stream string) string { return stream + "_leader" }

// ValidateTags checks JetStream placement tags: each is 1..64 bytes of printable characters without spaces or commas
// (flags and environment variables give them as a comma-separated list), and none appears twice (servers compare tags
// without regard to case). It returns an error wrapping ErrMalformed otherwise.
func ValidateTags(tags []string) error {
	for i, tag := range tags {
		if len(tag) == 0 || len(tag) > maxTag {
			return fmt.Errorf("%w: tag %q: length %d, want 1..%d", ErrMalformed, tag, len(tag), maxTag)
		}
		if strings.ContainsFunc(tag, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
			return fmt.Errorf("%w: tag %q has a comma, a space or an unprintable character", ErrMalformed, tag)
		}
		if slices.ContainsFunc(tags[:i], func(t string) bool { return strings.EqualFold(t, tag) }) {
			return fmt.Errorf("%w: tag %q appears twice", ErrMalformed, tag)
		}
	}
	return nil
}

// placement returns the JetStream placement for tags, nil for none.
func placement(tags []string) *jetstream.Placement {
	if len(tags) == 0 {
		return nil
	}
	return &jetstream.Placement{Tags: slices.Clone(tags)}
}

// placementTags returns the tags of p, nil for none.
func placementTags(p *jetstream.Placement) []string {
	if p == nil {
		return nil
	}
	return p.Tags
}

// sameTags reports whether a and b are the same tags in the same order, without regard to case, as servers compare
// them.
func sameTags(a, b []string) bool { return slices.EqualFunc(a, b, strings.EqualFold) }
