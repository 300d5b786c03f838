// Package cli holds what the project's commands share about speaking to
// people: how errors are worded and which exit code each kind gets.
//
// The rules, in one place:
//
//   - One line on stderr, nothing on stdout: "PROG: " then what failed,
//     lower case, no trailing period, naming the pid, path or flag.
//   - A permission problem says so and what would fix it; it never shows as 0.
//   - Exit codes: 0 done, 1 runtime error, 2 usage error (bad flag or
//     argument: with a "see PROG -h" hint), 3 a threshold the user set
//     was exceeded (zombiewatch --max-zombies, --max-fd-ratio).
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitRuntime   = 1
	ExitUsage     = 2
	ExitThreshold = 3
	// ExitInterrupted: stopped by SIGINT (Ctrl-C) or SIGTERM, 128+2 as a
	// shell reports an interrupted command.
	ExitInterrupted = 130
)

// UsageError is a mistake in the command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// ThresholdError: the reading crossed a limit the user set; the output was
// printed in full before it.
type ThresholdError struct{ Msg string }

func (e *ThresholdError) Error() string { return e.Msg }

// ErrHelp: help or the version was asked for and printed; exit 0.
var ErrHelp = errors.New("help")

// ExitError ends a command with Code and no message: a child of the
// bundled server that has served its connection, a watch ended by Ctrl-C
// (130, as a shell reports SIGINT).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// ExitCode prints err for prog as the rules say and returns the exit code.
func ExitCode(prog string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, ErrHelp) {
		return ExitOK
	}
	var usage *UsageError
	var threshold *ThresholdError
	var exit *ExitError
	switch {
	case errors.As(err, &exit):
		return exit.Code
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "%s: %v (see %s -h)\n", prog, err, prog)
		return ExitUsage
	case errors.As(err, &threshold):
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitThreshold
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitRuntime
	}
}

// Parse parses args with fs, which must not print: a bad flag becomes a
// UsageError, -h prints help to stdout and gives ErrHelp.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer, help string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, help)
			return ErrHelp
		}
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			return &UsageError{Msg: unknownFlag(fs, args, name)}
		}
		return &UsageError{Msg: err.Error()}
	}
	return nil
}

// unknownFlag names a flag fs does not define as it was typed (one dash
// or two) and, where one is near enough to be a typo, suggests it.
func unknownFlag(fs *flag.FlagSet, args []string, name string) string {
	typed := "-" + name
	for _, a := range args {
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			typed = "--" + name
			break
		}
	}
	best, bestDist := "", 3 // more than 2 edits away is no typo
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return "unknown flag " + typed
	}
	return fmt.Sprintf("unknown flag %s: did you mean --%s?", typed, best)
}

// editDistance is the Damerau-Levenshtein distance (with adjacent
// transpositions, the commonest typo: --pdi for --pid) of a and b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Manual is a doc.go's package comment without its comment markers, for
// -h: the manual lives once.
func Manual(docSource string) string {
	_, text, _ := strings.Cut(docSource, "/*\n")
	text, _, _ = strings.Cut(text, "*/")
	return text
}

// Section is the part of a manual under the heading "# name" (Go doc
// comment syntax), up to the next heading: a subcommand's -h.
func Section(manual, name string) string {
	_, text, ok := strings.Cut(manual, "\n# "+name+"\n")
	if !ok {
		return manual
	}
	text, _, _ = strings.Cut(text, "\n# ")
	return strings.TrimLeft(text, "\n")
}

// Head is a manual up to its first section: the command's own -h.
func Head(manual string) string {
	text, _, _ := strings.Cut(manual, "\n# ")
	return text
}

// Release is the project's version, the same for every binary; a release
// bumps it. Packagers may override it and name the commit without VCS
// stamping (go build -buildvcs=false, a tarball):
//
//	go build -ldflags "-X github.com/zombiewatch/zombiewatch/internal/cli.version=1.2.3-2 \
//	  -X github.com/zombiewatch/zombiewatch/internal/cli.commit=0123abc" ./cmd/...
const Release = "0.9.0"

var version, commit = "", ""

// Version is the version and, where known, the commit it was built from:
// "0.9.0 (commit 0123abcdef01, modified)"; the commit comes from -ldflags
// or the build's VCS stamp, and is left out when neither names it.
func Version() string {
	v, c, modified := cmp.Or(version, Release), commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if c == "" {
		return v
	}
	c = c[:min(len(c), 12)]
	if modified {
		return v + " (commit " + c + ", modified)"
	}
	return v + " (commit " + c + ")"
}

// VersionFlag adds --version to fs; Versioned reports it.
func VersionFlag(fs *flag.FlagSet) *bool { return fs.Bool("version", false, "") }

// PrintVersion prints "prog VERSION" and returns ErrHelp (exit 0).
func PrintVersion(stdout io.Writer, prog string) error {
	fmt.Fprintln(stdout, prog, Version())
	return ErrHelp
}

// Main is every binary's main: run gets a context cancelled by SIGINT or
// SIGTERM and the process's streams; its error becomes the message and the
// exit code (returned) the rules say.
func Main(prog string, run func(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ExitCode(prog, run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr)
}

// interruptGrace is how long an interrupted command has to end cleanly
// (the demo stops its server and reaps its children) before it is ended.
const interruptGrace = 10 * time.Second

// MainInterrupted is Main for a command a person stops with Ctrl-C (a
// watch, a long reading): stopped so, it exits 130, as a shell reports an
// interrupted command. Services (the server, the exporter) use Main and
// exit 0 after a clean shutdown.
func MainInterrupted(prog string, run func(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error) int {
	return mainInterrupted(prog, run, interruptGrace)
}

// MainService is MainInterrupted for a service (the bundled server): the
// same 130 for Ctrl-C, 0 after a clean shutdown on SIGTERM, and no
// deadline on its shutdown (its own --grace bounds that).
func MainService(prog string, run func(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error) int {
	return mainInterrupted(prog, run, 0)
}

func mainInterrupted(prog string, run func(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error, grace time.Duration) int {
	sigint := make(chan os.Signal, 1)
	signal.Notify(sigint, os.Interrupt)
	defer signal.Stop(sigint)
	// A reading blocked in the kernel (a hung file system, a device in a
	// hostile tree) does not see its context: Ctrl-C always ends it.
	if grace > 0 {
		backstop := make(chan os.Signal, 1)
		signal.Notify(backstop, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(backstop)
		go func() {
			<-backstop
			time.Sleep(grace)
			fmt.Fprintf(os.Stderr, "%s: interrupted, and still blocked after %s: exiting\n", prog, grace)
			os.Exit(ExitInterrupted)
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if len(sigint) > 0 {
		// Whatever the run made of its cancelled context (the demo's
		// phase ends with its own error), Ctrl-C is why it ended.
		return ExitInterrupted
	}
	return ExitCode(prog, err, os.Stderr)
}

// ListFlag is a string flag that may be given more than once.
type ListFlag []string

func (l *ListFlag) String() string     { return strings.Join(*l, ",") }
func (l *ListFlag) Set(v string) error { *l = append(*l, v); return nil }

// PIDList is a process id flag that may be given more than once; the
// caller checks the values (a pid above 0).
type PIDList []int

func (l *PIDList) String() string { return fmt.Sprint(*l) }

func (l *PIDList) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("parse error")
	}
	*l = append(*l, n)
	return nil
}

// LookupUID takes a user name or a uid number, as pgrep -u does.
func LookupUID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, errors.New("no such user")
	}
	return strconv.Atoi(u.Uid)
}
