package apply

import "strconv"

// Action is what the apply loop does with a log message, given the store's applied sequence.
type Action uint8

const (
	// ActionApply means the message is the next one (applied+1): apply it.
	ActionApply Action = iota
	// ActionSkip means the message is already applied (a redelivery): drop it; applying is idempotent by sequence.
	ActionSkip
	// ActionGap means messages are missing between applied and this one (the log was purged below the requested
	// start): never skip them; re-bootstrap from a snapshot.
	ActionGap
)

// String returns "apply", "skip", "gap", or "action(N)", for logs.
func (a Action) String() string {
	switch a {
	case ActionApply:
		return "apply"
	case ActionSkip:
		return "skip"
	case ActionGap:
		return "gap"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Classify decides what to do with the message at log sequence seq when the store has applied everything up to and
// including applied: seq <= applied is ActionSkip, seq == applied+1 is ActionApply, anything later is ActionGap.
func Classify(applied, seq uint64) Action {
	switch {
	case seq <= applied:
		return ActionSkip
	case seq-applied == 1:
		return ActionApply
	}
	return ActionGap
}
