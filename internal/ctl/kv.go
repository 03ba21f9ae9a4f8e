package ctl

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// readFlags are the consistency parameters of a read (docs/api.md, "Read consistency").
type readFlags struct {
	consistency string
	minSeq      uint64
	wait        time.Duration
}

func (f *readFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.consistency, "consistency", "", "eventual or strong (followers: wait for every write the log holds)")
	cmd.Flags().Uint64Var(&f.minSeq, "min-seq", 0, "first wait until the node has applied this sequence")
	cmd.Flags().DurationVar(&f.wait, "wait", 0, "longest wait of a strong or --min-seq read on the server (default the server's, 5s)")
	_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions([]string{"eventual", "strong"},
		cobra.ShellCompDirectiveNoFileComp))
}

// query returns the read's query parameters.
func (f *readFlags) query() (url.Values, error) {
	q := url.Values{}
	switch f.consistency {
	case "":
	case "eventual", "strong":
		q.Set("consistency", f.consistency)
	default:
		return nil, usagef("--consistency %q: want eventual or strong", f.consistency)
	}
	if f.minSeq > 0 {
		q.Set("min_seq", strconv.FormatUint(f.minSeq, 10))
	}
	if f.wait < 0 {
		return nil, usagef("--wait must not be negative")
	}
	if f.wait > 0 {
		q.Set("timeout", f.wait.String())
	}
	return q, nil
}

// serverWait is how long the server may wait before answering the read.
func (f *readFlags) serverWait() time.Duration {
	if f.consistency != "strong" && f.minSeq == 0 {
		return 0
	}
	if f.wait > 0 {
		return f.wait
	}
	return 5 * time.Second
}

// keyPath is the escaped path of a key.
func keyPath(key string) string {
	return pathKVPrefix + url.PathEscape(key)
}

// getResult is get's JSON output.
type getResult struct {
	Key     string `json:"key"`
	Version uint64 `json:"version"`
	Seq     uint64 `json:"seq"`
	Value   []byte `json:"value"` // base64, as in list
}

func (a *app) getCmd() *cobra.Command {
	var rf readFlags
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a key's value (raw bytes; -o json: key, version, seq and the value in base64)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := rf.query()
			if err != nil {
				return err
			}
			resp, err := a.client.do(cmd.Context(), request{method: http.MethodGet, base: a.first(),
				path: keyPath(args[0]), query: q, timeout: a.client.waitTimeout(rf.serverWait())})
			if err != nil {
				return err
			}
			if resp.status != http.StatusOK {
				return apiError(resp)
			}
			if !a.jsonOut() {
				_, err := a.io.Out.Write(resp.body)
				return err
			}
			version, _ := strconv.ParseUint(strings.Trim(resp.header.Get("ETag"), `"`), 10, 64)
			return writeJSON(a.io.Out, getResult{Key: args[0], Version: version, Seq: resp.seq(), Value: resp.body})
		},
	}
	rf.add(cmd)
	return cmd
}

// writeFlags are the preconditions of a write.
type writeFlags struct {
	ifMatch  uint64
	ifAbsent bool
	idemKey  string
}

func (f *writeFlags) add(cmd *cobra.Command, absent bool) {
	cmd.Flags().Uint64Var(&f.ifMatch, "if-match", 0, "only if the key's current version is this one (else exit 6)")
	if absent {
		cmd.Flags().BoolVar(&f.ifAbsent, "if-absent", false, "only if the key does not exist (else exit 6)")
	}
	addIdemFlag(cmd, &f.idemKey)
}

// addIdemFlag registers --idempotency-key, sent as the Idempotency-Key header.
func addIdemFlag(cmd *cobra.Command, key *string) {
	cmd.Flags().StringVar(key, "idempotency-key", "", "send the write with this Idempotency-Key: run again with the same key "+
		"and input, it is applied at most once (its first answer is repeated)")
}

// setIdemKey sets the Idempotency-Key header when key is not empty.
func setIdemKey(h http.Header, key string) {
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
}

