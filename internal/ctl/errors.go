package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Exit codes of replikvctl. They are part of its interface: scripts and cron jobs test them.
const (
	// ExitOK: the command did what it was asked; verify found every node equal.
	ExitOK = 0
	// ExitError: any other failure (an error answer of the API, a bad answer, a local file that cannot be read).
	ExitError = 1
	// ExitUsage: a bad command line or environment value.
	ExitUsage = 2
	// ExitMismatch: verify found a node whose digest differs from the leader's at the same sequence.
	ExitMismatch = 3
	// ExitUnreachable: a node (or the leader) could not be reached or located: connection refused, TLS failure,
	// timeout, or (status, verify) a follower the leader lists whose URL is unknown.
	ExitUnreachable = 4
	// ExitNotFound: get or del of a key that does not exist, or a txn that deletes one (404).
	ExitNotFound = 5
	// ExitPrecondition: a conditional put or del (--if-match, --if-absent), or a txn operation (if-match=N,
	// if-absent), whose condition did not hold (412).
	ExitPrecondition = 6
	// ExitInconclusive: verify could not get the nodes to one common sequence (they kept moving under writes).
	ExitInconclusive = 7
	// ExitOutcomeUnknown: the server answered a write with outcome_unknown (503 or 504): it may or may not be
	// committed. Read the key back before retrying.
	ExitOutcomeUnknown = 8
	// ExitInterrupted: interrupted by SIGINT or SIGTERM (the shell's 128 + SIGINT).
	ExitInterrupted = 130
)

// Sentinel errors, compared with errors.Is; ExitCode maps them to exit codes.
var (
	// ErrUsage marks a bad command line or environment value.
	ErrUsage = errors.New("usage")
	// ErrNotFound is a 404 not_found answer: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPrecondition is a 412 precondition_failed answer.
	ErrPrecondition = errors.New("precondition failed")
	// ErrUnreachable means a node could not be reached (network, TLS, timeout) or located.
	ErrUnreachable = errors.New("unreachable")
	// ErrMismatch means two nodes hold different states at the same sequence.
	ErrMismatch = errors.New("digest mismatch")
	// ErrInconclusive means the nodes could not be compared at one common sequence.
	ErrInconclusive = errors.New("inconclusive")
	// ErrOutcomeUnknown is an outcome_unknown answer to a write: it may or may not be committed.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// APIError is an error answer of the API: its HTTP status and the {"error","code"} body. Is maps the codes onto the
// sentinels (not_found to ErrNotFound, precondition_failed to ErrPrecondition).
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the machine code of the body ("not_leader", ...), empty when the body was not the API's JSON.
	Code string
	// Message is the human message of the body; the server never puts secrets in it.
	Message string
	// Hint is what the CLI adds for the operator (e.g. where a token comes from), or "".
	Hint string
}

// API error codes the CLI treats specially (docs/api.md, "Status codes").
const (
	codeNotFound           = "not_found"
	codePreconditionFailed = "precondition_failed"
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeOutcomeUnknown     = "outcome_unknown"
)

func (e *APIError) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Is reports whether the answer's code corresponds to target.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == codeNotFound
	case ErrPrecondition:
		return e.Code == codePreconditionFailed || (e.Code == "" && e.Status == http.StatusPreconditionFailed)
	case ErrOutcomeUnknown:
		return e.Code == codeOutcomeUnknown
	}
	return false
}

// ExitCode maps an error of Run to the process's exit code (ExitOK for nil). The most specific cause wins: a
// mismatch before an unreachable node before an inconclusive comparison.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrMismatch):
		return ExitMismatch
	case errors.Is(err, ErrUnreachable):
		return ExitUnreachable
	case errors.Is(err, ErrInconclusive):
		return ExitInconclusive
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	case errors.Is(err, ErrPrecondition):
		return ExitPrecondition
	case errors.Is(err, ErrOutcomeUnknown):
		return ExitOutcomeUnknown
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitError
}

// usagef returns an error wrapping ErrUsage.
func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
