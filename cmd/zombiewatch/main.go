package main

import (
	"context"
	_ "embed"
	"io"
	"os"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/server"
)

func main() { os.Exit(zombiewatch()) }

// zombiewatch runs the command with the process's arguments and streams
// and returns its exit code.
func zombiewatch() int { return cli.MainInterrupted("zombiewatch", run) }

//go:embed doc.go
var docSource string

func manual() string { return cli.Manual(docSource) }

// run is zombiewatch: it parses args and runs one subcommand.
func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "completion":
			return runCompletion(args[1:], stdout)
		case "man":
			return runMan(args[1:], stdout)
		case "ctl":
			return runCtl(args[1:], stdout)
		case "serve":
			return runServe(args[1:])
		case "demo":
			return runDemo(ctx, args[1:], stdout)
		case "server":
			return server.Main(ctx, args[:1], args[1:], stdout, stderr)
		}
	}
	return runSnapshot(ctx, args, stdin, stdout, stderr)
}