// header returns the precondition headers.
func (f *writeFlags) header(cmd *cobra.Command) (http.Header, error) {
	if f.ifAbsent && cmd.Flags().Changed("if-match") {
		return nil, usagef("--if-match and --if-absent exclude each other")
	}
	h := http.Header{}
	if cmd.Flags().Changed("if-match") {
		h.Set("If-Match", `"`+strconv.FormatUint(f.ifMatch, 10)+`"`)
	}
	if f.ifAbsent {
		h.Set("If-None-Match", "*")
	}
	setIdemKey(h, f.idemKey)
	return h, nil
}

// writeOutput is the JSON output of put and del: the API's answer and its status (202: committed, but fewer sync
// followers than asked confirmed it in time).
type writeOutput struct {
	WriteResult
	Status int `json:"status"`
}

// write sends a PUT or DELETE to the first URL (a follower redirects it to the leader) and prints the result.
func (a *app) write(cmd *cobra.Command, method, key string, body []byte, hdr http.Header) error {
	resp, err := a.client.do(cmd.Context(), request{method: method, base: a.first(), path: keyPath(key), body: body,
		header: hdr})
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK && resp.status != http.StatusAccepted {
		return apiError(resp)
	}
	var res WriteResult
	if err := json.Unmarshal(resp.body, &res); err != nil {
		return fmt.Errorf("ctl: %s: bad JSON answer: %w", resp.url, err)
	}
	if a.jsonOut() {
		return writeJSON(a.io.Out, writeOutput{WriteResult: res, Status: resp.status})
	}
	verb := "put"
	if method == http.MethodDelete {
		verb = "deleted"
	}
	fmt.Fprintf(a.io.Out, "%s %s version %d%s\n", verb, printable(res.Key), res.Version, replayedNote(resp))
	if resp.status == http.StatusAccepted && res.Replicated != nil {
		fmt.Fprintf(a.io.Err, "warning: committed, but only %d follower(s) confirmed it within the leader's --sync-timeout\n",
			*res.Replicated)
	}
	return nil
}

func (a *app) putCmd() *cobra.Command {
	var wf writeFlags
	var file string
	cmd := &cobra.Command{
		Use:   "put KEY [VALUE]",
		Short: "Write a key: the value from the argument, --file, or stdin",
		Long: `Write a key. The value is the VALUE argument, or the contents of --file (- for stdin), or stdin when
neither is given. At most 524288 bytes. Sent to the first --url; a follower redirects it to the leader.`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			hdr, err := wf.header(cmd)
			if err != nil {
				return err
			}
			value, err := a.value(args, file)
			if err != nil {
				return err
			}
			return a.write(cmd, http.MethodPut, args[0], value, hdr)
		},
	}
	wf.add(cmd, true)
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the value from this file (- = stdin)")
	return cmd
}

// replayedNote is what a write's line adds when the answer repeats an earlier write with the same Idempotency-Key.
func replayedNote(resp *response) string {
	if resp.header.Get("Idempotent-Replayed") == "true" {
		return " (already written with this idempotency key; not written again)"
	}
	return ""
}

// value reads put's value from its sources.
func (a *app) value(args []string, file string) ([]byte, error) {
	if len(args) == 2 {
		if file != "" {
			return nil, usagef("put: a VALUE argument and --file exclude each other")
		}
		return []byte(args[1]), nil
	}
	r, name := a.io.In, "stdin"
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("ctl: put: %w", err)
		}
		defer func() { _ = f.Close() }()
		r, name = f, file
	}
	b, err := io.ReadAll(io.LimitReader(r, maxValueLen+1))
	if err != nil {
		return nil, fmt.Errorf("ctl: put: read %s: %w", name, err)
	}
	if len(b) > maxValueLen {
		return nil, fmt.Errorf("ctl: put: the value in %s is longer than %d bytes", name, maxValueLen)
	}
	return b, nil
}

func (a *app) delCmd() *cobra.Command {
	var wf writeFlags
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete a key (exit 5 if it does not exist)",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hdr, err := wf.header(cmd)
			if err != nil {
				return err
			}
			return a.write(cmd, http.MethodDelete, args[0], nil, hdr)
		},
	}
	wf.add(cmd, false)
	return cmd
}

