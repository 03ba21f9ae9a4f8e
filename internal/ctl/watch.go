package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// rateWindow is how far back watch looks to compute rates.
const rateWindow = 10 * time.Second

// Sample is one observation of a node's onboarding, watch's JSON output (one object per line).
type Sample struct {
	Time       time.Time `json:"time"`
	ID         string    `json:"id"`
	State      string    `json:"state"`
	AppliedSeq uint64    `json:"applied_seq"`
	Lag        uint64    `json:"lag"`
	BytesDone  int64     `json:"bytes_done,omitempty"`
	BytesTotal int64     `json:"bytes_total,omitempty"`
	TargetSeq  uint64    `json:"target_seq,omitempty"`
	// Rate is bytes per second while restoring, applied entries per second while catching up; 0 = not known yet.
	Rate float64 `json:"rate"`
	// ETASeconds is the estimated time to the end of the phase (the download, or the catch-up at the rate the lag
	// shrinks); absent when unknown (no rate yet, or a lag that does not shrink).
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	Error      string   `json:"error,omitempty"`
	// Source is "node" (the node's own status, with byte progress) or "leader" (its heartbeat in the leader's
	// follower list: state, applied sequence and lag only).
	Source string `json:"source"`
}

func (a *app) watchCmd() *cobra.Command {
	var interval, giveUp, maxWait time.Duration
	cmd := &cobra.Command{
		Use:   "watch [FOLLOWER]",
		Short: "Show a follower's onboarding live: bytes restored, catch-up sequence, rate, ETA",
		Long: `Show a follower's onboarding live until it is ready: the snapshot bytes restored, then the catch-up
sequence, with the rate and the time left. FOLLOWER is a node URL or a follower id (default: the first --url). An id
is looked up in the leader's follower list; unless the list gives its URL, only its heartbeat is known (state,
applied sequence and lag, no byte progress). On a terminal it draws a progress bar, otherwise one line per poll;
-o json prints one JSON object per poll.

Exit code 0 once the follower is ready; 4 when it could not be reached for --give-up.`,
		Args: rangeArgs(0, 1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 || a.setup(cmd) != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			leader, err := a.findLeader(cmd.Context())
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			fs, _ := a.client.Followers(cmd.Context(), leader)
			var ids []string
			for _, f := range fs {
				ids = append(ids, f.ID+"\t"+f.State)
			}
			return ids, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 || giveUp <= 0 || maxWait < 0 {
				return usagef("--interval and --give-up must be above 0, --max-wait not negative")
			}
			ctx := cmd.Context()
			if maxWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeoutCause(ctx, maxWait, fmt.Errorf("ctl: watch: not ready within --max-wait %s", maxWait))
				defer cancel()
			}
			name := a.first()
			if len(args) == 1 {
				name = args[0]
			}
			src, err := a.watchSource(ctx, name)
			if err != nil {
				return err
			}
			return a.watch(ctx, src, interval, giveUp)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between two polls")
	cmd.Flags().DurationVar(&giveUp, "give-up", 30*time.Second, "stop when the node cannot be reached for this long")
	cmd.Flags().DurationVar(&maxWait, "max-wait", 0, "stop with an error when not ready after this long (0 = no limit)")
	return cmd
}

// poller reads one observation of the watched node.
type poller func(ctx context.Context) (Sample, error)

// watchSource returns how to observe name: a URL is polled for its status; an id is looked up in the leader's list,
// and polled through its URL when the list gives one, else through the list itself.
func (a *app) watchSource(ctx context.Context, name string) (poller, error) {
	fromNode := func(url string) poller {
		return func(ctx context.Context) (Sample, error) {
			st, err := a.client.Status(ctx, url)
			if err != nil {
				return Sample{}, err
			}
			return Sample{ID: st.ID, State: st.State, AppliedSeq: st.AppliedSeq, Lag: st.Lag,
				BytesDone: st.Progress.BytesDone, BytesTotal: st.Progress.BytesTotal, TargetSeq: st.Progress.TargetSeq,
				Error: st.Error, Source: sourceNode}, nil
		}
	}
	if strings.Contains(name, "://") {
		if _, err := parseBase(name); err != nil {
			return nil, err
		}
		return fromNode(name), nil
	}
	leader, err := a.findLeader(ctx)
	if err != nil {
		return nil, err
	}
	fs, err := a.client.Followers(ctx, leader)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if f.ID == name && f.URL != "" {
			return fromNode(f.URL), nil
		}
	}
	return func(ctx context.Context) (Sample, error) {
		fs, err := a.client.Followers(ctx, leader)
		if err != nil {
			return Sample{}, err
		}
		for _, f := range fs {
			if f.ID == name {
				return Sample{ID: f.ID, State: f.State, AppliedSeq: f.AppliedSeq, Lag: f.Lag, Source: sourceLeader}, nil
			}
		}
		return Sample{ID: name, State: "unknown", Error: "not in the leader's follower list (yet)", Source: sourceLeader}, nil
	}, nil
}

