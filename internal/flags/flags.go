// Package flags is the zombiewatch command's flag grammar: every flag,
// parsed and checked before anything touches /proc, one usage message per
// bad combination, and what the flags ask of a reading.
package flags

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/model"
)

// Config is the zombiewatch command's flags, validated.
type Config struct {
	PID        int   // the one process read (after selection)
	PIDs       []int // --pid, repeatable
	Names      []*regexp.Regexp
	Full       bool
	UID        *int
	MinAge     time.Duration
	Observe    time.Duration
	JSON       bool
	Zombies    bool
	FDs        bool
	FDTypes    bool
	MaxZombies int
	MaxFDRatio float64
	ProcRoot   string
	CgroupRoot string
	CgroupSet  bool
	Watch      bool
	Interval   time.Duration
	Count      int
	Top        int
	Strict     bool // a refused read of detail fails the host-wide run too
	Origin     bool // trace the stacks that open descriptors and fork children
	For        time.Duration
}

// Parse parses and checks args; help is the -h text, and version printing
// is done here. Usage mistakes are cli.UsageErrors, one line each.
func Parse(args []string, stdout io.Writer, help string) (Config, error) {
	var c Config
	var names, users cli.ListFlag
	fs, showVersion := flagSet(&c, &names, &users)
	if err := cli.Parse(fs, args, stdout, help); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.CgroupSet = set["cgroup-root"]
	if err := c.selection(names, users); err != nil {
		return c, err
	}
	set["pid"] = set["pid"] || set["name"] || set["user"] // a selection, as --pid is
	switch {
	case set["full"] && !set["name"]:
		return c, cli.Usagef("--full matches --name against the command line: give --name")
	case c.MinAge < 0:
		return c, cli.Usagef("--min-age %s: want 0 or more", c.MinAge)
	case c.Observe < 0 || c.Observe > MaxObserve:
		return c, cli.Usagef("--observe %s: want 0 (off) to %s", c.Observe, MaxObserve)
	case set["observe"] && !set["pid"]:
		return c, cli.Usagef("--observe follows one process's zombies: give --pid (the host view judges from exit ages)")
	case set["observe"] && c.Watch:
		return c, cli.Usagef("--observe is for one reading: --watch observes as long as it runs")
	case *showVersion:
		return c, cli.PrintVersion(stdout, "zombiewatch")
	case fs.NArg() > 0:
		return c, cli.Usagef("unexpected argument %q", fs.Arg(0))
	case !set["pid"] && (c.Zombies || c.FDs || set["max-zombies"] || set["max-fd-ratio"] || set["min-age"]):
		return c, cli.Usagef("--zombies, --fds, --min-age, --max-zombies and --max-fd-ratio need --pid (or --name, --user)")
	case c.FDs && c.Zombies:
		return c, cli.Usagef("--fds and --zombies both choose the output: pick one")
	case c.FDs && c.Watch:
		return c, cli.Usagef("--fds lists once: not with --watch")
	case !set["pid"] && c.Watch && set["top"]:
		return c, cli.Usagef("--top bounds the one-shot host lists: the host watch lists what grows")
	case set["pid"] && set["top"]:
		return c, cli.Usagef("--top bounds the host-wide lists: not with --pid")
	case c.Top < 0:
		return c, cli.Usagef("--top %d: want 0 (no bound) or more", c.Top)
	case c.JSON && c.Zombies:
		return c, cli.Usagef("--json and --zombies both choose the output: pick one (the JSON has zombie_list)")
	case set["max-zombies"] && c.MaxZombies < 0:
		return c, cli.Usagef("--max-zombies %d: want 0 or more", c.MaxZombies)
	case set["max-fd-ratio"] && (c.MaxFDRatio <= 0 || c.MaxFDRatio > 1):
		return c, cli.Usagef("--max-fd-ratio %g: want a ratio above 0 and at most 1 (0.9 is 90%% of the soft limit)", c.MaxFDRatio)
	case c.ProcRoot == "":
		return c, cli.Usagef("--proc-root is empty")
	case c.CgroupRoot == "":
		return c, cli.Usagef("--cgroup-root is empty")
	case (set["interval"] || set["count"]) && !c.Watch:
		return c, cli.Usagef("--interval and --count go with --watch")
	case c.Watch && c.Interval < 10*time.Millisecond:
		return c, cli.Usagef("--interval %s: want 10ms or more", c.Interval)
	case c.Watch && c.Count < 0:
		return c, cli.Usagef("--count %d: want 0 (no bound) or more", c.Count)
	case c.Watch && c.Zombies:
		return c, cli.Usagef("--zombies lists once: not with --watch")
	case c.Watch && (set["max-zombies"] || set["max-fd-ratio"]):
		return c, cli.Usagef("--max-zombies and --max-fd-ratio check one reading: not with --watch")
	}
	return c, c.origin(set)
}

