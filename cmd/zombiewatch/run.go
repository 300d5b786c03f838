package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

//go:embed doc.go
var docSource string

// version is set with -ldflags "-X main.version=v1.2.3"; otherwise it comes
// from the module's build information.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// manual is doc.go's package comment without the comment markers.
func manual() string {
	text, _, _ := strings.Cut(docSource, "*/")
	_, text, _ = strings.Cut(text, "/*\n")
	return text
}

// run is zombiewatch: it parses args and runs one subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSnapshot(ctx, args, stdout)
}

// parseFlags parses args with fs, which must not print: a bad flag becomes
// one usage error line, -h prints the manual to stdout.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, help string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, help)
			return errHelp
		}
		return &usageError{msg: err.Error()}
	}
	return nil
}
