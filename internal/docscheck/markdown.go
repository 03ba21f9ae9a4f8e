package docscheck

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Block is a fenced code block of a markdown document.
type Block struct {
	// Lang is the first word of the fence's info string ("sh", "conf", ...), "" when there is none.
	Lang string
	// Line is the 1-based line of the block's first content line.
	Line int
	// Heading is the text of the last heading before the block, "" when there is none.
	Heading string
	// Text is the block's content, without the fences.
	Text string
}

// IsShell reports whether the block holds shell commands.
func (b Block) IsShell() bool {
	switch b.Lang {
	case "sh", "bash", "shell", "console":
		return true
	}
	return false
}

// doc is a parsed markdown document.
type doc struct {
	blocks []Block
	// prose holds the lines outside fenced blocks, with their 1-based line numbers.
	prose    []proseLine
	headings []string // heading texts, in order
}

type proseLine struct {
	n    int
	text string
}

var headingRE = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)

// parse splits a markdown document into fenced blocks, headings and prose lines.
func parse(text string) doc {
	var d doc
	lines := strings.Split(text, "\n")
	var cur *Block
	var body []string
	fence := ""
	heading := ""
	for i, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		if cur != nil {
			if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
				cur.Text = strings.Join(body, "\n")
				d.blocks = append(d.blocks, *cur)
				cur, body = nil, nil
				continue
			}
			body = append(body, line)
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			n := len(trimmed) - len(strings.TrimLeft(trimmed, trimmed[:1]))
			fence = trimmed[:n]
			info := strings.Fields(trimmed[n:])
			lang := ""
			if len(info) > 0 {
				lang = strings.ToLower(info[0])
			}
			cur = &Block{Lang: lang, Line: i + 2, Heading: heading}
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			heading = m[2]
			d.headings = append(d.headings, heading)
		}
		d.prose = append(d.prose, proseLine{n: i + 1, text: line})
	}
	if cur != nil { // an unclosed fence runs to the end of the document
		cur.Text = strings.Join(body, "\n")
		d.blocks = append(d.blocks, *cur)
	}
	return d
}

// Blocks returns the fenced code blocks of a markdown document, in order.
func Blocks(text []byte) []Block { return parse(string(text)).blocks }

// anchors returns the anchors GitHub generates for the headings: the text in lower case, without the characters that
// are neither letters, digits, spaces, hyphens nor underscores, spaces as hyphens; a repeated anchor gets -1, -2, ...
func anchors(headings []string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, h := range headings {
		a := slug(h)
		if n := seen[a]; n > 0 {
			seen[a]++
			a = a + "-" + strconv.Itoa(n)
		} else {
			seen[a] = 1
		}
		out[a] = true
	}
	return out
}

func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

var (
	inlineCodeRE = regexp.MustCompile("`+[^`]*`+")
	linkRE       = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// inlineCode returns the contents of the inline code spans of a prose line.
func inlineCode(line string) []string {
	var out []string
	for _, m := range inlineCodeRE.FindAllString(line, -1) {
		out = append(out, strings.Trim(m, "`"))
	}
	return out
}

// links returns the targets of the markdown links of a prose line, outside inline code.
func links(line string) []string {
	line = inlineCodeRE.ReplaceAllString(line, "")
	var out []string
	for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
		out = append(out, m[1])
	}
	return out
}
