package ctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// Results of one node in verify.
const (
	resultReference    = "reference"    // the node the others are compared with (the leader)
	resultOK           = "ok"           // same digest as the reference at the same sequence
	resultMismatch     = "MISMATCH"     // another digest at the same sequence
	resultUnreachable  = "unreachable"  // the digest could not be read
	resultUnchecked    = "unchecked"    // listed by the leader, but its URL is unknown
	resultInconclusive = "inconclusive" // at another sequence than the reference after every round
)

// VerifyNode is one node of verify's output.
type VerifyNode struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	URL    string `json:"url,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Keys   uint64 `json:"keys,omitempty"`
	Digest string `json:"digest,omitempty"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
}

// VerifyOutput is verify's JSON output. Result is "ok", "mismatch", "unreachable" or "inconclusive", as the exit
// code says.
type VerifyOutput struct {
	Seq    uint64       `json:"seq"`
	Rounds int          `json:"rounds"`
	Nodes  []VerifyNode `json:"nodes"`
	Result string       `json:"result"`
}

func (a *app) verifyCmd() *cobra.Command {
	var wait time.Duration
	var rounds int
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Compare every node's digest with the leader's at one common sequence",
		Long: `Bring every node to a common sequence and compare their digests.

The leader is found among --url; the followers are those in --url and those whose URL the leader's list reports.
verify reads the leader's applied sequence S, asks every node for its digest once it has applied S (min_seq=S, each
waiting at most --wait), and compares digests taken at the same sequence. A node that answered at a later sequence
(writes went on) makes another round at the highest sequence seen, up to --rounds.

Exit codes: 0 every node equal to the leader; 3 a node's digest differs from the leader's at the same sequence;
4 a node could not be reached, or the leader lists a follower whose URL is unknown (add it to --url); 7 the nodes
kept moving and could not be compared at one sequence (run it when writes pause). 3 wins over 4, 4 over 7.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rounds < 1 || wait <= 0 {
				return usagef("--rounds must be at least 1 and --wait above 0")
			}
			out, err := a.verify(cmd.Context(), wait, rounds)
			if out == nil {
				return err
			}
			if a.jsonOut() {
				if werr := writeJSON(a.io.Out, out); werr != nil {
					return werr
				}
			} else if werr := a.printVerify(out); werr != nil {
				return werr
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "longest wait of each node to reach the sequence")
	cmd.Flags().IntVar(&rounds, "rounds", 5, "rounds of digests before giving up on a common sequence")
	return cmd
}

// target is one node verify reads the digest of.
type target struct {
	id, role, url string
	digest        Digest
	err           error
}

// verify runs the comparison. It returns nil output only when nothing could be compared at all (no leader).
func (a *app) verify(ctx context.Context, wait time.Duration, rounds int) (*VerifyOutput, error) {
	c, err := a.survey(ctx, false)
	if err != nil {
		return nil, err
	}
	if c.leader == nil {
		return nil, errNoLeader(c.probes, true)
	}
	var targets []*target
	var unchecked []VerifyNode
	for _, m := range c.members() {
		p := m.probe
		switch {
		case p == nil: // listed by the leader, URL unknown
			f := m.listed
			why := "URL unknown: add it to --url"
			if a.io.Now().Sub(f.LastSeen) > followerSilent {
				why = fmt.Sprintf("not heard from for %s, and URL unknown", ago(a.io.Now(), f.LastSeen))
			}
			unchecked = append(unchecked, VerifyNode{ID: f.ID, Role: roleFollower, Result: resultUnchecked, Error: why})
		case p.err != nil:
			targets = append(targets, &target{id: "?", url: p.url, err: p.err})
		default:
			targets = append(targets, &target{id: p.status.ID, role: p.status.Role, url: p.url})
		}
	}
	ref := targets[0] // members() puts the leader first
	seq := c.leader.status.AppliedSeq
	out := &VerifyOutput{}
	for out.Rounds < rounds {
		out.Rounds++
		a.digests(ctx, targets, seq, wait)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		high, aligned := seq, true
		for _, t := range targets {
			if t.err == nil {
				high = max(high, t.digest.Seq)
				aligned = aligned && t.digest.Seq == ref.digest.Seq
			}
		}
		if aligned || ref.err != nil {
			break
		}
		seq = high
	}
	out.Seq = ref.digest.Seq
	err = judge(out, targets, unchecked)
	if c.followersErr != nil {
		// Without the list, a follower missing from --url would go unnoticed.
		err = errors.Join(err, fmt.Errorf("%w: the leader's follower list: %w", ErrUnreachable, c.followersErr))
		if out.Result == "ok" || out.Result == "inconclusive" {
			out.Result = "unreachable"
		}
	}
	return out, err
}

// digests reads every target's digest at minSeq, concurrently; a target that failed earlier is tried again.
func (a *app) digests(ctx context.Context, targets []*target, minSeq uint64, wait time.Duration) {
	var wg sync.WaitGroup
	for _, t := range targets {
		if t.id == "?" {
			continue // its status did not answer: nothing to compare it with
		}
		wg.Go(func() {
			t.digest, t.err = a.client.Digest(ctx, t.url, minSeq, wait)
		})
	}
	wg.Wait()
}

// judge fills out's nodes and result, and returns the error the exit code comes from.
func judge(out *VerifyOutput, targets []*target, unchecked []VerifyNode) error {
	ref := targets[0]
	var mismatched, unreached, moving []string
	for i, t := range targets {
		n := VerifyNode{ID: t.id, Role: t.role, URL: redactString(t.url)}
		switch {
		case t.err != nil:
			n.Result, n.Error = resultUnreachable, t.err.Error()
			if t.id == "?" {
				unreached = append(unreached, redactString(t.url))
			} else {
				unreached = append(unreached, t.id+" ("+redactString(t.url)+")")
			}
		default:
			n.Seq, n.Keys, n.Digest = t.digest.Seq, t.digest.Keys, t.digest.Digest
			switch {
			case i == 0:
				n.Result = resultReference
			case ref.err != nil:
				n.Result, n.Error = resultInconclusive, "the leader's digest could not be read"
			case t.digest.Seq != ref.digest.Seq:
				n.Result = resultInconclusive
				n.Error = fmt.Sprintf("at seq %d, the leader at %d", t.digest.Seq, ref.digest.Seq)
				moving = append(moving, t.id)
			case t.digest.Digest != ref.digest.Digest || t.digest.Keys != ref.digest.Keys:
				n.Result = resultMismatch
				mismatched = append(mismatched, t.id)
			default:
				n.Result = resultOK
			}
		}
		out.Nodes = append(out.Nodes, n)
	}
	for _, u := range unchecked {
		out.Nodes = append(out.Nodes, u)
		unreached = append(unreached, u.ID)
	}
	var errs []error
	if len(mismatched) > 0 {
		errs = append(errs, fmt.Errorf("%w at seq %d: %s differ(s) from the leader %s", ErrMismatch, ref.digest.Seq,
			strings.Join(mismatched, ", "), ref.id))
	}
	if len(unreached) > 0 {
		errs = append(errs, fmt.Errorf("%w: not checked: %s", ErrUnreachable, strings.Join(unreached, ", ")))
	}
	if len(moving) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s never at the leader's sequence in %d round(s); run verify when writes pause",
			ErrInconclusive, strings.Join(moving, ", "), out.Rounds))
	}
	err := errors.Join(errs...)
	switch ExitCode(err) {
	case ExitOK:
		out.Result = "ok"
	case ExitMismatch:
		out.Result = "mismatch"
	case ExitUnreachable:
		out.Result = "unreachable"
	default:
		out.Result = "inconclusive"
	}
	return err
}

// printVerify prints verify's table.
func (a *app) printVerify(out *VerifyOutput) error {
	tw := newTable(a.io.Out)
	row(tw, "ID", "ROLE", "SEQ", "KEYS", "DIGEST", "RESULT", "URL")
	for _, n := range out.Nodes {
		seq, keys := "-", "-"
		if n.Digest != "" {
			seq, keys = strconv.FormatUint(n.Seq, 10), strconv.FormatUint(n.Keys, 10)
		}
		result := n.Result
		if n.Error != "" && n.Result != resultUnreachable {
			result += ": " + n.Error
		}
		row(tw, printable(n.ID), dash(n.Role), seq, keys, dash(short(n.Digest, 16)), result, dash(n.URL))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Result == "ok" {
		fmt.Fprintf(a.io.Out, "\nall %d node(s) equal at seq %d\n", len(out.Nodes), out.Seq)
	}
	return nil
}
