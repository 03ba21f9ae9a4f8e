package ctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// pathPromote is the follower's promotion endpoint.
const pathPromote = "/v1/promote"

func (a *app) promoteCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Make the follower at the first --url take over as leader",
		Long: `Ask the follower at the first --url to take over as leader (POST /v1/promote). It takes the leader lease as
soon as it is free (at once when no leader holds it, else once its holder stops renewing it), applies the log to
its end and leads. It fails when another node keeps the lease for --wait (stop the old leader first), when the
follower is not ready, and when the follower runs with --failover off.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait <= 0 || wait > 10*time.Minute {
				return usagef("--wait must be above 0 and at most 10m")
			}
			resp, err := a.client.do(cmd.Context(), request{method: http.MethodPost, base: a.first(), path: pathPromote,
				query: url.Values{"timeout": {wait.String()}}, timeout: a.client.waitTimeout(wait)})
			if err != nil {
				return err
			}
			if resp.status != http.StatusOK {
				return apiError(resp)
			}
			if a.jsonOut() {
				_, err := a.io.Out.Write(resp.body)
				return err
			}
			var st Status
			if err := json.Unmarshal(resp.body, &st); err != nil {
				return fmt.Errorf("ctl: bad status answer from %s: %w", resp.url, err)
			}
			tw := newTable(a.io.Out)
			row(tw, "NODE", "ROLE", "STATE", "EPOCH", "APPLIED")
			row(tw, printable(st.ID), st.Role, st.State, strconv.FormatUint(st.Epoch, 10),
				strconv.FormatUint(st.AppliedSeq, 10))
			return tw.Flush()
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "longest wait for the lease and the log's replay")
	return cmd
}
