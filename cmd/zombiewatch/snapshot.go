package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/report"
)

// snapshotConfig is the root command's flags, validated.
type snapshotConfig struct {
	pid        int
	json       bool
	zombies    bool
	fdTypes    bool
	maxZombies int
	maxFDRatio float64
	procRoot   string
	watch      bool
	interval   time.Duration
	count      int
	top        int
}

func parseSnapshotFlags(args []string, stdout io.Writer) (snapshotConfig, error) {
	var c snapshotConfig
	var showVersion bool
	fs := flag.NewFlagSet("zombiewatch", flag.ContinueOnError)
	fs.IntVar(&c.pid, "pid", 0, "")
	fs.BoolVar(&c.json, "json", false, "")
	fs.BoolVar(&c.zombies, "zombies", false, "")
	fs.BoolVar(&c.fdTypes, "fd-types", true, "")
	fs.IntVar(&c.maxZombies, "max-zombies", -1, "")
	fs.Float64Var(&c.maxFDRatio, "max-fd-ratio", 0, "")
	fs.StringVar(&c.procRoot, "proc-root", "/proc", "")
	fs.BoolVar(&c.watch, "watch", false, "")
	fs.DurationVar(&c.interval, "interval", time.Second, "")
	fs.IntVar(&c.count, "count", 0, "")
	fs.IntVar(&c.top, "top", 10, "")
	fs.BoolVar(&showVersion, "version", false, "")
	if err := cli.Parse(fs, args, stdout, manual()); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case showVersion:
		fmt.Fprintln(stdout, "zombiewatch", versionString())
		return c, cli.ErrHelp
	case fs.NArg() > 0:
		return c, cli.Usagef("unexpected argument %q", fs.Arg(0))
	case !set["pid"] && (c.watch || c.zombies || set["max-zombies"] || set["max-fd-ratio"]):
		return c, cli.Usagef("--watch, --zombies, --max-zombies and --max-fd-ratio need --pid")
	case set["pid"] && set["top"]:
		return c, cli.Usagef("--top bounds the host-wide lists: not with --pid")
	case c.top < 0:
		return c, cli.Usagef("--top %d: want 0 (no bound) or more", c.top)
	case set["pid"] && c.pid <= 0:
		return c, cli.Usagef("--pid %d: not a process id (want a number above 0)", c.pid)
	case c.json && c.zombies:
		return c, cli.Usagef("--json and --zombies both choose the output: pick one (the JSON has zombie_list)")
	case set["max-zombies"] && c.maxZombies < 0:
		return c, cli.Usagef("--max-zombies %d: want 0 or more", c.maxZombies)
	case set["max-fd-ratio"] && (c.maxFDRatio <= 0 || c.maxFDRatio > 1):
		return c, cli.Usagef("--max-fd-ratio %g: want a ratio above 0 and at most 1 (0.9 is 90%% of the soft limit)", c.maxFDRatio)
	case c.procRoot == "":
		return c, cli.Usagef("--proc-root is empty")
	case (set["interval"] || set["count"]) && !c.watch:
		return c, cli.Usagef("--interval and --count go with --watch")
	case c.watch && c.interval < 10*time.Millisecond:
		return c, cli.Usagef("--interval %s: want 10ms or more", c.interval)
	case c.watch && c.count < 0:
		return c, cli.Usagef("--count %d: want 0 (no bound) or more", c.count)
	case c.watch && c.zombies:
		return c, cli.Usagef("--zombies lists once: not with --watch")
	case c.watch && (set["max-zombies"] || set["max-fd-ratio"]):
		return c, cli.Usagef("--max-zombies and --max-fd-ratio check one reading: not with --watch")
	}
	return c, nil
}

func runSnapshot(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseSnapshotFlags(args, stdout)
	if err != nil {
		return err
	}
	fs, err := proc.New(c.procRoot)
	if err != nil {
		return err
	}
	if c.watch {
		return runWatch(ctx, c, fs, stdout)
	}
	if c.pid == 0 {
		return runHost(c, fs, stdout)
	}
	snap, err := fs.Snapshot(c.pid, proc.Options{FDTypes: c.fdTypes, ZombieOwners: c.zombies})
	var denied *proc.PermissionError
	if err != nil && !errors.As(err, &denied) {
		return err
	}
	r := report.New(snap, serverStatus(c.procRoot, c.pid))
	switch {
	case c.json:
		err = report.JSON(stdout, r, isTerminal(stdout))
	case c.zombies:
		err = report.Zombies(stdout, r)
	default:
		err = report.Table(stdout, r)
	}
	if err != nil {
		return err
	}
	if denied != nil {
		return denied
	}
	return checkThresholds(c, r)
}

// checkThresholds turns a crossed --max-zombies or --max-fd-ratio into exit 3.
func checkThresholds(c snapshotConfig, r *report.Report) error {
	if c.maxZombies >= 0 && r.Zombies > c.maxZombies {
		return &cli.ThresholdError{Msg: fmt.Sprintf("pid %d: %d zombie children, above --max-zombies %d", r.PID, r.Zombies, c.maxZombies)}
	}
	if c.maxFDRatio > 0 && r.FDRatio > c.maxFDRatio {
		return &cli.ThresholdError{Msg: fmt.Sprintf("pid %d: %d open fds, %.1f%% of the soft limit %s, above --max-fd-ratio %g",
			r.PID, *r.FDs, r.FDRatio*100, r.FDSoftLimit, c.maxFDRatio)}
	}
	return nil
}

// serverStatus asks pid's control socket for its settings, if it is a
// bundled server on this host's /proc: any other process has no socket,
// and the connect fails at once.
func serverStatus(procRoot string, pid int) *control.Status {
	if procRoot != "/proc" {
		return nil
	}
	st, err := control.Call(pid, control.Request{}, 500*time.Millisecond)
	if err != nil {
		return nil
	}
	return st
}

// runHost scans every process: who holds zombies, who is nearest its fd
// limit, and each uid's tasks against RLIMIT_NPROC.
func runHost(c snapshotConfig, fs *proc.FS, stdout io.Writer) error {
	h, err := fs.Scan(proc.ScanOptions{Parents: c.top, FDUsers: c.top, UIDs: c.top, FDTypes: c.fdTypes})
	if err != nil {
		return err
	}
	r := report.NewHost(h, func(pid int) *control.Status { return serverStatus(c.procRoot, pid) })
	if c.json {
		return report.HostJSON(stdout, r, isTerminal(stdout))
	}
	return report.HostTable(stdout, r)
}
