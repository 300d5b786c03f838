package main

import (
	"context"
	_ "embed"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/server"
)

//go:embed doc.go
var docSource string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode("server", err, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		cfg       server.Config
		reaper    string
		logLevel  string
		child     bool
		maxHeader int
	)
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8888", "")
	fs.StringVar(&reaper, "reaper", string(control.ReaperLoop), "")
	fs.BoolVar(&cfg.CloseConn, "close-conn", true, "")
	fs.DurationVar(&cfg.Child.Hold, "hold", 0, "")
	fs.DurationVar(&cfg.Child.ReadTimeout, "read-timeout", 5*time.Second, "")
	fs.IntVar(&maxHeader, "max-header-bytes", 8192, "")
	fs.DurationVar(&cfg.Grace, "grace", 5*time.Second, "")
	fs.Uint64Var(&cfg.NoFile, "nofile", 0, "")
	fs.Uint64Var(&cfg.NProc, "nproc", 0, "")
	fs.StringVar(&logLevel, "log-level", "info", "")
	fs.BoolVar(&child, "child", false, "") // internal: serve one connection on fd 3
	if err := cli.Parse(fs, args, stdout, cli.Manual(docSource)); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return cli.Usagef("--log-level %q: want debug, info or warn", logLevel)
	}
	mode, err := control.ParseReaper(reaper)
	switch {
	case err != nil:
		return cli.Usagef("--%v", err)
	case fs.NArg() > 0:
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	case cfg.Child.Hold < 0, cfg.Child.ReadTimeout <= 0, cfg.Grace < 0:
		return cli.Usagef("--hold, --read-timeout and --grace want positive durations")
	case maxHeader < 256:
		return cli.Usagef("--max-header-bytes %d: want at least 256", maxHeader)
	}
	cfg.Reaper = mode
	cfg.Child.MaxHeaderBytes = maxHeader
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if child {
		os.Exit(server.ServeChild(cfg.Child, log))
	}
	cfg.Log = log
	cfg.ChildArgs = childArgs(fs)
	srv, err := server.Listen(cfg)
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

// childArgs are the flags a child needs: this command line's, plus -child.
func childArgs(fs *flag.FlagSet) []string {
	args := []string{"-child"}
	for _, name := range []string{"hold", "read-timeout", "max-header-bytes", "log-level"} {
		args = append(args, "-"+name+"="+fs.Lookup(name).Value.String())
	}
	return args
}
