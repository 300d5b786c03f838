// Package manpage turns a command's manual (its doc.go comment, which -h
// prints) into a man page, so the manual is written once.
package manpage

import (
	"fmt"
	"strings"
)

// Write renders manual, in Go doc comment form (paragraphs, tab-indented
// blocks kept as typed, "# name" headings for subcommands), as roff for
// man(1): section 1, with NAME from its first sentence.
func Write(prog, version, manual string) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 \"\" \"%s %s\" \"User Commands\"\n", strings.ToUpper(prog), prog, escape(version))
	paras := strings.Split(strings.Trim(manual, "\n"), "\n\n")
	summary, _, _ := strings.Cut(strings.Join(strings.Fields(paras[0]), " "), ". ")
	summary = strings.TrimPrefix(strings.TrimSuffix(summary, "."), strings.ToUpper(prog[:1])+prog[1:]+" ")
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n.SH DESCRIPTION\n", prog, escape(summary))
	for _, p := range paras {
		lines := strings.Split(p, "\n")
		switch {
		case strings.HasPrefix(p, "# "):
			fmt.Fprintf(&b, ".SH \"%s %s\"\n", strings.ToUpper(prog), strings.ToUpper(strings.TrimPrefix(lines[0], "# ")))
			if rest := strings.Join(lines[1:], "\n"); strings.TrimSpace(rest) != "" {
				writePara(&b, rest)
			}
		default:
			writePara(&b, p)
		}
	}
	return b.String()
}

// writePara writes one paragraph: indented lines as typed (a usage block,
// a flag table), others filled by man.
func writePara(b *strings.Builder, p string) {
	lines := strings.Split(p, "\n")
	if strings.HasPrefix(lines[0], "\t") {
		b.WriteString(".PP\n.RS 4\n.nf\n")
		for _, l := range lines {
			b.WriteString(escapeLine(strings.TrimPrefix(l, "\t")) + "\n")
		}
		b.WriteString(".fi\n.RE\n")
		return
	}
	b.WriteString(".PP\n")
	for _, l := range lines {
		b.WriteString(escapeLine(strings.TrimSpace(l)) + "\n")
	}
}

// escape makes text safe inside roff: backslashes and minus signs.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// escapeLine also keeps a line starting with a dot or quote from being
// read as a request.
func escapeLine(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