// watch polls until the node is ready, ctx ends, or the node stayed unreachable for giveUp.
func (a *app) watch(ctx context.Context, poll poller, interval, giveUp time.Duration) error {
	var view watchView
	switch {
	case a.jsonOut():
		view = &jsonView{w: a.io.Out}
	case a.io.IsTerminal(a.io.Out):
		view = &barView{w: a.io.Out}
	default:
		view = &lineView{w: a.io.Out}
	}
	defer view.close()
	var est estimator
	var failingSince time.Time
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		s, err := poll(ctx)
		now := a.io.Now()
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil:
			if failingSince.IsZero() {
				failingSince = now
			}
			if now.Sub(failingSince) >= giveUp {
				return fmt.Errorf("ctl: watch: no answer for %s: %w", shortDuration(now.Sub(failingSince)), err)
			}
			view.problem(now, err)
		default:
			failingSince = time.Time{}
			s.Time = now
			est.observe(&s)
			if err := view.show(s); err != nil {
				return err
			}
			if s.State == stateReady {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); cause != ctx.Err() {
				return cause
			}
			return fmt.Errorf("ctl: watch: %w", ctx.Err())
		case <-ticker.C:
		}
	}
}

// estimator derives rates and ETAs from the samples of the last rateWindow.
type estimator struct {
	history []Sample
}

// observe fills s.Rate and s.ETASeconds from the samples of the same state within rateWindow.
func (e *estimator) observe(s *Sample) {
	if n := len(e.history); n > 0 && e.history[n-1].State != s.State {
		e.history = e.history[:0]
	}
	e.history = append(e.history, *s)
	for len(e.history) > 1 && s.Time.Sub(e.history[0].Time) > rateWindow {
		e.history = e.history[1:]
	}
	old := e.history[0]
	dt := s.Time.Sub(old.Time).Seconds()
	if dt <= 0 {
		return
	}
	var left float64
	switch s.State {
	case stateRestoring:
		if s.BytesDone < old.BytesDone {
			return
		}
		s.Rate = float64(s.BytesDone-old.BytesDone) / dt
		left = float64(max(s.BytesTotal-s.BytesDone, 0)) / s.Rate
	case stateCatchingUp:
		if s.AppliedSeq < old.AppliedSeq {
			return
		}
		s.Rate = float64(s.AppliedSeq-old.AppliedSeq) / dt
		// The log grows meanwhile: what ends the catch-up is the lag shrinking.
		shrink := (float64(old.Lag) - float64(s.Lag)) / dt
		if shrink <= 0 {
			return
		}
		left = float64(s.Lag) / shrink
	default:
		return
	}
	if s.Rate > 0 {
		s.ETASeconds = &left
	}
}

// watchView shows samples.
type watchView interface {
	show(s Sample) error
	problem(now time.Time, err error)
	close()
}

// jsonView prints one JSON object per sample.
type jsonView struct{ w io.Writer }

func (v *jsonView) show(s Sample) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("ctl: encode output: %w", err)
	}
	_, err = fmt.Fprintf(v.w, "%s\n", b)
	return err
}

func (v *jsonView) problem(now time.Time, err error) {
	b, _ := json.Marshal(struct {
		Time  time.Time `json:"time"`
		Error string    `json:"error"`
	}{now, err.Error()})
	_, _ = fmt.Fprintf(v.w, "%s\n", b)
}

func (v *jsonView) close() {}

// lineView prints one plain line per sample, for logs and pipes.
type lineView struct{ w io.Writer }

