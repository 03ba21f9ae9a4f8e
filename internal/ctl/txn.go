package ctl

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// The transaction command: POST /v1/txn (docs/api.md, "Transactions"). Operations come from a file or stdin in a line
// format (parseTxnLines), or as the API's own JSON body (--json, sent as is). Lines are sent in the binary encoding,
// which carries keys and values as raw bytes.

// maxTxnInput caps what txn reads from its input: more than any transaction the API takes (an entry of 1 MiB, values
// written as \xHH escapes four times as long), so that a wrong file fails fast instead of filling memory.
const maxTxnInput = 16 << 20

// txnOp is one operation read from the line format, with its input line (1-based).
type txnOp struct {
	del        bool
	key, value []byte
	ifMatch    uint64
	hasIfMatch bool
	ifAbsent   bool
	line       int
}

// verb is the operation's name in the line format.
func (o *txnOp) verb() string {
	if o.del {
		return "del"
	}
	return "put"
}

// The binary body of POST /v1/txn (Content-Type contentTypeTxn), as internal/api defines it: a version byte, then per
// operation an op byte, a precondition byte (if_match followed by uvarint(version)), uvarint(len(key)) key, and for
// a put uvarint(len(value)) value. The CLI does not import internal/api (it would bring the server's dependencies
// into the binary); a test pins this encoder byte for byte against api.AppendTxnBinary.
const (
	txnBinaryV1     = 1
	txnOpPut        = 1
	txnOpDelete     = 2
	txnCondNone     = 0
	txnCondIfMatch  = 1
	txnCondIfAbsent = 2
)

// appendTxnBinary appends the binary body of ops to dst.
func appendTxnBinary(dst []byte, ops []txnOp) []byte {
	dst = append(dst, txnBinaryV1)
	for _, o := range ops {
		if o.del {
			dst = append(dst, txnOpDelete)
		} else {
			dst = append(dst, txnOpPut)
		}
		switch {
		case o.hasIfMatch:
			dst = append(dst, txnCondIfMatch)
			dst = binary.AppendUvarint(dst, o.ifMatch)
		case o.ifAbsent:
			dst = append(dst, txnCondIfAbsent)
		default:
			dst = append(dst, txnCondNone)
		}
		dst = binary.AppendUvarint(dst, uint64(len(o.key)))
		dst = append(dst, o.key...)
		if !o.del {
			dst = binary.AppendUvarint(dst, uint64(len(o.value)))
			dst = append(dst, o.value...)
		}
	}
	return dst
}

// txnWord is one word of a line: its text with quotes and escapes resolved, and whether it was quoted.
type txnWord struct {
	text   string
	quoted bool
}

