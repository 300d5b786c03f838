package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

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
	fs.BoolVar(&showVersion, "version", false, "")
	if err := parseFlags(fs, args, stdout, manual()); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case showVersion:
		fmt.Fprintln(stdout, "zombiewatch", versionString())
		return c, errHelp
	case fs.NArg() > 0:
		return c, usagef("unexpected argument %q", fs.Arg(0))
	case !set["pid"]:
		return c, usagef("no --pid given")
	case c.pid <= 0:
		return c, usagef("--pid %d: not a process id (want a number above 0)", c.pid)
	case c.json && c.zombies:
		return c, usagef("--json and --zombies both choose the output: pick one (the JSON has zombie_list)")
	case set["max-zombies"] && c.maxZombies < 0:
		return c, usagef("--max-zombies %d: want 0 or more", c.maxZombies)
	case set["max-fd-ratio"] && (c.maxFDRatio <= 0 || c.maxFDRatio > 1):
		return c, usagef("--max-fd-ratio %g: want a ratio above 0 and at most 1 (0.9 is 90%% of the soft limit)", c.maxFDRatio)
	case c.procRoot == "":
		return c, usagef("--proc-root is empty")
	}
	return c, nil
}

func runSnapshot(_ context.Context, args []string, stdout io.Writer) error {
	c, err := parseSnapshotFlags(args, stdout)
	if err != nil {
		return err
	}
	fs, err := proc.New(c.procRoot)
	if err != nil {
		return err
	}
	snap, err := fs.Snapshot(c.pid, proc.Options{FDTypes: c.fdTypes, ZombieOwners: c.zombies})
	var denied *proc.PermissionError
	if err != nil && !errors.As(err, &denied) {
		return err
	}
	r := report.New(snap)
	switch {
	case c.json:
		err = report.JSON(stdout, r)
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
		return &thresholdError{fmt.Sprintf("pid %d: %d zombie children, above --max-zombies %d", r.PID, r.Zombies, c.maxZombies)}
	}
	if c.maxFDRatio > 0 && r.FDRatio > c.maxFDRatio {
		return &thresholdError{fmt.Sprintf("pid %d: %d open fds, %.1f%% of the soft limit %s, above --max-fd-ratio %g",
			r.PID, *r.FDs, r.FDRatio*100, r.FDSoftLimit, c.maxFDRatio)}
	}
	return nil
}
