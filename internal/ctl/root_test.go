package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"Nil", nil, ExitOK},
		{"Other", errors.New("x"), ExitError},
		{"Usage", usagef("bad"), ExitUsage},
		{"NotFound", fmt.Errorf("w: %w", &APIError{Status: 404, Code: codeNotFound}), ExitNotFound},
		{"OtherNotFound", &APIError{Status: 404, Code: "no_such"}, ExitError},
		{"Precondition", &APIError{Status: 412, Code: codePreconditionFailed}, ExitPrecondition},
		{"Unreachable", fmt.Errorf("w: %w", ErrUnreachable), ExitUnreachable},
		{"Mismatch", errors.Join(ErrInconclusive, ErrUnreachable, ErrMismatch), ExitMismatch},
		{"UnreachableBeforeInconclusive", errors.Join(ErrInconclusive, ErrUnreachable), ExitUnreachable},
		{"Inconclusive", ErrInconclusive, ExitInconclusive},
		{"OutcomeUnknown", fmt.Errorf("w: %w", &APIError{Status: 503, Code: codeOutcomeUnknown}), ExitOutcomeUnknown},
		{"OutcomeUnknownTimeout", &APIError{Status: 504, Code: codeOutcomeUnknown}, ExitOutcomeUnknown},
		{"Interrupted", fmt.Errorf("w: %w", context.Canceled), ExitInterrupted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Fatalf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestRun_Usage(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"UnknownCommand", nil, []string{"bogus"}},
		{"UnknownFlag", nil, []string{"status", "--bogus"}},
		{"MissingArg", nil, []string{"get"}},
		{"ExtraArg", nil, []string{"del", "a", "b"}},
		{"BadOutput", nil, []string{"-o", "yaml", "status"}},
		{"BadURL", nil, []string{"--url", "ftp://x", "status"}},
		{"URLWithQuery", nil, []string{"--url", "http://x/?a=1", "status"}},
		{"CertWithoutKey", nil, []string{"--cert", "c.pem", "status"}},
		{"BadEnv", []string{"REPLIKV_TIMEOUT=soon"}, []string{"status"}},
		{"BadConsistency", nil, []string{"get", "k", "--consistency", "linear"}},
		{"SnapshotsAlone", nil, []string{"snapshots"}},
		{"NegativeTimeout", nil, []string{"--timeout", "-1s", "status"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.env, "", tc.args...)
			wantCode(t, r, ExitUsage)
			mustContain(t, "stderr", r.err, "usage", "--help")
		})
	}
}

func TestRun_Env(t *testing.T) {
	c := newTestCluster(t, 0, 3)
	gone := closedURL(t)
	// REPLIKV_URL sets --url; the flag wins over it.
	wantCode(t, runCLI(t, []string{"REPLIKV_URL=" + c.lurl}, "", "get", "k001"), ExitOK)
	wantCode(t, runCLI(t, []string{"REPLIKV_URL=" + gone}, "", "get", "k001"), ExitUnreachable)
	wantCode(t, runCLI(t, []string{"REPLIKV_URL=" + gone}, "", "--url", c.lurl, "get", "k001"), ExitOK)
	r := runCLI(t, []string{"REPLIKV_URL=" + c.lurl, "REPLIKV_OUTPUT=json"}, "", "get", "k001")
	wantCode(t, r, ExitOK)
	mustContain(t, "stdout", r.out, `"version": 2`)
}

func TestRun_Completion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := runCLI(t, nil, "", "completion", shell)
		wantCode(t, r, ExitOK)
		if !strings.Contains(r.out, "replikvctl") {
			t.Fatalf("%s completion:\n%.300s", shell, r.out)
		}
	}
	// Dynamic completion of watch's follower ids, from the leader's list.
	c := newTestCluster(t, 2, 1)
	r := runCLI(t, nil, "", "__complete", "--url", c.lurl, "watch", "")
	wantCode(t, r, ExitOK)
	mustContain(t, "completions", r.out, "f1\tready", "f2\tready")
}
