// Command zombiewatch-exporter serves zombiewatch's host scan as Prometheus
// metrics, or writes them for node_exporter's textfile collector. It is
// its own binary so that the zombiewatch command does not link (and start)
// client_golang; "zombiewatch serve" runs it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zombiewatch/zombiewatch/internal/cli"
)

func main() { os.Exit(exporterMain()) }

func exporterMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.ExitCode("zombiewatch-exporter", run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
}
