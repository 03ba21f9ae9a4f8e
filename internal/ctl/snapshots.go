package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) snapshotsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshots",
		Aliases: []string{"snapshot", "snap"},
		Short:   "List or create the leader's snapshots",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("snapshots: say list or create")
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the stored snapshots, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			leader, err := a.findLeader(cmd.Context())
			if err != nil {
				return err
			}
			ms, err := a.client.Snapshots(cmd.Context(), leader)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				if ms == nil {
					ms = []json.RawMessage{}
				}
				return writeJSON(a.io.Out, snapshotsBody{Snapshots: ms})
			}
			return a.printManifests(ms)
		},
	}
	var wait time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Take a snapshot now (at a checkpoint) and print its manifest",
		Long: `Take a snapshot now and print its manifest once it is stored. The leader takes one snapshot at a time:
a second request waits for the first and returns it when nothing was written since. A paced snapshot of a large
store can take minutes (--wait).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			leader, err := a.findLeader(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := a.client.do(cmd.Context(), request{method: http.MethodPost, base: leader, path: pathSnapshots,
				timeout: wait})
			if err != nil {
				return err
			}
			if resp.status != http.StatusCreated && resp.status != http.StatusOK {
				return apiError(resp)
			}
			if a.jsonOut() {
				_, err := a.io.Out.Write(resp.body)
				return err
			}
			return a.printManifests([]json.RawMessage{resp.body})
		},
	}
	create.Flags().DurationVar(&wait, "wait", 10*time.Minute, "longest wait for the snapshot to be stored")
	cmd.AddCommand(list, create)
	return cmd
}

// findLeader returns the URL of the leader among --url, or through a follower's leader_url.
func (a *app) findLeader(ctx context.Context) (string, error) {
	probes := a.probeAll(ctx, a.urls)
	if i := pickLeader(probes); i >= 0 {
		return probes[i].url, nil
	}
	for _, p := range probes {
		if p.err == nil && p.status.LeaderURL != "" {
			if _, err := parseBase(p.status.LeaderURL); err == nil {
				return p.status.LeaderURL, nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return "", errNoLeader(probes, true)
}

// printManifests prints a table of manifests.
func (a *app) printManifests(ms []json.RawMessage) error {
	now := a.io.Now()
	tw := newTable(a.io.Out)
	row(tw, "SEQ", "KEYS", "SIZE", "CREATED", "AGE", "LEADER", "CHECKPOINT", "DIGEST")
	for _, raw := range ms {
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("ctl: bad manifest: %w", err)
		}
		cp := "-"
		if m.CheckpointSeq > 0 {
			cp = strconv.FormatUint(m.CheckpointSeq, 10)
		}
		row(tw, strconv.FormatUint(m.Seq, 10), strconv.FormatUint(m.Keys, 10), bytesText(m.Bytes),
			m.CreatedAt.UTC().Format(time.RFC3339), ago(now, m.CreatedAt), printable(m.Leader), cp, short(m.Digest, 16))
	}
	return tw.Flush()
}
