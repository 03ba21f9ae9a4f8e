package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// NodeRow is one node of `status`: from its own status object when the CLI could ask it, else from the leader's
// follower list (no snapshot_seq then), else only its URL and error.
type NodeRow struct {
	ID          string     `json:"id"`
	Role        string     `json:"role"`
	State       string     `json:"state"`
	URL         string     `json:"url,omitempty"`
	AppliedSeq  uint64     `json:"applied_seq"`
	Lag         uint64     `json:"lag"`
	SnapshotSeq *uint64    `json:"snapshot_seq,omitempty"`
	LastSeen    *time.Time `json:"last_seen,omitempty"`
	Progress    *Progress  `json:"progress,omitempty"`
	Error       string     `json:"error,omitempty"`
	// Source says where the row comes from: "node" (its own status), "leader" (the leader's follower list only: the
	// CLI does not know the node's URL), or "unreachable".
	Source string `json:"source"`
}

// Row sources.
const (
	sourceNode        = "node"
	sourceLeader      = "leader"
	sourceUnreachable = "unreachable"
)

// SnapshotInfo is the newest snapshot in `status`.
type SnapshotInfo struct {
	Seq        uint64    `json:"seq"`
	Keys       uint64    `json:"keys"`
	Bytes      int64     `json:"bytes"`
	CreatedAt  time.Time `json:"created_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Count      int       `json:"count"` // snapshots stored
}

// StatusOutput is the JSON output of `status`.
type StatusOutput struct {
	Leader         string        `json:"leader,omitempty"` // the leader's id, "" when none was found
	Epoch          uint64        `json:"epoch,omitempty"`  // the leader's epoch, 0 when unknown
	Nodes          []NodeRow     `json:"nodes"`
	NewestSnapshot *SnapshotInfo `json:"newest_snapshot,omitempty"`
	Errors         []string      `json:"errors,omitempty"` // what could not be learned
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "One table of the whole cluster: every node, its state, progress and the newest snapshot",
		Long: `Print one table of the whole cluster. The leader is found among --url (or through a follower that reports
it); its follower list gives every follower's state, applied sequence, lag and last heartbeat, and each node that
is in --url (or whose URL the API reports) adds its own status (snapshot sequence, errors). The footer gives the
newest snapshot's age.

Exit code 4 when a --url did not answer or no leader was found (the table is printed all the same).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.survey(cmd.Context(), true)
			if err != nil {
				return err
			}
			out, warnings, problem := a.statusOutput(c)
			if a.jsonOut() {
				if err := writeJSON(a.io.Out, out); err != nil {
					return err
				}
			} else if err := a.printStatus(out, warnings); err != nil {
				return err
			}
			return problem
		},
	}
}

// statusOutput builds the rows, warnings (what could not be learned without making the command fail: the snapshot
// list), and the error the command ends with (nil when every node answered and the leader was found).
func (a *app) statusOutput(c *cluster) (StatusOutput, []string, error) {
	var out StatusOutput
	now := a.io.Now()
	for _, m := range c.members() {
		out.Nodes = append(out.Nodes, nodeRow(m))
	}
	if c.leader != nil {
		out.Leader, out.Epoch = c.leader.status.ID, c.leader.status.Epoch
	}
	var errs []error
	if err := c.errProbes(); err != nil {
		errs = append(errs, err)
	}
	if c.leader == nil {
		errs = append(errs, errNoLeader(c.probes, false))
	}
	if c.followersErr != nil {
		errs = append(errs, fmt.Errorf("followers: %w", c.followersErr))
	}
	var warnings []string
	if c.snapshotsErr != nil {
		warnings = append(warnings, "snapshots: "+c.snapshotsErr.Error())
	} else if len(c.snapshots) > 0 {
		var m Manifest
		if err := json.Unmarshal(c.snapshots[0], &m); err != nil {
			warnings = append(warnings, "snapshots: bad manifest: "+err.Error())
		} else {
			out.NewestSnapshot = &SnapshotInfo{Seq: m.Seq, Keys: m.Keys, Bytes: m.Bytes, CreatedAt: m.CreatedAt,
				AgeSeconds: now.Sub(m.CreatedAt).Seconds(), Count: len(c.snapshots)}
		}
	}
	out.Errors = append(out.Errors, warnings...)
	for _, e := range errs {
		out.Errors = append(out.Errors, e.Error())
	}
	return out, warnings, errors.Join(errs...)
}

