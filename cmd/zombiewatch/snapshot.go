package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"golang.org/x/term"

	"github.com/zombiewatch/zombiewatch/internal/bundled"
	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/render"
)

// snapshotConfig is the root command's flags, validated.
type snapshotConfig struct {
	pid        int   // the one process read (after selection)
	pids       []int // --pid, repeatable
	names      []*regexp.Regexp
	full       bool
	uid        *int
	minAge     time.Duration
	json       bool
	zombies    bool
	fds        bool
	fdTypes    bool
	maxZombies int
	maxFDRatio float64
	procRoot   string
	cgroupRoot string
	cgroupSet  bool
	watch      bool
	interval   time.Duration
	count      int
	top        int
}

func parseSnapshotFlags(args []string, stdout io.Writer) (snapshotConfig, error) {
	var c snapshotConfig
	fs := flag.NewFlagSet("zombiewatch", flag.ContinueOnError)
	showVersion := cli.VersionFlag(fs)
	var names, users cli.ListFlag
	fs.Var((*cli.PIDList)(&c.pids), "pid", "")
	fs.Var(&names, "name", "")
	fs.BoolVar(&c.full, "full", false, "")
	fs.Var(&users, "user", "")
	fs.DurationVar(&c.minAge, "min-age", 0, "")
	fs.BoolVar(&c.json, "json", false, "")
	fs.BoolVar(&c.zombies, "zombies", false, "")
	fs.BoolVar(&c.fds, "fds", false, "")
	fs.BoolVar(&c.fdTypes, "fd-types", true, "")
	fs.IntVar(&c.maxZombies, "max-zombies", -1, "")
	fs.Float64Var(&c.maxFDRatio, "max-fd-ratio", 0, "")
	fs.StringVar(&c.procRoot, "proc-root", "/proc", "")
	fs.StringVar(&c.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "")
	fs.BoolVar(&c.watch, "watch", false, "")
	fs.DurationVar(&c.interval, "interval", time.Second, "")
	fs.IntVar(&c.count, "count", 0, "")
	fs.IntVar(&c.top, "top", 10, "")
	if err := cli.Parse(fs, args, stdout, cli.Head(manual())); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.cgroupSet = set["cgroup-root"]
	for _, n := range names {
		re, err := regexp.Compile(n)
		if err != nil {
			return c, cli.Usagef("--name %q: %v", n, err)
		}
		c.names = append(c.names, re)
	}
	if len(users) > 1 {
		return c, cli.Usagef("--user: give one user")
	}
	if len(users) == 1 {
		uid, err := cli.LookupUID(users[0])
		if err != nil {
			return c, cli.Usagef("--user %q: %v", users[0], err)
		}
		c.uid = &uid
	}
	for _, pid := range c.pids {
		if pid <= 0 {
			return c, cli.Usagef("--pid %d: not a process id (want a number above 0)", pid)
		}
	}
	set["pid"] = set["pid"] || set["name"] || set["user"] // a selection, as --pid is
	switch {
	case set["full"] && !set["name"]:
		return c, cli.Usagef("--full matches --name against the command line: give --name")
	case c.minAge < 0:
		return c, cli.Usagef("--min-age %s: want 0 or more", c.minAge)
	case *showVersion:
		return c, cli.PrintVersion(stdout, "zombiewatch")
	case fs.NArg() > 0:
		return c, cli.Usagef("unexpected argument %q", fs.Arg(0))
	case !set["pid"] && (c.zombies || c.fds || set["max-zombies"] || set["max-fd-ratio"] || set["min-age"]):
		return c, cli.Usagef("--zombies, --fds, --min-age, --max-zombies and --max-fd-ratio need --pid (or --name, --user)")
	case c.fds && c.zombies:
		return c, cli.Usagef("--fds and --zombies both choose the output: pick one")
	case c.fds && c.watch:
		return c, cli.Usagef("--fds lists once: not with --watch")
	case !set["pid"] && c.watch && set["top"]:
		return c, cli.Usagef("--top bounds the one-shot host lists: the host watch lists what grows")
	case set["pid"] && set["top"]:
		return c, cli.Usagef("--top bounds the host-wide lists: not with --pid")
	case c.top < 0:
		return c, cli.Usagef("--top %d: want 0 (no bound) or more", c.top)
	case c.json && c.zombies:
		return c, cli.Usagef("--json and --zombies both choose the output: pick one (the JSON has zombie_list)")
	case set["max-zombies"] && c.maxZombies < 0:
		return c, cli.Usagef("--max-zombies %d: want 0 or more", c.maxZombies)
	case set["max-fd-ratio"] && (c.maxFDRatio <= 0 || c.maxFDRatio > 1):
		return c, cli.Usagef("--max-fd-ratio %g: want a ratio above 0 and at most 1 (0.9 is 90%% of the soft limit)", c.maxFDRatio)
	case c.procRoot == "":
		return c, cli.Usagef("--proc-root is empty")
	case c.cgroupRoot == "":
		return c, cli.Usagef("--cgroup-root is empty")
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

func runSnapshot(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	c, err := parseSnapshotFlags(args, stdout)
	if err != nil {
		return err
	}
	fs, err := proc.New(c.procRoot)
	if err != nil {
		return err
	}
	// The optional sources of every reading, by name: TCP states of the
	// socket fds, and a bundled server's switches (live /proc only).
	cgSources, cgHost := cgroup.Sources(fs, c.cgroupRoot, c.cgroupSet)
	r := model.NewReader(fs, append([]model.Source{model.TCPStates(fs), bundled.Source(fs)}, cgSources...)...)
	r.HostSources = cgHost
	if err := r.ThreadBudget(ctx); err != nil {
		return err
	}
	if len(c.pids) == 0 && c.names == nil && c.uid == nil {
		if c.watch {
			return runHostWatch(ctx, c, r, stdin, stdout, stderr)
		}
		return runHost(ctx, c, r, stdout)
	}
	targets, err := selectTargets(ctx, c, r)
	switch {
	case err != nil:
		return err
	case len(targets) > 1 && c.watch:
		return cli.Usagef("--watch follows one process; %d match: give one --pid", len(targets))
	case len(targets) > 1:
		return runMany(ctx, c, r, targets, stdout)
	}
	c.pid = targets[0]
	if c.watch {
		return runWatch(ctx, c, r, stdin, stdout, stderr)
	}
	p, err := r.Process(ctx, c.pid, c.options())
	var denied *model.PermissionError
	if err != nil && !errors.As(err, &denied) {
		return err
	}
	if p.ThreadID != 0 {
		fmt.Fprintf(stderr, "zombiewatch: pid %d is a thread of process %d: reading process %d\n", p.ThreadID, p.PID, p.PID)
	}
	switch {
	case c.json:
		err = render.JSON(stdout, p, isTerminal(stdout))
	case c.zombies:
		err = render.Zombies(stdout, p)
	case c.fds:
		err = render.FDs(stdout, p)
	default:
		err = render.Table(stdout, p)
		if p.State == "Z" && err == nil {
			// The pid copied from ps ... <defunct>: the parent is the
			// process to look at, so show it too.
			if parent, perr := r.Process(ctx, p.PPID, c.options()); perr == nil {
				fmt.Fprintf(stdout, "\nits parent:\n\n")
				err = render.Table(stdout, parent)
			}
		}
	}
	if err != nil {
		return err
	}
	if terr := checkThresholds(c, p); terr != nil {
		return terr // a crossed threshold is what a script asked about: it wins over a refused read
	}
	if denied != nil {
		return denied
	}
	return nil
}

func (c snapshotConfig) options() model.Options {
	return model.Options{FDTypes: c.fdTypes, ZombieOwners: c.zombies, MinAge: c.minAge, FDList: c.fds}
}

// checkThresholds turns a crossed --max-zombies or --max-fd-ratio into exit 3.
func checkThresholds(c snapshotConfig, p *model.Process) error {
	if c.maxZombies >= 0 && p.Zombies > c.maxZombies {
		return &cli.ThresholdError{Msg: fmt.Sprintf("pid %d: %d zombie children, above --max-zombies %d", p.PID, p.Zombies, c.maxZombies)}
	}
	if c.maxFDRatio > 0 && p.FDRatio > c.maxFDRatio {
		return &cli.ThresholdError{Msg: fmt.Sprintf("pid %d: %d open fds, %.1f%% of the soft limit %s, above --max-fd-ratio %g",
			p.PID, *p.FDs, p.FDRatio*100, p.FDSoftLimit, c.maxFDRatio)}
	}
	return nil
}

// runHost scans every process: who holds zombies, who is nearest its fd
// limit, and each uid's tasks against RLIMIT_NPROC.
func runHost(ctx context.Context, c snapshotConfig, r *model.Reader, stdout io.Writer) error {
	h, err := r.Host(ctx, model.HostOptions{Parents: c.top, FDUsers: c.top, UIDs: c.top, FDTypes: c.fdTypes})
	if err != nil {
		return err
	}
	if c.json {
		err = render.HostJSON(stdout, h, isTerminal(stdout))
	} else {
		err = render.HostTable(stdout, h)
	}
	if err == nil && len(h.Denied) > 0 {
		err = fmt.Errorf("%d %s refused: %s", len(h.Denied), plural(len(h.Denied), "read was", "reads were"), h.Denied[0])
	}
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// isTerminal tells whether w is a terminal (colour, indentation and redraw
// are for people, not for pipes and files).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
