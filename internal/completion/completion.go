// Package completion writes shell completion scripts (bash, zsh, fish)
// for a command from its one flag table, with each flag's help taken
// from the command's manual: nothing to keep in step by hand.
package completion

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Shells are the shells a script can be written for.
var Shells = []string{"bash", "zsh", "fish"}

// Command is what a script completes.
type Command struct {
	Name        string
	Flags       *flag.FlagSet
	Manual      string   // the -h text: each flag's first help line is taken from it
	Subcommands []string // words accepted first, before any flag
}

// Flag is one flag as the scripts offer it.
type Flag struct {
	Name string
	Bool bool   // takes no value
	Kind string // what its value completes to: "pid", "user", "dir", "file" or "" (nothing)
	Help string
}

// valueKinds says what each flag's value is, where the shell can offer it.
var valueKinds = map[string]string{
	"pid": "pid", "user": "user", "proc-root": "dir", "cgroup-root": "dir",
	"out": "file", "plot": "file", "textfile": "dir",
}

// manualLine is a flag's line in a manual: "\t--name ARG   help".
var manualLine = regexp.MustCompile(`(?m)^\t--([a-z][a-z-]*)(?: [A-Z]+)?\s{2,}(.+)$`)

// Flags lists c's flags, sorted, with their help from the manual.
func (c Command) flags() []Flag {
	help := map[string]string{}
	for _, m := range manualLine.FindAllStringSubmatch(c.Manual, -1) {
		help[m[1]] = strings.TrimSpace(m[2])
	}
	var out []Flag
	c.Flags.VisitAll(func(f *flag.Flag) {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		out = append(out, Flag{Name: f.Name, Bool: ok && b.IsBoolFlag(), Kind: valueKinds[f.Name], Help: help[f.Name]})
	})
	slices.SortFunc(out, func(a, b Flag) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Write writes c's completion script for shell.
func Write(w io.Writer, shell string, c Command) error {
	switch shell {
	case "bash":
		return bash(w, c)
	case "zsh":
		return zsh(w, c)
	case "fish":
		return fish(w, c)
	}
	return fmt.Errorf("no completions for shell %q (want %s)", shell, strings.Join(Shells, ", "))
}

func bash(w io.Writer, c Command) error {
	var all, takesValue []string
	cases := map[string][]string{}
	for _, f := range c.flags() {
		all = append(all, "--"+f.Name)
		if !f.Bool {
			takesValue = append(takesValue, "--"+f.Name)
			cases[f.Kind] = append(cases[f.Kind], "--"+f.Name)
		}
	}
	fn := "_" + strings.ReplaceAll(c.Name, "-", "_")
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s (generated: %s completion bash)\n", c.Name, c.Name)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("\tcase $prev in\n")
	for _, kind := range []string{"pid", "user", "dir", "file", ""} {
		flags := cases[kind]
		if len(flags) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\t%s)\n", strings.Join(flags, "|"))
		switch kind {
		case "pid":
			b.WriteString("\t\tCOMPREPLY=($(compgen -W \"$(ls /proc 2>/dev/null | grep -E '^[0-9]+$')\" -- \"$cur\"))\n")
		case "user":
			b.WriteString("\t\tCOMPREPLY=($(compgen -u -- \"$cur\"))\n")
		case "dir":
			b.WriteString("\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n")
		case "file":
			b.WriteString("\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n")
		default:
			b.WriteString("\t\tCOMPREPLY=()\n")
		}
		b.WriteString("\t\treturn;;\n")
	}
	if slices.Contains(c.Subcommands, "completion") {
		fmt.Fprintf(&b, "\tcompletion)\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn;;\n", strings.Join(Shells, " "))
	}
	b.WriteString("\tesac\n")
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "\tif ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn\n\tfi\n",
			strings.Join(c.Subcommands, " "))
	}
	fmt.Fprintf(&b, "\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n", strings.Join(all, " "))
	b.WriteString("}\n")
	fmt.Fprintf(&b, "complete -F %s %s\n", fn, c.Name)
	_, err := io.WriteString(w, b.String())
	return err
}

func zsh(w io.Writer, c Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s (generated: %s completion zsh)\n", c.Name, c.Name, c.Name)
	fmt.Fprintf(&b, "_arguments -s \\\n")
	for _, f := range c.flags() {
		spec := "--" + f.Name + "[" + zshEscape(f.Help) + "]"
		if !f.Bool {
			action := " "
			switch f.Kind {
			case "pid":
				action = "_pids"
			case "user":
				action = "_users"
			case "dir":
				action = "_directories"
			case "file":
				action = "_files"
			}
			spec = "--" + f.Name + "=[" + zshEscape(f.Help) + "]:" + f.Name + ":" + action
		}
		fmt.Fprintf(&b, "\t'%s' \\\n", strings.ReplaceAll(spec, "'", `'\''`))
	}
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "\t'1::subcommand:(%s)'\n", strings.Join(c.Subcommands, " "))
	} else {
		b.WriteString("\t''\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// zshEscape keeps a help line from closing _arguments' brackets.
func zshEscape(s string) string {
	return strings.NewReplacer("[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

func fish(w io.Writer, c Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s (generated: %s completion fish)\n", c.Name, c.Name)
	fmt.Fprintf(&b, "complete -c %s -f\n", c.Name)
	for _, s := range c.Subcommands {
		fmt.Fprintf(&b, "complete -c %s -n __fish_use_subcommand -a %s\n", c.Name, s)
	}
	for _, f := range c.flags() {
		line := fmt.Sprintf("complete -c %s -l %s", c.Name, f.Name)
		if !f.Bool {
			line += " -r"
			switch f.Kind {
			case "pid":
				line += " -a '(__fish_complete_pids)'"
			case "user":
				line += " -a '(__fish_complete_users)'"
			case "dir":
				line += " -a '(__fish_complete_directories)'"
			case "file":
				line += " -F"
			}
		}
		if f.Help != "" {
			line += " -d " + fishQuote(f.Help)
		}
		b.WriteString(line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
