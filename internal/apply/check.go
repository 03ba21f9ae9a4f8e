package apply

import "fmt"

// Current is a key's present state as seen by the leader (store plus in-flight overlay). Version is meaningful only
// when Exists is set.
type Current struct {
	Version uint64
	Exists  bool
}

// Cond holds a write's HTTP preconditions: If-Match: "<v>" (HasIfMatch, IfMatch) and If-None-Match: * (IfNoneMatch).
// The zero value means unconditional.
type Cond struct {
	IfMatch     uint64
	HasIfMatch  bool
	IfNoneMatch bool
}

// Check decides whether a write of kind op may proceed against cur. It returns an error wrapping ErrPrecondition if
// If-Match is set and the key is absent or at another version, or If-None-Match is set and the key exists; then one
// wrapping ErrNotFound for a delete of an absent key; an unknown op wraps ErrMalformed; else nil.
func Check(op Op, cur Current, c Cond) error {
	if op != OpPut && op != OpDelete {
		return fmt.Errorf("apply: check: %w: unknown %s", ErrMalformed, op)
	}
	if c.HasIfMatch {
		if !cur.Exists {
			return fmt.Errorf("apply: check: %w: if-match %d but the key does not exist", ErrPrecondition, c.IfMatch)
		}
		if cur.Version != c.IfMatch {
			return fmt.Errorf("apply: check: %w: if-match %d but the key is at version %d",
				ErrPrecondition, c.IfMatch, cur.Version)
		}
	}
	if c.IfNoneMatch && cur.Exists {
		return fmt.Errorf("apply: check: %w: if-none-match but the key exists at version %d", ErrPrecondition, cur.Version)
	}
	if op == OpDelete && !cur.Exists {
		return fmt.Errorf("apply: check: %w", ErrNotFound)
	}
	return nil
}
