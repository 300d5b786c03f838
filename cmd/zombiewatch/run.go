package main

import (
	"context"
	_ "embed"
	"io"
	"runtime/debug"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/server"
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

func manual() string { return cli.Manual(docSource) }

// run is zombiewatch: it parses args and runs one subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "ctl":
			return runCtl(ctx, args[1:], stdout)
		case "serve":
			return runServe(args[1:])
		case "demo":
			return runDemo(ctx, args[1:], stdout)
		case "server":
			return server.Main(ctx, args[:1], args[1:], stdout, stderr)
		}
	}
	return runSnapshot(ctx, args, stdout)
}