// splitTxnLine splits a line of the line format into words: runs of characters other than space and tab; a word in
// double quotes takes Go's escapes (\" \\ \n \t \xHH \u00e9 ...), a word in single quotes is taken literally. A bare
// word must not hold a quote or a backslash, and a quoted word ends at a space, a tab or the end of the line.
func splitTxnLine(line string) ([]txnWord, error) {
	var out []txnWord
	for i := 0; i < len(line); {
		c := line[i]
		switch c {
		case ' ', '\t':
			i++
			continue
		case '"', '\'':
			end := i + 1
			for end < len(line) && line[end] != c {
				if c == '"' && line[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(line) {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			lit := line[i : end+1]
			text := lit[1 : len(lit)-1]
			if c == '"' {
				var err error
				if text, err = strconv.Unquote(lit); err != nil {
					return nil, fmt.Errorf("bad escape in %s (Go's escapes: \\\" \\\\ \\n \\t \\xHH \\u00e9 ...)", lit)
				}
			}
			i = end + 1
			if i < len(line) && line[i] != ' ' && line[i] != '\t' {
				return nil, fmt.Errorf("text right after the closing quote of %s: quote the whole word", lit)
			}
			out = append(out, txnWord{text: text, quoted: true})
		default:
			end := i
			for end < len(line) && line[end] != ' ' && line[end] != '\t' {
				end++
			}
			w := line[i:end]
			if strings.ContainsAny(w, `"'\`) {
				return nil, fmt.Errorf("%s: a quote or backslash can only be inside a quoted word (\"...\" or '...')", w)
			}
			out = append(out, txnWord{text: w})
			i = end
		}
	}
	return out, nil
}

// parseTxnLines reads the line format: one operation per line,
//
//	put KEY VALUE [if-match=N | if-absent]
//	put KEY --b64 BASE64 [if-match=N | if-absent]
//	del KEY [if-match=N]
//
// (delete for del), words as splitTxnLine splits them; blank lines and lines starting with # are skipped. name is the
// input's name in errors, which wrap ErrUsage and say the line.
func parseTxnLines(name string, input []byte) ([]txnOp, error) {
	var ops []txnOp
	seen := map[string]int{} // key -> line
	lines := strings.Split(string(input), "\n")
	for i, line := range lines {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		bad := func(format string, args ...any) error {
			return usagef("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
		}
		if len(ops) == 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
			return nil, bad("JSON is not the line format: give --json to send the API's JSON body as is")
		}
		if !utf8.ValidString(line) {
			return nil, bad(`not UTF-8: write other bytes as \xHH in a "quoted" word, or use --b64`)
		}
		words, err := splitTxnLine(line)
		if err != nil {
			return nil, bad("%v", err)
		}
		o := txnOp{line: n}
		switch words[0].text {
		case "put":
		case "del", "delete":
			o.del = true
		default:
			return nil, bad("unknown operation %q: want put or del", words[0].text)
		}
		if len(words) < 2 {
			return nil, bad("%s needs a KEY", words[0].text)
		}
		o.key = []byte(words[1].text)
		rest := words[2:]
		if !o.del {
			switch {
			case len(rest) == 0:
				return nil, bad(`put needs a VALUE (write "" for an empty one)`)
			case rest[0].text == "--b64" && !rest[0].quoted:
				if len(rest) < 2 {
					return nil, bad("--b64 needs a BASE64 value")
				}
				v, err := base64.StdEncoding.DecodeString(rest[1].text)
				if err != nil {
					return nil, bad("--b64 %s: not standard base64 (with padding)", rest[1].text)
				}
				o.value, rest = v, rest[2:]
			default:
				o.value, rest = []byte(rest[0].text), rest[1:]
			}
		}
		for _, w := range rest {
			if err := o.condition(w); err != nil {
				return nil, bad("%v", err)
			}
		}
		if first, ok := seen[string(o.key)]; ok {
			return nil, bad("key %s already written at line %d: a transaction names each key once",
				strconv.Quote(string(o.key)), first)
		}
		seen[string(o.key)] = n
		ops = append(ops, o)
	}
	if len(ops) == 0 {
		return nil, usagef("%s: no operation: want lines such as put KEY VALUE or del KEY", name)
	}
	return ops, nil
}

// condition applies a condition word (if-match=N, if-absent) to o.
func (o *txnOp) condition(w txnWord) error {
	var cond string
	switch {
	case w.quoted:
	case w.text == "if-absent":
		if o.del {
			return fmt.Errorf("if-absent on a del can never hold")
		}
		o.ifAbsent, cond = true, w.text
	case strings.HasPrefix(w.text, "if-match="):
		v, err := strconv.ParseUint(strings.TrimPrefix(w.text, "if-match="), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: want if-match=VERSION, a whole number", w.text)
		}
		if o.hasIfMatch {
			return fmt.Errorf("if-match given twice")
		}
		o.ifMatch, o.hasIfMatch, cond = v, true, w.text
	}
	if cond == "" {
		after := "VALUE"
		if o.del {
			after = "KEY"
		}
		return fmt.Errorf("unexpected %s after the %s: only if-match=N or if-absent may follow (quote a word with spaces)",
			strconv.Quote(w.text), after)
	}
	if o.hasIfMatch && o.ifAbsent {
		return fmt.Errorf("if-match and if-absent exclude each other")
	}
	return nil
}

// txnOutput is txn's JSON output: the API's answer and its status (202: committed, but fewer sync followers than
// asked confirmed it in time).
type txnOutput struct {
	TxnResult
	Status int `json:"status"`
}

func (a *app) txnCmd() *cobra.Command {
	var file, idemKey string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "Commit puts and deletes of several keys atomically, read from --file or stdin",
		Long: `Commit several puts and deletes as one transaction: all of them at one version, or none. The operations
are read from --file (- for stdin), or from stdin when it is not given, one per line:

  put KEY VALUE [if-match=N | if-absent]
  put KEY --b64 BASE64 [if-match=N | if-absent]
  del KEY [if-match=N]

Words are separated by spaces or tabs. A word with spaces, quotes or backslashes is quoted: "..." takes Go's escapes
(\" \\ \n \t \xHH \u00e9), '...' is taken literally. --b64 takes the value in standard base64. Blank lines and lines
starting with # are skipped. A key appears once. With --json the input is the API's JSON body {"ops":[...]},
sent as is.

Sent to the first --url; a follower redirects it to the leader. Exit 6 if a condition failed, 5 if a del names a key
that does not exist; the error names the operation. Nothing is written then.`,
		Example: `  printf 'put user/1 "Ada Lovelace" if-absent\ndel session/9 if-match=41\n' | replikvctl txn
  replikvctl txn --file ops.txt -o json
  replikvctl txn --json --file body.json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, input, err := a.txnInput(file)
			if err != nil {
				return err
			}
			req := request{method: http.MethodPost, base: a.first(), path: pathTxn, body: input,
				header: http.Header{"Content-Type": {"application/json"}}}
			var ops []txnOp
			if !asJSON {
				if ops, err = parseTxnLines(name, input); err != nil {
					return err
				}
				req.body = appendTxnBinary(nil, ops)
				req.header.Set("Content-Type", contentTypeTxn)
			}
			setIdemKey(req.header, idemKey)
			return a.txn(cmd, req, name, ops)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the operations from this file (- = stdin, the default)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `the input is the API's JSON body {"ops":[...]}, sent as is`)
	addIdemFlag(cmd, &idemKey)
	return cmd
}

// txnInput reads txn's input: the file, or stdin for "" and "-". It returns the name errors give it.
func (a *app) txnInput(file string) (string, []byte, error) {
	r, name := a.io.In, "stdin"
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", nil, fmt.Errorf("ctl: txn: %w", err)
		}
		defer func() { _ = f.Close() }()
		r, name = f, file
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTxnInput+1))
	if err != nil {
		return "", nil, fmt.Errorf("ctl: txn: read %s: %w", name, err)
	}
	if len(b) > maxTxnInput {
		return "", nil, fmt.Errorf("ctl: txn: %s is longer than %d bytes", name, maxTxnInput)
	}
	return name, b, nil
}

// txn sends the transaction and prints the result. ops are the operations of the line format (nil with --json), to
// name the one an error answer blames by its line.
func (a *app) txn(cmd *cobra.Command, req request, name string, ops []txnOp) error {
	resp, err := a.client.do(cmd.Context(), req)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK && resp.status != http.StatusAccepted {
		return txnError(resp, name, ops)
	}
	var res TxnResult
	if err := json.Unmarshal(resp.body, &res); err != nil {
		return fmt.Errorf("ctl: %s: bad JSON answer: %w", resp.url, err)
	}
	if a.jsonOut() {
		return writeJSON(a.io.Out, txnOutput{TxnResult: res, Status: resp.status})
	}
	fmt.Fprintf(a.io.Out, "committed %d operation(s) at version %d%s\n", res.Ops, res.Version, replayedNote(resp))
	if resp.status == http.StatusAccepted && res.Replicated != nil {
		fmt.Fprintf(a.io.Err, "warning: committed, but only %d follower(s) confirmed it within the leader's --sync-timeout\n",
			*res.Replicated)
	}
	return nil
}

// txnError is the error of a refused transaction. When the answer blames one operation, the message names it: its
// index, what it is and its line (from ops), its key and the key's current version.
func txnError(resp *response, name string, ops []txnOp) error {
	e := newAPIError(resp)
	var body txnErrorBody
	_ = json.Unmarshal(resp.body, &body)
	if body.Op == nil {
		if resp.status == http.StatusNotFound {
			// Not a delete of an absent key (that names its operation) but the endpoint: not exit 5.
			e.Hint = "this node does not serve POST " + pathTxn + " (a server older than transactions?)"
			return fmt.Errorf("ctl: %s: %v", resp.url, e)
		}
		return fmt.Errorf("ctl: %s: %w", resp.url, e)
	}
	i := *body.Op
	what := fmt.Sprintf("ops[%d]", i)
	var op *txnOp
	if i >= 0 && i < len(ops) {
		op = &ops[i]
		what += " " + op.verb()
	}
	switch {
	case body.Key != nil:
		what += " " + strconv.Quote(*body.Key)
	case op != nil && len(op.key) <= 64:
		what += " " + strconv.Quote(string(op.key))
	}
	if op != nil {
		what += fmt.Sprintf(" (%s:%d)", name, op.line)
	}
	msg := strings.TrimPrefix(e.Message, fmt.Sprintf("ops[%d]: ", i))
	if body.Version != nil && !strings.Contains(msg, strconv.FormatUint(*body.Version, 10)) {
		msg += fmt.Sprintf(" (current version %d)", *body.Version)
	}
	e.Message = what + ": " + msg
	if resp.status == http.StatusPreconditionFailed || resp.status == http.StatusNotFound {
		e.Hint = "nothing was written"
	}
	return fmt.Errorf("ctl: %s: %w", resp.url, e)
}
