// Command zombiewatch-exporter serves zombiewatch's host scan as Prometheus
// metrics, or writes them for node_exporter's textfile collector. It is
// its own binary so that the zombiewatch command does not link (and start)
// client_golang; "zombiewatch serve" runs it. Its manual is doc.go.
package main

import (
	_ "embed"
	"os"

	"github.com/zombiewatch/zombiewatch/internal/cli"
)

//go:embed doc.go
var docSource string

func main() { os.Exit(exporterMain()) }

func exporterMain() int { return cli.Main("zombiewatch-exporter", run) }
