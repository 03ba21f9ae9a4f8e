package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// EnvPrefix prefixes the environment variables that set the global flags, as for the binaries: REPLIKV_ + the flag
// name in upper case with '-' as '_' (--url is REPLIKV_URL). A flag on the command line wins.
const EnvPrefix = "REPLIKV_"

// EnvToken is the environment variable holding the bearer token. There is no token flag: a flag's value shows in
// process listings. --token-file (REPLIKV_TOKEN_FILE) wins over it.
const EnvToken = "REPLIKV_TOKEN"

// defaultURL is the leader's default --http-addr.
const defaultURL = "http://127.0.0.1:8080"

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// IO is what a run of the CLI uses of its process. Std returns the real one; tests pass buffers.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	// Getenv reads the environment.
	Getenv func(string) string
	// IsTerminal reports whether w is a terminal (watch draws a progress bar only there).
	IsTerminal func(w io.Writer) bool
	// Now is the clock (ages in status, rates in watch).
	Now func() time.Time
}

// Std is the process's own IO.
func Std() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, IsTerminal: isTerminal, Now: time.Now}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// app is one run: the global settings, and the client built from them once the flags are parsed.
type app struct {
	io IO

	urls      []string
	tokenFile string
	tls       TLSOptions
	output    string
	timeout   time.Duration

	client *Client
}

// Main runs replikvctl with args (without the program name) and returns the exit code. Errors go to io.Err as
// "replikvctl: <error>"; ctx ends the run (SIGINT).
func Main(ctx context.Context, args []string, io IO) int {
	err := Run(ctx, args, io)
	if err != nil {
		fmt.Fprintf(io.Err, "error: %v\n", err)
		if errors.Is(err, ErrUsage) {
			fmt.Fprintln(io.Err, "Run 'replikvctl --help' for usage.")
		}
	}
	return ExitCode(err)
}

// Run runs replikvctl with args; ExitCode maps its error.
func Run(ctx context.Context, args []string, io IO) error {
	a := &app{io: io}
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	ran := false
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		ran = true
		return a.setup(cmd)
	}
	err := root.ExecuteContext(ctx)
	if a.client != nil {
		a.client.Close()
	}
	if err != nil && !ran && !errors.Is(err, ErrUsage) {
		// Everything that fails before a command runs is the command line's fault (cobra's own errors).
		err = fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return err
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "replikvctl",
		Short: "Operate a replikv cluster through any node's HTTP API",
		Long: `replikvctl talks to the HTTP API of replikv nodes.

--url (REPLIKV_URL) names one or more nodes, comma-separated or repeated; the first one answers key-value
commands, and status and verify use all of them to find the leader and reach the followers. The bearer token comes
from REPLIKV_TOKEN or --token-file, never from a flag value. Every global flag can also be set by REPLIKV_ + its
name in upper case ('-' as '_').

Exit codes: 0 ok; 1 error; 2 usage; 3 verify found a digest mismatch; 4 a node could not be reached or located;
5 key not found; 6 precondition failed; 7 verify found no common sequence; 8 a write's outcome is unknown (read it
back before retrying); 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringSliceVar(&a.urls, "url", []string{defaultURL}, "node API URLs, comma-separated or repeated (env REPLIKV_URL)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token (env REPLIKV_TOKEN_FILE; else the token is read from REPLIKV_TOKEN)")
	pf.StringVar(&a.tls.CACert, "cacert", "", "PEM bundle of CAs to trust for https:// URLs instead of the system's")
	pf.StringVar(&a.tls.Cert, "cert", "", "PEM client certificate for mutual TLS (with --key)")
	pf.StringVar(&a.tls.Key, "key", "", "PEM private key of --cert")
	pf.BoolVar(&a.tls.InsecureSkipVerify, "insecure-skip-verify", false, "accept any server certificate (testing only)")
	pf.StringVarP(&a.output, "output", "o", outputTable, "output format: table or json")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each request (0 = none); waits asked of the server are added")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputTable, outputJSON},
		cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", ErrUsage, err) })

	root.AddCommand(a.statusCmd(), a.getCmd(), a.putCmd(), a.delCmd(), a.txnCmd(), a.listCmd(), a.snapshotsCmd(),
		a.promoteCmd(), a.verifyCmd(), a.watchCmd())
	return root
}

// setup fills unset global flags from the environment, checks them, and builds the client.
func (a *app) setup(cmd *cobra.Command) error {
	var envErr error
	cmd.Root().PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || envErr != nil {
			return
		}
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := a.io.Getenv(name)
		if v == "" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			envErr = sv.Replace(splitList(v))
		} else {
			envErr = f.Value.Set(v)
		}
		if envErr != nil {
			envErr = usagef("%s: %v", name, envErr)
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := a.checkOutput(); err != nil {
		return err
	}
	if a.timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	a.urls = splitList(strings.Join(a.urls, ","))
	if len(a.urls) == 0 {
		return usagef("--url: no node URL")
	}
	for _, u := range a.urls {
		if _, err := parseBase(u); err != nil {
			return err
		}
	}
	token, err := a.token()
	if err != nil {
		return err
	}
	if a.client != nil {
		a.client.Close() // setup runs again for shell completion
	}
	a.client, err = NewClient(a.tls, token, a.timeout)
	return err
}

// checkOutput checks the -o format.
func (a *app) checkOutput() error {
	if a.output != outputTable && a.output != outputJSON {
		return usagef("-o %q: want table or json", a.output)
	}
	return nil
}

// token reads the bearer token: --token-file (or REPLIKV_TOKEN_FILE), else REPLIKV_TOKEN, else none.
func (a *app) token() (string, error) {
	if a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return "", fmt.Errorf("ctl: --token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("ctl: --token-file %s is empty", a.tokenFile)
		}
		return t, nil
	}
	return strings.TrimSpace(a.io.Getenv(EnvToken)), nil
}

// splitList splits comma-separated values, dropping empty ones.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// jsonOut reports whether -o json was asked for.
func (a *app) jsonOut() bool { return a.output == outputJSON }

// first is the URL key-value commands talk to.
func (a *app) first() string { return a.urls[0] }

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
		return nil
	}
}

// rangeArgs is cobra.RangeArgs with a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
		return nil
	}
}
