package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"

	"golang.org/x/term"

	"github.com/zombiewatch/zombiewatch/internal/bundled"
	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/flags"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/render"
)

func runSnapshot(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	c, err := flags.Parse(args, stdout, cli.Head(manual()))
	if err != nil {
		return err
	}
	fs, err := proc.New(c.ProcRoot)
	if err != nil {
		return err
	}
	// The optional sources of every reading, by name: TCP states of the
	// socket fds, and a bundled server's switches (live /proc only).
	cgSources, cgHost := cgroup.Sources(fs, c.CgroupRoot, c.CgroupSet)
	r := model.NewReader(fs, append([]model.Source{model.TCPStates(fs), bundled.Source(fs)}, cgSources...)...)
	r.HostSources = cgHost
	if err := r.ThreadBudget(ctx); err != nil {
		return err
	}
	if len(c.PIDs) == 0 && c.Names == nil && c.UID == nil {
		if c.Watch {
			return runHostWatch(ctx, c, r, stdin, stdout, stderr)
		}
		return runHost(ctx, c, r, stdout, stderr)
	}
	targets, err := selectTargets(ctx, c, r)
	switch {
	case err != nil:
		return err
	case len(targets) > 1 && c.Watch:
		return cli.Usagef("--watch follows one process; %d match: give one --pid", len(targets))
	case len(targets) > 1 || (!c.Watch && (c.Names != nil || c.UID != nil || len(c.PIDs) > 1)):
		// A selection prints a list whatever the number it matched: a
		// script's jq '.[]' must not break when the count changes.
		return runMany(ctx, c, r, targets, stdout, stderr)
	}
	c.PID = targets[0]
	if c.Origin && !c.Watch {
		return runOrigin(ctx, c, r, stdout, stderr)
	}
	if c.Watch {
		return runWatch(ctx, c, r, stdin, stdout, stderr)
	}
	return runOne(ctx, c, r, stdout, stderr)
}

// runOne reads, observes and shows one process (--pid N): a zombie with
// its parent. A crossed threshold is the error; then a refused read.
func runOne(ctx context.Context, c flags.Config, r *model.Reader, stdout, stderr io.Writer) error {
	p, err := r.Process(ctx, c.PID, c.Options())
	var denied *model.PermissionError
	if err != nil && (p == nil || !errors.As(err, &denied)) {
		return err // nothing read (a refusal of what the reading needs, as hidepid gives) is an error, not an empty reading
	}
	observe(ctx, c, r, stderr, p)
	if p.ThreadID != 0 {
		fmt.Fprintf(stderr, "zombiewatch: pid %d is a thread of process %d: reading process %d\n", p.ThreadID, p.PID, p.PID)
	}
	if c.JSON {
		err = render.JSON(stdout, p, isTerminal(stdout))
	} else {
		err = renderText(stdout, c, p)
		if !c.Zombies && !c.FDs && p.State == "Z" && err == nil {
			// The pid copied from ps ... <defunct>: the parent is the
			// process to look at, so show it too.
			if parent, perr := r.Process(ctx, p.PPID, c.Options()); perr == nil {
				fmt.Fprintf(stdout, "\nits parent:\n\n")
				err = render.Table(stdout, parent)
			}
		}
	}
	if err != nil {
		return err
	}
	if terr := c.Thresholds(p); terr != nil {
		return terr // a crossed threshold is what a script asked about: it wins over a refused read
	}
	if denied != nil {
		return denied
	}
	return nil
}

// observe follows the zombies of the processes read for --observe when
// their exit ages alone cannot tell whether they are reaped (all at once,
// so several processes cost one window), saying so on stderr on a
// terminal; Ctrl-C ends the wait, not the reading.
func observe(ctx context.Context, c flags.Config, r *model.Reader, stderr io.Writer, ps ...*model.Process) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if !r.Observable(p, c.Observe) {
			continue
		}
		if isTerminal(stderr) {
			fmt.Fprintf(stderr, "zombiewatch: pid %d: its zombies exited too recently to judge: observing them for up to %s (--observe 0 skips)\n", p.PID, c.Observe)
		}
		wg.Go(func() { r.Observe(ctx, p, c.Observe, model.ObserveStep) })
	}
	wg.Wait()
}

// renderText prints one process as its flags ask: the zombie list, the
// descriptor list, or the table.
func renderText(stdout io.Writer, c flags.Config, p *model.Process) error {
	switch {
	case c.Zombies:
		return render.Zombies(stdout, p)
	case c.FDs:
		return render.FDs(stdout, p)
	}
	return render.Table(stdout, p)
}

// runHost scans every process: who holds zombies, who is nearest its fd
// limit, and each uid's tasks against RLIMIT_NPROC. Detail the kernel
// refused (fd kinds, TCP states of a process whose counts were read) is
// named on stderr and in the output, and fails the run only with
// --strict; counts it refused always fail it (the answer is incomplete).
func runHost(ctx context.Context, c flags.Config, r *model.Reader, stdout, stderr io.Writer) error {
	// One pass allocates a few MiB and exits: collecting them as it goes
	// (at every 4 MiB, by default) cost 3% of the run.
	debug.SetGCPercent(400)
	h, err := r.Host(ctx, model.HostOptions{Parents: c.Top, FDUsers: c.Top, UIDs: c.Top, FDTypes: c.FDTypes})
	if err != nil {
		return err
	}
	if c.JSON {
		err = render.HostJSON(stdout, h, isTerminal(stdout))
	} else {
		err = render.HostTable(stdout, h)
	}
	switch n := len(h.Denied); {
	case err != nil:
		return err
	case len(h.Uncounted) > 0:
		return fmt.Errorf("open fds of %d %s not counted: %s", len(h.Uncounted), plural(len(h.Uncounted), "process", "processes"), h.Uncounted[0])
	case n > 0 && c.Strict:
		return fmt.Errorf("%d %s refused (--strict): %s", n, plural(n, "read was", "reads were"), h.Denied[0])
	case n > 0:
		fmt.Fprintf(stderr, "zombiewatch: every count was read; %d %s of detail refused: %s\n", n, plural(n, "read", "reads"), h.Denied[0])
	}
	return nil
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