func (v *lineView) show(s Sample) error {
	_, err := fmt.Fprintln(v.w, s.Time.Format("15:04:05")+" "+describe(s))
	return err
}

func (v *lineView) problem(now time.Time, err error) {
	_, _ = fmt.Fprintf(v.w, "%s unreachable: %v\n", now.Format("15:04:05"), err)
}

func (v *lineView) close() {}

// describe is a one-line account of a sample.
func describe(s Sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", printable(s.ID), s.State)
	switch {
	case s.State == stateRestoring && s.Source == sourceNode:
		fmt.Fprintf(&b, " snapshot %s / %s", bytesText(s.BytesDone), bytesText(s.BytesTotal))
		if s.BytesTotal > 0 {
			fmt.Fprintf(&b, " (%d%%)", s.BytesDone*100/s.BytesTotal)
		}
		if s.Rate > 0 {
			fmt.Fprintf(&b, " %s/s", bytesText(int64(s.Rate)))
		}
	case s.State == stateCatchingUp:
		fmt.Fprintf(&b, " seq %d", s.AppliedSeq)
		if s.TargetSeq > 0 {
			fmt.Fprintf(&b, " / %d", s.TargetSeq)
		}
		fmt.Fprintf(&b, " (lag %d)", s.Lag)
		if s.Rate > 0 {
			fmt.Fprintf(&b, " %.0f entries/s", s.Rate)
		}
	default:
		fmt.Fprintf(&b, " at seq %d (lag %d)", s.AppliedSeq, s.Lag)
	}
	if s.ETASeconds != nil {
		fmt.Fprintf(&b, " ETA %s", shortDuration(time.Duration(*s.ETASeconds*float64(time.Second))))
	}
	if s.Error != "" {
		fmt.Fprintf(&b, ": %s", s.Error)
	}
	return b.String()
}

// barView draws a progress bar per phase on a terminal: the bytes of the snapshot while restoring, the entries up
// to the log's end while catching up. Other states print a line.
type barView struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	phase string
	base  uint64 // applied sequence when the catch-up bar started
}

func (v *barView) show(s Sample) error {
	if s.State != v.phase {
		v.finish()
		v.phase = s.State
		switch {
		case s.State == stateRestoring && s.Source == sourceNode:
			v.bar = v.newBar(max(s.BytesTotal, 1))
		case s.State == stateCatchingUp:
			v.base = s.AppliedSeq
			v.bar = v.newBar(int64(max(s.AppliedSeq+s.Lag, s.TargetSeq, v.base+1) - v.base))
		}
	}
	if v.bar == nil {
		_, err := fmt.Fprintln(v.w, describe(s))
		return err
	}
	// Max and value first, then the description, whose render shows all three.
	if s.State == stateRestoring {
		if s.BytesTotal > 0 && s.BytesTotal != v.bar.GetMax64() {
			v.bar.ChangeMax64(s.BytesTotal)
		}
		if err := v.bar.Set64(s.BytesDone); err != nil {
			return err
		}
	} else {
		if end := int64(max(s.AppliedSeq+s.Lag, s.TargetSeq, v.base+1) - v.base); end != v.bar.GetMax64() {
			v.bar.ChangeMax64(end)
		}
		if err := v.bar.Set64(int64(s.AppliedSeq - min(v.base, s.AppliedSeq))); err != nil {
			return err
		}
	}
	v.bar.Describe(describe(s))
	return nil
}

// newBar starts a bar of total units (bytes, or log entries). The bar shows the percentage; the description
// after it holds the figures, the rate and the ETA, from the node's own progress: the bar's own rate would follow
// the polls, and its ETA cannot see the log grow.
func (v *barView) newBar(total int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(v.w),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
}

func (v *barView) problem(now time.Time, err error) {
	if v.bar != nil {
		v.bar.Describe("unreachable: " + err.Error())
		_ = v.bar.RenderBlank()
		return
	}
	_, _ = fmt.Fprintf(v.w, "%s unreachable: %v\n", now.Format("15:04:05"), err)
}

// finish ends the current bar on its own line.
func (v *barView) finish() {
	if v.bar != nil {
		_ = v.bar.Exit()
		_, _ = fmt.Fprintln(v.w)
		v.bar = nil
	}
}

func (v *barView) close() { v.finish() }
