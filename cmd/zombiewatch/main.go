package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zombiewatch/zombiewatch/internal/cli"
)

func main() { os.Exit(zombiewatch()) }

// zombiewatch runs the command with the process's arguments and streams
// and returns its exit code.
func zombiewatch() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.ExitCode("zombiewatch", run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
}
