package ctl

import (
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// CheckArgs reports whether args (a command line without the program name) is one replikvctl accepts: a known
// command, flags that command takes with values of their types, a known -o, and as many arguments as the command
// wants. Nothing runs, nothing is read from the environment, and no file named by a flag is opened. A command line
// that asks for help is accepted. Errors wrap ErrUsage. The documentation check (internal/docscheck) runs every
// replikvctl command line of the documentation through it.
func CheckArgs(args []string) error {
	a := &app{}
	root := a.newRoot()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	cmd, rest, err := root.Find(args)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	cmd.InitDefaultHelpFlag()
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUsage, cmd.CommandPath(), err)
	}
	if help, _ := cmd.Flags().GetBool("help"); help {
		return nil
	}
	if !cmd.Runnable() {
		return usagef("%s: needs a subcommand", cmd.CommandPath())
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		if errors.Is(err, ErrUsage) {
			return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
		}
		return fmt.Errorf("%w: %s: %w", ErrUsage, cmd.CommandPath(), err)
	}
	return a.checkOutput()
}

// CommandFlags lists every command of replikvctl by its path ("replikvctl snapshots create"), shell completion's
// included, with the names of the flags the command defines itself, sorted; the global flags are those of
// "replikvctl". The documentation check uses it to find commands and flags the reference does not describe.
func CommandFlags() map[string][]string {
	root := (&app{}).newRoot()
	root.InitDefaultCompletionCmd()
	out := map[string][]string{}
	var walk func(c *cobra.Command, fs *pflag.FlagSet)
	walk = func(c *cobra.Command, fs *pflag.FlagSet) {
		names := []string{}
		fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		sort.Strings(names)
		out[c.CommandPath()] = names
		for _, sub := range c.Commands() {
			if !sub.Hidden {
				walk(sub, sub.LocalNonPersistentFlags())
			}
		}
	}
	walk(root, root.PersistentFlags())
	return out
}
