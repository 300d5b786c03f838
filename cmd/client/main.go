package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/load"
)

//go:embed doc.go
var docSource string

func main() { os.Exit(cli.Main("client", run)) }

func run(ctx context.Context, args []string, _ *os.File, stdout, stderr io.Writer) error {
	var cfg load.Config
	var asJSON bool
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8888", "")
	fs.IntVar(&cfg.Clients, "max-clients", 1, "")
	fs.IntVar(&cfg.Conns, "max-conns", 1024, "")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "")
	fs.BoolVar(&cfg.KeepOpen, "keep-open", false, "")
	fs.BoolVar(&asJSON, "json", false, "")
	showVersion := cli.VersionFlag(fs)
	if err := cli.Parse(fs, args, stdout, cli.Manual(docSource)); err != nil {
		return err
	}
	if *showVersion {
		return cli.PrintVersion(stdout, "client")
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	case cfg.Clients < 1 || cfg.Conns < 1:
		return cli.Usagef("--max-clients and --max-conns want 1 or more")
	case cfg.Timeout <= 0:
		return cli.Usagef("--timeout %s: want a positive duration", cfg.Timeout)
	}
	total := cfg.Clients * cfg.Conns
	cfg.Progress = func(r load.Result) {
		fmt.Fprintf(stderr, "client: %d/%d connections, %d answered, %d refused, %d failed\n", r.Conns, total, r.Answered, r.Refused, r.Failed)
	}
	res := load.Run(ctx, cfg)
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, res)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted after %d of %d connections", res.Conns, total)
	}
	if res.OK() != total {
		return fmt.Errorf("%d of %d connections did not get 200", total-res.OK(), total)
	}
	return nil
}