// origin checks --origin and --for: one live process traced a while, or
// the host watch's fd growers traced as long as it runs.
func (c *Config) origin(set map[string]bool) error {
	switch {
	case set["for"] && !c.Origin:
		return cli.Usagef("--for is how long --origin traces: give --origin")
	case !c.Origin:
		return nil
	case len(c.PIDs) != 1 && !(c.Watch && len(c.PIDs) == 0) || c.Names != nil || c.UID != nil:
		return cli.Usagef("--origin traces one process, or with --watch the host's fd growers: give one --pid, or --watch")
	case c.Watch && set["for"]:
		return cli.Usagef("--for bounds a one-shot --origin: with --watch it traces as long as the watch runs")
	case c.FDs || c.Zombies:
		return cli.Usagef("--origin chooses the output: not with --fds or --zombies")
	case set["proc-root"] && c.ProcRoot != "/proc":
		return cli.Usagef("--origin traces the running kernel: not with --proc-root")
	case c.For <= 0 || c.For > MaxFor:
		return cli.Usagef("--for %s: want above 0, up to %s", c.For, MaxFor)
	}
	return nil
}

// selection checks and compiles what selects processes: --name patterns,
// one --user, pids above 0.
func (c *Config) selection(names, users cli.ListFlag) error {
	for _, n := range names {
		re, err := regexp.Compile(n)
		if err != nil {
			return cli.Usagef("--name %q: %v", n, err)
		}
		c.Names = append(c.Names, re)
	}
	if len(users) > 1 {
		return cli.Usagef("--user: give one user")
	}
	if len(users) == 1 {
		uid, err := cli.LookupUID(users[0])
		if err != nil {
			return cli.Usagef("--user %q: %v", users[0], err)
		}
		c.UID = &uid
	}
	for _, pid := range c.PIDs {
		if pid <= 0 {
			return cli.Usagef("--pid %d: not a process id (want a number above 0)", pid)
		}
	}
	return nil
}

// flagSet is the one flag table: Parse parses with it, and the shell
// completions are generated from it (Names).
func flagSet(c *Config, names, users *cli.ListFlag) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("zombiewatch", flag.ContinueOnError)
	showVersion := cli.VersionFlag(fs)
	fs.Var((*cli.PIDList)(&c.PIDs), "pid", "")
	fs.Var(names, "name", "")
	fs.BoolVar(&c.Full, "full", false, "")
	fs.Var(users, "user", "")
	fs.DurationVar(&c.MinAge, "min-age", 0, "")
	fs.DurationVar(&c.Observe, "observe", DefaultObserve, "")
	fs.BoolVar(&c.JSON, "json", false, "")
	fs.BoolVar(&c.Zombies, "zombies", false, "")
	fs.BoolVar(&c.FDs, "fds", false, "")
	fs.BoolVar(&c.FDTypes, "fd-types", true, "")
	fs.IntVar(&c.MaxZombies, "max-zombies", -1, "")
	fs.Float64Var(&c.MaxFDRatio, "max-fd-ratio", 0, "")
	fs.StringVar(&c.ProcRoot, "proc-root", "/proc", "")
	fs.StringVar(&c.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "")
	fs.BoolVar(&c.Watch, "watch", false, "")
	fs.DurationVar(&c.Interval, "interval", time.Second, "")
	fs.IntVar(&c.Count, "count", 0, "")
	fs.IntVar(&c.Top, "top", 10, "")
	fs.BoolVar(&c.Strict, "strict", false, "")
	fs.BoolVar(&c.Origin, "origin", false, "")
	fs.DurationVar(&c.For, "for", DefaultFor, "")
	return fs, showVersion
}

// Flags are the command's flags, for its completions.
func Flags() *flag.FlagSet {
	var c Config
	var names, users cli.ListFlag
	fs, _ := flagSet(&c, &names, &users)
	return fs
}

// DefaultObserve is how long a one-shot --pid reading follows zombies that
// exited too recently to judge: long enough to see the lazy reapers
// measured (0.5-1 s loops) reap, and for a zombie nobody reaps to become
// stale (model.StaleAge). MaxObserve bounds it.
//
// DefaultFor is how long --origin traces: a leak of one fd a second shows
// in 10 s; MaxFor bounds it.
const (
	DefaultFor     = 10 * time.Second
	MaxFor         = 24 * time.Hour
	DefaultObserve = 2 * time.Second
	MaxObserve     = time.Minute
)

// Options are the reads the flags ask for.
func (c Config) Options() model.Options {
	return model.Options{FDTypes: c.FDTypes, ZombieOwners: c.Zombies, MinAge: c.MinAge, FDList: c.FDs}
}

// Thresholds turns a crossed --max-zombies or --max-fd-ratio into exit 3.
func (c Config) Thresholds(p *model.Process) error {
	if c.MaxZombies >= 0 && p.Zombies > c.MaxZombies {
		return &cli.ThresholdError{Msg: fmt.Sprintf("pid %d: %d zombie children, above --max-zombies %d", p.PID, p.Zombies, c.MaxZombies)}
	}
	if c.MaxFDRatio > 0 && p.FDRatio > c.MaxFDRatio {
		return &cli.ThresholdError{Msg: fmt.Sprintf("pid %d: %d open fds, %.1f%% of the soft limit %s, above --max-fd-ratio %g",
			p.PID, *p.FDs, p.FDRatio*100, p.FDSoftLimit, c.MaxFDRatio)}
	}
	return nil
}