func (a *app) listCmd() *cobra.Command {
	var rf readFlags
	var after string
	var limit, pageSize int
	var values bool
	cmd := &cobra.Command{
		Use:     "list [PREFIX]",
		Aliases: []string{"ls"},
		Short:   "List keys in byte order (all pages, or --limit)",
		Long: `List the keys that start with PREFIX in byte order, reading page after page until the end (or --limit
keys). Pages after the first are read at least at the first page's sequence (min_seq), so a listing never goes
back in time even behind a load balancer.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := rf.query()
			if err != nil {
				return err
			}
			if pageSize < 1 || pageSize > 10000 || limit < 0 {
				return usagef("--page-size must be 1 to 10000 and --limit not negative")
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			return a.list(cmd, q, rf.serverWait(), prefix, after, limit, pageSize, values)
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVar(&after, "after", "", "start after this key")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many keys (0 = all)")
	cmd.Flags().IntVar(&pageSize, "page-size", 1000, "keys per request (1 to 10000)")
	cmd.Flags().BoolVar(&values, "values", false, "print the values too")
	return cmd
}

// listTail is the end of list's JSON output, after the items: seq is the first page's sequence, next the key to
// continue after when --limit stopped the listing ("" at the end).
type listTail struct {
	Next string `json:"next"`
	Seq  uint64 `json:"seq"`
}

// list reads every page and prints the items as they come: a table flushed per page, or one JSON document
// {"items":[...],"next","seq"} streamed item by item, so that a listing of any size holds one page in memory.
func (a *app) list(cmd *cobra.Command, q url.Values, wait time.Duration, prefix, after string, limit, pageSize int,
	values bool) error {
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if values {
		q.Set("values", "true")
	}
	out := a.io.Out
	var firstSeq uint64
	emitted := 0
	next := after
	if a.jsonOut() {
		fmt.Fprint(out, `{"items":[`)
	}
	for page := 0; ; page++ {
		n := pageSize
		if limit > 0 {
			n = min(n, limit-emitted)
		}
		q.Set("limit", strconv.Itoa(n))
		if next != "" {
			q.Set("after", next)
		} else {
			q.Del("after")
		}
		var p listPage
		if _, err := a.client.getJSON(cmd.Context(), a.first(), pathKV, q, wait, &p); err != nil {
			if a.jsonOut() {
				fmt.Fprintln(out, "]}") // close the document; the error says it is incomplete
			}
			return err
		}
		if page == 0 {
			firstSeq = p.Seq
			// Later pages come from a state at least as new as the first page's.
			if ms := q.Get("min_seq"); ms == "" || mustUint(ms) < firstSeq {
				q.Set("min_seq", strconv.FormatUint(firstSeq, 10))
				wait = max(wait, 5*time.Second)
			}
		}
		if err := a.printItems(out, p.Items, emitted, values); err != nil {
			return err
		}
		emitted += len(p.Items)
		next = p.Next
		if next == "" || (limit > 0 && emitted >= limit) || len(p.Items) == 0 {
			break
		}
	}
	if a.jsonOut() {
		tail, _ := json.Marshal(listTail{Next: next, Seq: firstSeq})
		fmt.Fprintf(out, "],%s\n", tail[1:])
	}
	return nil
}

// printItems prints one page: table rows (KEY VERSION [VALUE]), or JSON items after the emitted ones.
func (a *app) printItems(out io.Writer, items []listItem, emitted int, values bool) error {
	if a.jsonOut() {
		for i, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return fmt.Errorf("ctl: encode output: %w", err)
			}
			if emitted+i > 0 {
				fmt.Fprint(out, ",")
			}
			fmt.Fprintf(out, "\n  %s", b)
		}
		return nil
	}
	tw := newTable(out)
	if emitted == 0 {
		if values {
			row(tw, "KEY", "VERSION", "VALUE")
		} else {
			row(tw, "KEY", "VERSION")
		}
	}
	for _, it := range items {
		cells := []string{printable(it.Key), strconv.FormatUint(it.Version, 10)}
		if values {
			v := ""
			if it.Value != nil {
				b, err := base64.StdEncoding.DecodeString(*it.Value)
				if err != nil {
					return fmt.Errorf("ctl: list: bad base64 value of %s: %w", printable(it.Key), err)
				}
				v = string(b)
			}
			cells = append(cells, printable(v))
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// mustUint parses a number the CLI itself formatted.
func mustUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
