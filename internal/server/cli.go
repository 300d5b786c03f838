package server

import (
	"context"
	_ "embed"
	"flag"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/control"
)

// docSource is this package's doc.go, whose comment is the server's
// manual: printed by server -h and zombiewatch server -h alike.
//
//go:embed doc.go
var docSource string

// Main is the server's command line: it parses args, then runs a parent
// until ctx is done or, with the internal -child flag, serves the one
// connection on fd 3 and exits. prefix is what selects the server in this
// binary (nothing for cmd/server, "server" for zombiewatch): each child
// is this binary run with prefix, -child and the child's flags.
func Main(ctx context.Context, prefix, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil || o.version {
		return err
	}
	cfg := o.cfg
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.level}))
	if o.child {
		// Its parent set a parent-death signal before exec; one gone
		// before that (reparented already) leaves nothing to answer for.
		if o.parent != 0 && os.Getppid() != o.parent {
			return &cli.ExitError{Code: 1}
		}
		// The parent gives a child /dev/null as fd 2 and its own stderr as
		// fd 4, so that a runtime dump at start-up stays out of the log.
		if f := os.NewFile(4, "log"); f != nil && isOpen(f) {
			log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: o.level}))
		}
		return &cli.ExitError{Code: ServeChild(cfg.Child, log)}
	}
	cfg.Log = log
	cfg.ChildPrefix = prefix
	cfg.LogLevel = o.level.String()
	srv, err := Listen(cfg)
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

// options are the server's flags, checked.
type options struct {
	cfg     Config // without its Log, ChildPrefix and LogLevel
	level   slog.Level
	child   bool // internal: serve one connection on fd 3
	parent  int  // internal: the child's parent, which it outlives not
	version bool
}

// parseFlags reads and checks the flags; with --version it prints the
// version and sets o.version.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	var (
		o                options
		reaper, logLevel string
		maxHeader        int
	)
	cfg := &o.cfg
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
	fs.IntVar(&cfg.MaxChildren, "max-children", 256, "")
	fs.IntVar(&cfg.PidsMax, "pids-max", 0, "")
	fs.StringVar(&cfg.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "")
	fs.StringVar(&logLevel, "log-level", "info", "")
	fs.BoolVar(&o.child, "child", false, "")
	fs.IntVar(&o.parent, "parent", 0, "")
	showVersion := cli.VersionFlag(fs)
	if err := cli.Parse(fs, args, stdout, cli.Manual(docSource)); err != nil {
		return o, err
	}
	if *showVersion {
		o.version = true
		return o, cli.PrintVersion(stdout, "server")
	}
	if err := o.level.UnmarshalText([]byte(logLevel)); err != nil {
		return o, cli.Usagef("--log-level %q: want debug, info or warn", logLevel)
	}
	mode, err := control.ParseReaper(reaper)
	switch {
	case err != nil:
		return o, cli.Usagef("--%v", err)
	case fs.NArg() > 0:
		return o, cli.Usagef("unexpected argument %q", fs.Arg(0))
	case cfg.Child.Hold < 0, cfg.Child.ReadTimeout <= 0, cfg.Grace < 0:
		return o, cli.Usagef("--hold, --read-timeout and --grace want positive durations")
	case cfg.PidsMax < 0:
		return o, cli.Usagef("--pids-max %d: want 0 (none) or more", cfg.PidsMax)
	case cfg.MaxChildren < 0:
		return o, cli.Usagef("--max-children %d: want 0 (no bound) or more", cfg.MaxChildren)
	case maxHeader < 256:
		return o, cli.Usagef("--max-header-bytes %d: want at least 256", maxHeader)
	}
	cfg.Reaper = mode
	cfg.Child.MaxHeaderBytes = maxHeader
	return o, nil
}

// isOpen tells whether f's descriptor is open.
func isOpen(f *os.File) bool {
	_, err := f.Stat()
	return err == nil
}
