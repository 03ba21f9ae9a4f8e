package journal

import "fmt"

const (
	maxStreamName = 64
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

// leaseBucket is the KV bucket holding the leader lease of stream.
func leaseBucket(stream string) string { return stream + "_leader" }
