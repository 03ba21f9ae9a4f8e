package docscheck

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/replikv/replikv/internal/config"
	"github.com/replikv/replikv/internal/ctl"
)

// Problem is one thing in a document that does not match the repository.
type Problem struct {
	File string // the document, relative to the repository root
	Line int    // 1-based; 0 when the problem is the document's as a whole
	Msg  string
}

// String returns the problem as file:line: message.
func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Repo is what the documentation is checked against: the names the repository defines.
type Repo struct {
	// Root is the repository's root directory.
	Root string
	// LeaderFlags and FollowerFlags are the binaries' flag names, without dashes.
	LeaderFlags, FollowerFlags map[string]bool
	// DemoFlags are the flags of cmd/demo.
	DemoFlags map[string]bool
	// MakeTargets are the Makefile's targets.
	MakeTargets map[string]bool
	// ComposeSubcommands are the subcommands of scripts/compose.sh.
	ComposeSubcommands map[string]bool
	// Tests are the names of the Test, Benchmark and Fuzz functions of the repository.
	Tests map[string]bool
	// ComposeVars are the variables docker-compose*.yml interpolate.
	ComposeVars map[string]bool
	// CheckCtl checks a replikvctl command line (its arguments after the program name).
	CheckCtl func(args []string) error
	// CtlCommands lists replikvctl's commands by path with their own flags (ctl.CommandFlags).
	CtlCommands map[string][]string
}

// Docs are the documents checked, relative to the repository root; docs/*.md are added by Load.
var Docs = []string{"README.md", "CONTRIBUTING.md"}

// Load reads the repository at root: the binaries' flags (from their parsers), the Makefile, scripts/compose.sh,
// cmd/demo, the compose files, and the test functions of every Go file.
func Load(root string) (*Repo, error) {
	r := &Repo{Root: root, CheckCtl: ctl.CheckArgs, CtlCommands: ctl.CommandFlags()}
	var err error
	if r.LeaderFlags, err = binaryFlags(func(args []string, out *bytes.Buffer) error {
		_, err := config.ParseLeader(args, noEnv, out)
		return err
	}); err != nil {
		return nil, fmt.Errorf("leader flags: %w", err)
	}
	if r.FollowerFlags, err = binaryFlags(func(args []string, out *bytes.Buffer) error {
		_, err := config.ParseFollower(args, noEnv, out)
		return err
	}); err != nil {
		return nil, fmt.Errorf("follower flags: %w", err)
	}
	read := func(name string) string {
		if err != nil {
			return ""
		}
		var b []byte
		b, err = os.ReadFile(filepath.Join(root, name))
		return string(b)
	}
	makefile := read("Makefile")
	composeSh := read("scripts/compose.sh")
	demo := read("cmd/demo/main.go")
	composeFiles := read("docker-compose.yml") + read("docker-compose.tls.yml")
	if err != nil {
		return nil, err
	}
	r.MakeTargets = matches(makeTargetRE, makefile)
	delete(r.MakeTargets, ".PHONY")
	if _, body, ok := strings.Cut(composeSh, "\nmain() {"); ok {
		r.ComposeSubcommands = map[string]bool{}
		for _, m := range composeCaseRE.FindAllStringSubmatch(body, -1) {
			for _, s := range strings.Split(m[1], "|") {
				r.ComposeSubcommands[strings.TrimSpace(s)] = true
			}
		}
	}
	r.DemoFlags = matches(demoFlagRE, demo)
	r.ComposeVars = matches(composeVarRE, composeFiles)
	if r.Tests, err = testNames(root); err != nil {
		return nil, err
	}
	for what, m := range map[string]map[string]bool{"make targets": r.MakeTargets, "compose.sh subcommands": r.ComposeSubcommands,
		"demo flags": r.DemoFlags, "compose variables": r.ComposeVars, "tests": r.Tests} {
		if len(m) == 0 {
			return nil, fmt.Errorf("docscheck: found no %s: has the file's layout changed?", what)
		}
	}
	return r, nil
}

