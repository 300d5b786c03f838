package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(zombiewatch()) }

// zombiewatch runs the command with the process's arguments and streams
// and returns its exit code.
func zombiewatch() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
}
