package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/flags"
)

// TestCompletionLoadsInBash: the bash script loads, registers the
// command, and completes a flag from a prefix and a --pid from /proc.
func TestCompletionLoadsInBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("bash not found: %v", err)
	}
	var script bytes.Buffer
	if err := run(t.Context(), []string{"completion", "bash"}, nil, &script, os.Stderr); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", script.String()+`
complete -p zombiewatch
COMP_WORDS=(zombiewatch --pi); COMP_CWORD=1; _zombiewatch; echo "flag: ${COMPREPLY[*]}"
COMP_WORDS=(zombiewatch --pid ""); COMP_CWORD=2; _zombiewatch; echo "pids: ${COMPREPLY[*]}"
COMP_WORDS=(zombiewatch completion ""); COMP_CWORD=2; _zombiewatch; echo "shells: ${COMPREPLY[*]}"
`).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := string(out)
	pids := strings.Fields(strings.SplitN(strings.SplitN(got, "pids: ", 2)[1], "\n", 2)[0])
	if !strings.Contains(got, "complete -F _zombiewatch zombiewatch") || !strings.Contains(got, "flag: --pid\n") ||
		!strings.Contains(got, "shells: bash zsh fish\n") || !contains(pids, strconv.Itoa(os.Getpid())) {
		t.Errorf("bash completion:\n%s\nwant it registered, --pi completed to --pid, this test's pid among the pids, the shells", got)
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

// TestCompletionsNameEveryFlag: each shell's script offers every flag of
// the one flag table; zsh and fish parse it where installed.
func TestCompletionsNameEveryFlag(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var script bytes.Buffer
		if err := run(t.Context(), []string{"completion", shell}, nil, &script, os.Stderr); err != nil {
			t.Fatal(err)
		}
		flags.Flags().VisitAll(func(f *flag.Flag) {
			if !strings.Contains(script.String(), "--"+f.Name) && !regexp.MustCompile(`-l `+f.Name+`\b`).MatchString(script.String()) {
				t.Errorf("%s completion does not offer --%s", shell, f.Name)
			}
		})
		if _, err := exec.LookPath(shell); err != nil {
			t.Logf("%s not installed: its script's syntax is not checked", shell)
			continue
		}
		f := t.TempDir() + "/script"
		os.WriteFile(f, script.Bytes(), 0o644)
		if out, err := exec.Command(shell, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	if err := run(t.Context(), []string{"completion", "tcsh"}, nil, new(bytes.Buffer), new(bytes.Buffer)); err == nil ||
		!strings.Contains(err.Error(), `no completions for shell "tcsh"`) {
		t.Errorf("completion tcsh: %v, want a usage error naming the shells", err)
	}
}

// TestManPage: the man page is the manual, as roff man(1) renders: every
// flag of the table is in it, and man renders it where installed.
func TestManPage(t *testing.T) {
	var page bytes.Buffer
	if err := run(t.Context(), []string{"man"}, nil, &page, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(page.String(), ".TH ZOMBIEWATCH 1 ") || !strings.Contains(page.String(), ".SH \"ZOMBIEWATCH CTL\"") {
		t.Fatalf("man page starts %q; want .TH and a section per subcommand", page.String()[:min(200, page.Len())])
	}
	flags.Flags().VisitAll(func(f *flag.Flag) {
		if f.Name == "count" || f.Name == "interval" {
			return // described under --watch
		}
		if !strings.Contains(page.String(), `\-\-`+strings.ReplaceAll(f.Name, "-", `\-`)) {
			t.Errorf("man page does not describe --%s", f.Name)
		}
	})
	if _, err := exec.LookPath("man"); err != nil {
		t.Skipf("man not installed: the page's rendering is not checked")
	}
	f := t.TempDir() + "/zombiewatch.1"
	os.WriteFile(f, page.Bytes(), 0o644)
	cmd := exec.Command("man", "-l", f)
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=100")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--max-zombies N") {
		t.Errorf("man -l: %v\n%s", err, out)
	}
}