var (
	makeTargetRE  = regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+):(?:[^=]|$)`)
	composeCaseRE = regexp.MustCompile(`(?m)^\t([a-z][a-z |]*)\)`)
	demoFlagRE    = regexp.MustCompile(`fs\.[A-Za-z0-9]+\([^,]+, "([a-z0-9-]+)"`)
	composeVarRE  = regexp.MustCompile(`\$\{([A-Z0-9_]+)`)
	usageFlagRE   = regexp.MustCompile(`(?m)^  --([a-z0-9-]+) \(env `)
	testFuncRE    = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Za-z0-9_]*)\(`)
)

func noEnv(string) string { return "" }

// binaryFlags asks a binary's parser for its usage and returns the flag names it lists.
func binaryFlags(parse func([]string, *bytes.Buffer) error) (map[string]bool, error) {
	var out bytes.Buffer
	if err := parse([]string{"-help"}, &out); !errors.Is(err, config.ErrHelp) {
		return nil, fmt.Errorf("docscheck: -help: %v", err)
	}
	m := matches(usageFlagRE, out.String())
	if len(m) == 0 {
		return nil, errors.New("docscheck: no flag in the usage text: has its layout changed?")
	}
	return m, nil
}

func matches(re *regexp.Regexp, s string) map[string]bool {
	out := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out[m[1]] = true
	}
	return out
}

// testNames collects the test, benchmark and fuzz functions of every Go file under root.
func testNames(root string) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "build" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range testFuncRE.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	return out, err
}

// DocFiles returns the documents to check: Docs and docs/*.md, relative to the root.
func (r *Repo) DocFiles() ([]string, error) {
	more, err := filepath.Glob(filepath.Join(r.Root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	out := append([]string(nil), Docs...)
	for _, m := range more {
		out = append(out, filepath.ToSlash(strings.TrimPrefix(m, r.Root+string(filepath.Separator))))
	}
	return out, nil
}

// CheckAll checks every document and the completeness of the references.
func (r *Repo) CheckAll() ([]Problem, error) {
	names, err := r.DocFiles()
	if err != nil {
		return nil, err
	}
	var out []Problem
	texts := map[string]string{}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(r.Root, name))
		if err != nil {
			return nil, err
		}
		texts[name] = string(b)
		out = append(out, r.Check(name, b)...)
	}
	out = append(out, r.Complete(texts)...)
	return out, nil
}

// Check checks one markdown document; name is its path relative to the root.
func (r *Repo) Check(name string, text []byte) []Problem {
	c := &checker{r: r, file: name}
	d := parse(string(text))
	for _, b := range d.blocks {
		if !b.IsShell() {
			continue
		}
		cmds, err := Commands(b.Text, b.Line)
		if err != nil {
			c.add(b.Line, "shell block: %v", err)
		}
		for _, cmd := range cmds {
			c.command(cmd)
		}
	}
	for _, l := range d.prose {
		for _, target := range links(l.text) {
			c.link(l.n, target)
		}
		for _, code := range inlineCode(l.text) {
			c.inline(l.n, code)
			if inlineCommand(code) {
				cmds, err := Commands(code, l.n)
				if err != nil {
					c.add(l.n, "`%s`: %v", code, err)
				}
				for _, cmd := range cmds {
					c.command(cmd)
				}
			}
		}
	}
	return c.problems
}

type checker struct {
	r        *Repo
	file     string
	problems []Problem
}

