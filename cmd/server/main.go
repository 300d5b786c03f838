package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := server.Main(ctx, nil, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode("server", err, os.Stderr))
}
