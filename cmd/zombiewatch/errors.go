package main

// How zombiewatch speaks when something is wrong, in one place:
//
//   - One line on stderr, nothing on stdout: "zombiewatch: " then what failed,
//     lower case, no trailing period, naming the pid, path or flag.
//   - A permission problem says so and what would fix it; it never shows as 0.
//   - Exit codes: 0 done, 1 runtime error (no such process, unreadable /proc),
//     2 usage error (bad flag or argument: add a "see zombiewatch -h" hint),
//     3 a --max-zombies or --max-fd-ratio threshold was exceeded.

import (
	"errors"
	"fmt"
	"io"
)

const (
	exitOK        = 0
	exitRuntime   = 1
	exitUsage     = 2
	exitThreshold = 3
)

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// thresholdError: the reading crossed a limit the user set; the output was
// printed in full before it.
type thresholdError struct{ msg string }

func (e *thresholdError) Error() string { return e.msg }

// errHelp: -h was asked for and printed; exit 0.
var errHelp = errors.New("help")

// exitCode prints err as the rules above say and returns the exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	var usage *usageError
	var threshold *thresholdError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "zombiewatch: %v (see zombiewatch -h)\n", err)
		return exitUsage
	case errors.As(err, &threshold):
		fmt.Fprintf(stderr, "zombiewatch: %v\n", err)
		return exitThreshold
	default:
		fmt.Fprintf(stderr, "zombiewatch: %v\n", err)
		return exitRuntime
	}
}