func (c *checker) add(line int, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// exists reports whether a path relative to the root exists.
func (c *checker) exists(rel string) bool {
	_, err := os.Stat(filepath.Join(c.r.Root, filepath.FromSlash(rel)))
	return err == nil
}

// command checks one command line of a shell block.
func (c *checker) command(cmd Command) {
	prog, args := cmd.Args[0], cmd.Args[1:]
	base := path.Base(prog)
	switch {
	case prog == "make":
		for _, a := range args {
			if strings.HasPrefix(a, "-") || isAssignment(a) {
				continue
			}
			if !c.r.MakeTargets[a] {
				c.add(cmd.Line, "make %s: no such target in the Makefile", a)
			}
		}
	case base == "leader" || base == "follower":
		c.binaryArgs(cmd.Line, base, args)
	case base == "replikvctl":
		c.ctlArgs(cmd.Line, args)
	case prog == "go":
		c.goCommand(cmd.Line, args)
	case strings.HasPrefix(prog, "scripts/") || strings.HasPrefix(prog, "./scripts/"):
		script := strings.TrimPrefix(prog, "./")
		if !c.exists(script) {
			c.add(cmd.Line, "%s: no such script", prog)
		} else if script == "scripts/compose.sh" && len(args) > 0 && !c.r.ComposeSubcommands[args[0]] {
			c.add(cmd.Line, "scripts/compose.sh %s: no such subcommand", args[0])
		}
	case prog == "curl":
		c.curl(cmd.Line, args)
	case prog == "docker" || prog == "docker-compose":
		for i, a := range args {
			if (a == "-f" || a == "--file") && i+1 < len(args) && !strings.ContainsAny(args[i+1], "$<") && !c.exists(args[i+1]) {
				c.add(cmd.Line, "%s -f %s: no such file", prog, args[i+1])
			}
		}
	}
}

// binaryArgs checks the flags given to leader or follower.
func (c *checker) binaryArgs(line int, bin string, args []string) {
	flags := c.r.LeaderFlags
	if bin == "follower" {
		flags = c.r.FollowerFlags
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		args = args[1:]
	}
	for _, a := range args {
		name, ok := flagName(a)
		if !ok || name == "help" || name == "h" {
			continue
		}
		if !flags[name] {
			c.add(line, "%s --%s: no such flag", bin, name)
		}
	}
}

// flagName returns the name of a --flag or -flag word (without a =value).
func flagName(a string) (string, bool) {
	if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return name, name != ""
}

// ctlArgs checks a replikvctl command line; "..." stands for elided arguments and is dropped.
func (c *checker) ctlArgs(line int, args []string) {
	var kept []string
	for _, a := range args {
		if a != "..." {
			kept = append(kept, a)
		}
	}
	if err := c.r.CheckCtl(kept); err != nil {
		c.add(line, "replikvctl %s: %v", strings.Join(kept, " "), err)
	}
}

// goCommand checks the packages of go run, build, install, test and vet, and the flags of the demo.
func (c *checker) goCommand(line int, args []string) {
	if len(args) == 0 {
		return
	}
	switch args[0] {
	case "run", "build", "install", "test", "vet":
	default:
		return
	}
	pkgs := 0
	for i, a := range args[1:] {
		if !strings.HasPrefix(a, "./") {
			continue
		}
		dir := strings.TrimSuffix(strings.TrimSuffix(a, "/..."), "/")
		if !c.exists(dir) {
			c.add(line, "go %s %s: no such package", args[0], a)
			continue
		}
		pkgs++
		if args[0] != "run" || pkgs > 1 {
			continue
		}
		rest := args[2+i:]
		switch path.Base(dir) {
		case "replikvctl":
			c.ctlArgs(line, rest)
		case "leader", "follower":
			c.binaryArgs(line, path.Base(dir), rest)
		case "demo":
			for _, r := range rest {
				if name, ok := flagName(r); ok && name != "help" && name != "h" && !c.r.DemoFlags[name] {
					c.add(line, "demo --%s: no such flag", name)
				}
			}
		}
		return
	}
}

// apiPaths are the endpoints of the HTTP API, and the query parameters each takes.
var apiPaths = []struct {
	prefix string
	exact  bool
	query  []string
}{
	{"/v1/kv/", false, []string{"consistency", "min_seq", "timeout"}},
	{"/v1/kv", true, []string{"prefix", "after", "limit", "values", "consistency", "min_seq", "timeout"}},
	{"/v1/digest", true, []string{"consistency", "min_seq", "timeout"}},
	{"/v1/status", true, nil},
	{"/v1/snapshots", true, nil},
	{"/v1/followers", true, nil},
	{"/v1/txn", true, nil},
	{"/healthz", true, nil},
	{"/readyz", true, nil},
	{"/metrics", true, nil},
}

// curl checks that each URL names an endpoint of the API and only query parameters it takes.
func (c *checker) curl(line int, args []string) {
	for _, a := range args {
		if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
			continue
		}
		u, err := url.Parse(a)
		if err != nil {
			c.add(line, "curl %s: %v", a, err)
			continue
		}
		found := false
		for _, p := range apiPaths {
			if p.exact && u.Path != p.prefix || !p.exact && (!strings.HasPrefix(u.Path, p.prefix) || len(u.Path) == len(p.prefix)) {
				continue
			}
			found = true
			for k := range u.Query() {
				if !contains(p.query, k) {
					c.add(line, "curl %s: %s takes no query parameter %q", a, p.prefix, k)
				}
			}
			break
		}
		if !found {
			c.add(line, "curl %s: no such endpoint of the API", a)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// link checks a markdown link: a relative file must exist, and an anchor must be a heading of its document.
func (c *checker) link(line int, target string) {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return
	}
	file, anchor, _ := strings.Cut(target, "#")
	rel := c.file
	if file != "" {
		rel = path.Clean(path.Join(path.Dir(c.file), file))
		if !c.exists(rel) {
			c.add(line, "link %s: no such file %s", target, rel)
			return
		}
	}
	if anchor == "" {
		return
	}
	if !strings.HasSuffix(rel, ".md") {
		c.add(line, "link %s: an anchor in a file that is not markdown", target)
		return
	}
	b, err := os.ReadFile(filepath.Join(c.r.Root, filepath.FromSlash(rel)))
	if err != nil {
		c.add(line, "link %s: %v", target, err)
		return
	}
	if !anchors(parse(string(b)).headings)[anchor] {
		c.add(line, "link %s: %s has no heading with the anchor #%s", target, rel, anchor)
	}
}

var (
	repoPathRE = regexp.MustCompile(`^(?:cmd|internal|tests|scripts|deploy|docs|\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_]$`)
	testRefRE  = regexp.MustCompile(`^((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)(?:/[A-Za-z0-9_/*-]*)?$`)
	envRefRE   = regexp.MustCompile(`\bREPLIKV_[A-Z0-9_]*[A-Z0-9]\b`)
	// generated are the directories whose files the repository does not hold (built, or written by a script).
	generated = []string{"deploy/build/", "deploy/tls/"}
	// otherEnv are the REPLIKV_* variables that are no flag: replikvctl's token, the compose image, the S3 test
	// server's binary.
	otherEnv = map[string]bool{"REPLIKV_TOKEN": true, "REPLIKV_IMAGE": true, "REPLIKV_VERSITYGW": true}
)

// inlineCommand reports whether an inline code span is a command line to check like those of shell blocks: one that
// starts with a program the checks know and holds no placeholder (<name>, ...).
func inlineCommand(code string) bool {
	if strings.Contains(code, "<") || strings.Contains(code, "...") {
		return false
	}
	fields := strings.Fields(code)
	for len(fields) > 0 && isAssignment(fields[0]) {
		fields = fields[1:]
	}
	if len(fields) < 2 {
		return false
	}
	switch p := fields[0]; {
	case p == "make" || p == "go" || p == "curl" || p == "taskset" || p == "replikvctl" || p == "bin/replikvctl" ||
		p == "leader" || p == "follower":
		return true
	case strings.HasPrefix(p, "scripts/"):
		return true
	}
	return false
}

// inline checks an inline code span: a path of the repository must exist, a test must be defined, a REPLIKV_*
// variable must belong to a flag.
func (c *checker) inline(line int, code string) {
	if repoPathRE.MatchString(code) {
		for _, g := range generated {
			if strings.HasPrefix(code, g) {
				return
			}
		}
		if !c.exists(code) {
			c.add(line, "`%s`: no such file or directory", code)
		}
		return
	}
	if m := testRefRE.FindStringSubmatch(code); m != nil {
		if !c.r.Tests[m[1]] {
			c.add(line, "`%s`: no test, benchmark or fuzz target of that name", code)
		}
		return
	}
	for _, v := range envRefRE.FindAllString(code, -1) {
		c.envVar(line, v)
	}
}

// envVar checks a REPLIKV_* variable: a flag of a binary or of replikvctl, or one of otherEnv.
func (c *checker) envVar(line int, v string) {
	if otherEnv[v] {
		return
	}
	name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v, config.EnvPrefix)), "_", "-")
	if c.r.LeaderFlags[name] || c.r.FollowerFlags[name] || contains(c.r.CtlCommands["replikvctl"], name) {
		return
	}
	c.add(line, "%s: no flag of leader, follower or replikvctl is set by it", v)
}