// nodeRow builds one row.
func nodeRow(m member) NodeRow {
	var r NodeRow
	if f := m.listed; f != nil {
		seen := f.LastSeen
		r = NodeRow{ID: f.ID, Role: roleFollower, State: f.State, URL: f.URL, AppliedSeq: f.AppliedSeq, Lag: f.Lag,
			LastSeen: &seen, Source: sourceLeader}
	}
	if p := m.probe; p != nil {
		if p.err != nil {
			r.URL, r.Error, r.Source = redactString(p.url), p.err.Error(), sourceUnreachable
			if r.ID == "" {
				r.ID, r.State = "?", sourceUnreachable
			}
			return r
		}
		st := p.status
		snap := st.SnapshotSeq
		r.ID, r.Role, r.State, r.URL, r.Source = st.ID, st.Role, st.State, redactString(p.url), sourceNode
		r.AppliedSeq, r.Lag, r.SnapshotSeq, r.Error = st.AppliedSeq, st.Lag, &snap, st.Error
		if st.Progress != (Progress{}) {
			pr := st.Progress
			r.Progress = &pr
		}
	}
	return r
}

// printStatus prints the table, the newest snapshot and the errors nodes report; warnings go to stderr.
func (a *app) printStatus(out StatusOutput, warnings []string) error {
	now := a.io.Now()
	tw := newTable(a.io.Out)
	row(tw, "ID", "ROLE", "STATE", "APPLIED", "LAG", "SNAPSHOT", "LAST SEEN", "URL")
	for _, r := range out.Nodes {
		seen := "-"
		if r.LastSeen != nil {
			seen = ago(now, *r.LastSeen) + " ago"
		}
		state := r.State
		if r.Progress != nil && r.Progress.BytesTotal > 0 && r.State == stateRestoring {
			state += fmt.Sprintf(" %d%%", r.Progress.BytesDone*100/r.Progress.BytesTotal)
		}
		applied, lag := strconv.FormatUint(r.AppliedSeq, 10), strconv.FormatUint(r.Lag, 10)
		if r.Source == sourceUnreachable && r.LastSeen == nil {
			applied, lag = "-", "-"
		}
		url := r.URL
		if url == "" {
			url = "(unknown)"
		}
		row(tw, printable(r.ID), dash(r.Role), dash(state), applied, lag, seqText(r.SnapshotSeq), seen, url)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s := out.NewestSnapshot; s != nil {
		fmt.Fprintf(a.io.Out, "\nnewest snapshot: seq %d, %s old (%d keys, %s; %d stored)\n", s.Seq,
			ago(now, s.CreatedAt), s.Keys, bytesText(s.Bytes), s.Count)
	} else if out.Leader != "" && len(warnings) == 0 {
		fmt.Fprintln(a.io.Out, "\nnewest snapshot: none")
	}
	if out.Epoch > 0 {
		fmt.Fprintf(a.io.Out, "leader epoch: %d (higher at every takeover)\n", out.Epoch)
	}
	for _, r := range out.Nodes {
		if r.Error != "" && r.Source != sourceUnreachable {
			fmt.Fprintf(a.io.Out, "%s: %s: %s\n", printable(r.ID), r.State, r.Error)
		}
	}
	for _, w := range warnings {
		fmt.Fprintf(a.io.Err, "warning: %s\n", w)
	}
	return nil
}
