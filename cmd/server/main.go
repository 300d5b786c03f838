package main

import (
	"context"
	"io"
	"os"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/server"
)

func main() { os.Exit(cli.MainService("server", run)) }

func run(ctx context.Context, args []string, _ *os.File, stdout, stderr io.Writer) error {
	return server.Main(ctx, nil, args, stdout, stderr)
}