// Complete checks that the references describe everything: the binaries' flags in docs/configuration.md (and no flag
// there that does not exist), replikvctl's commands and flags in docs/replikvctl.md, the make targets in
// CONTRIBUTING.md, the compose files' variables in docs/configuration.md. texts holds the documents by name.
func (r *Repo) Complete(texts map[string]string) []Problem {
	var out []Problem
	miss := func(file, format string, args ...any) {
		out = append(out, Problem{File: file, Msg: fmt.Sprintf(format, args...)})
	}
	const conf, ctlDoc, contrib = "docs/configuration.md", "docs/replikvctl.md", "CONTRIBUTING.md"
	for bin, flags := range map[string]map[string]bool{"leader": r.LeaderFlags, "follower": r.FollowerFlags} {
		for _, f := range sorted(flags) {
			if !strings.Contains(texts[conf], "`--"+f+"`") {
				miss(conf, "the %s flag --%s is not described (no `--%s`)", bin, f, f)
			}
		}
	}
	for i, l := range strings.Split(texts[conf], "\n") {
		if !strings.HasPrefix(l, "| `--") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(l, "| "), " |")
		for _, code := range inlineCode(cell) {
			name := strings.TrimPrefix(code, "--")
			if !r.LeaderFlags[name] && !r.FollowerFlags[name] {
				out = append(out, Problem{File: conf, Line: i + 1, Msg: fmt.Sprintf("%s: no such flag of leader or follower", code)})
			}
		}
	}
	for _, v := range sorted(r.ComposeVars) {
		if !strings.Contains(texts[conf], "`"+v+"`") {
			miss(conf, "the compose variable %s is not described (no `%s`)", v, v)
		}
	}
	paths := make([]string, 0, len(r.CtlCommands))
	for p := range r.CtlCommands {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		words := strings.Fields(p)
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(words[len(words)-1]) + `\b`).MatchString(texts[ctlDoc]) {
			miss(ctlDoc, "the command %q is not described", p)
		}
		for _, f := range r.CtlCommands[p] {
			if f != "help" && !strings.Contains(texts[ctlDoc], "--"+f) {
				miss(ctlDoc, "the flag --%s of %q is not described", f, p)
			}
		}
	}
	for _, t := range sorted(r.MakeTargets) {
		if strings.Contains(t, "/") || strings.Contains(t, "$") {
			continue
		}
		if !strings.Contains(texts[contrib], "`make "+t+"`") && !strings.Contains(texts[contrib], "make "+t+" ") {
			miss(contrib, "the make target %s is not described (no `make %s`)", t, t)
		}
	}
	return out
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
