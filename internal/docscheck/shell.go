package docscheck

import (
	"fmt"
	"strings"
)

// Command is one simple command of a shell block: its words with quotes removed, after the variable assignments
// that may precede it.
type Command struct {
	// Line is the 1-based line of the document the command starts on.
	Line int
	// Env holds the assignments written before the command (NAME=value).
	Env map[string]string
	// Args are the command's words; Args[0] is the program.
	Args []string
}

// String returns the command's words joined by spaces.
func (c Command) String() string { return strings.Join(c.Args, " ") }

// word is a shell word as written, with the command substitutions found in it.
type word struct {
	text  string   // quotes removed; substitutions kept as written, e.g. "$(scripts/compose.sh urls)"
	subst []string // the scripts inside $(...) and <(...), parsed as commands of their own
}

// Commands returns the simple commands of a shell script: the commands of every pipeline, list and command
// substitution, in order. Comments, redirections, `export`, `sudo`, `env`, `time` and `source` prefixes are left
// out, as are the words of shell syntax (if, for, ...). firstLine is the document's line of the script's first line.
func Commands(script string, firstLine int) ([]Command, error) {
	var out []Command
	lines := strings.Split(script, "\n")
	for i := 0; i < len(lines); i++ {
		start := i
		logical := lines[i]
		for strings.HasSuffix(logical, `\`) && i+1 < len(lines) {
			i++
			logical = strings.TrimSuffix(logical, `\`) + " " + lines[i]
		}
		cmds, err := parseLine(logical, firstLine+start)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", firstLine+start, err)
		}
		out = append(out, cmds...)
	}
	return out, nil
}

// parseLine splits one logical line into simple commands.
func parseLine(line string, n int) ([]Command, error) {
	var out []Command
	var cur []word
	flush := func() error {
		cmd, subs, err := simple(cur, n)
		if err != nil {
			return err
		}
		out = append(out, subs...)
		if len(cmd.Args) > 0 {
			out = append(out, cmd)
		}
		cur = nil
		return nil
	}
	rs := []rune(line)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t':
			i++
		case r == '#':
			i = len(rs) // a comment runs to the end of the line
		case r == ';' || r == '|' || r == '&':
			if err := flush(); err != nil {
				return out, err
			}
			for i < len(rs) && (rs[i] == ';' || rs[i] == '|' || rs[i] == '&') {
				i++
			}
		case r == '>' || (r == '<' && (i+1 >= len(rs) || rs[i+1] != '(')) || (isDigit(r) && i+1 < len(rs) && rs[i+1] == '>'):
			// A redirection: skip the operator and its target word.
			for i < len(rs) && strings.ContainsRune("0123456789<>&", rs[i]) {
				i++
			}
			for i < len(rs) && rs[i] == ' ' {
				i++
			}
			if _, next, err := readWord(rs, i); err == nil {
				i = next
			} else {
				return out, err
			}
		default:
			w, next, err := readWord(rs, i)
			if err != nil {
				return out, err
			}
			cur = append(cur, w)
			i = next
		}
	}
	return out, flush()
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// readWord reads one word from rs[i:]: quoted parts, $(...), <(...), ${...}, and plain characters up to a space or
// an operator.
func readWord(rs []rune, i int) (word, int, error) {
	var w word
	var b strings.Builder
	for i < len(rs) {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == ';' || r == '|' || r == '&' || r == '>':
			return word{text: b.String(), subst: w.subst}, i, nil
		case r == '<' && !(i+1 < len(rs) && rs[i+1] == '('):
			return word{text: b.String(), subst: w.subst}, i, nil
		case r == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return w, i, fmt.Errorf("unclosed single quote")
			}
			b.WriteString(string(rs[i+1 : j]))
			i = j + 1
		case r == '"':
			j := i + 1
			for j < len(rs) && rs[j] != '"' {
				if rs[j] == '\\' {
					j++
				} else if rs[j] == '$' && j+1 < len(rs) && rs[j+1] == '(' {
					end, err := closing(rs, j+1)
					if err != nil {
						return w, i, err
					}
					w.subst = append(w.subst, string(rs[j+2:end]))
					j = end
				}
				j++
			}
			if j >= len(rs) {
				return w, i, fmt.Errorf("unclosed double quote")
			}
			b.WriteString(strings.ReplaceAll(string(rs[i+1:j]), `\"`, `"`))
			i = j + 1
		case (r == '$' || r == '<') && i+1 < len(rs) && rs[i+1] == '(':
			end, err := closing(rs, i+1)
			if err != nil {
				return w, i, err
			}
			w.subst = append(w.subst, string(rs[i+2:end]))
			b.WriteString(string(rs[i : end+1]))
			i = end + 1
		case r == '$' && i+1 < len(rs) && rs[i+1] == '{':
			j := i + 2
			for j < len(rs) && rs[j] != '}' {
				j++
			}
			b.WriteString(string(rs[i:min(j+1, len(rs))]))
			i = j + 1
		case r == '\\' && i+1 < len(rs):
			b.WriteRune(rs[i+1])
			i += 2
		default:
			b.WriteRune(r)
			i++
		}
	}
	return word{text: b.String(), subst: w.subst}, i, nil
}

// closing returns the index of the parenthesis that closes the one at rs[open], skipping quoted text.
func closing(rs []rune, open int) (int, error) {
	depth := 0
	for j := open; j < len(rs); j++ {
		switch rs[j] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return j, nil
			}
		case '\'':
			for j++; j < len(rs) && rs[j] != '\''; j++ {
			}
		}
	}
	return 0, fmt.Errorf("unclosed $(")
}

// shellWords are the words of shell syntax that start no program.
var shellWords = map[string]bool{"if": true, "then": true, "else": true, "elif": true, "fi": true, "for": true,
	"while": true, "until": true, "do": true, "done": true, "case": true, "esac": true, "{": true, "}": true,
	"!": true}

// prefixes are the commands that run the next words as a command.
var prefixes = map[string]bool{"sudo": true, "env": true, "time": true, "exec": true, "nohup": true}

// simple turns the words of one simple command into a Command, and the command substitutions in them into commands
// of their own.
func simple(words []word, n int) (Command, []Command, error) {
	cmd := Command{Line: n, Env: map[string]string{}}
	var subs []Command
	for _, w := range words {
		for _, s := range w.subst {
			cs, err := parseLine(s, n)
			if err != nil {
				return cmd, subs, err
			}
			subs = append(subs, cs...)
		}
	}
	i := 0
	for i < len(words) {
		t := words[i].text
		if t == "taskset" && len(cmd.Args) == 0 {
			// taskset [-a] [-p] [-c] CPUS COMMAND...: skip the options and the CPU list.
			for i++; i < len(words) && strings.HasPrefix(words[i].text, "-"); i++ {
			}
			i++
			continue
		}
		switch {
		case len(cmd.Args) > 0:
			cmd.Args = append(cmd.Args, t)
		case isAssignment(t):
			name, value, _ := strings.Cut(t, "=")
			cmd.Env[name] = value
		case t == "export" || t == "source" || t == "." || shellWords[t] || prefixes[t]:
			if t == "source" || t == "." {
				return Command{}, subs, nil // sources a file or a substitution, already taken
			}
		case strings.HasPrefix(t, "-") && len(cmd.Args) == 0:
			// a prefix's option (env -i, sudo -E)
		default:
			cmd.Args = append(cmd.Args, t)
		}
		i++
	}
	return cmd, subs, nil
}

// isAssignment reports whether a word is NAME=value.
func isAssignment(t string) bool {
	name, _, ok := strings.Cut(t, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
