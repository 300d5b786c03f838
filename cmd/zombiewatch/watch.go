package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/zombiewatch/zombiewatch/internal/render"
	"io"
	"os"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/flags"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/screen"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// runWatch samples c.PID every c.Interval: redrawn in place on a terminal
// (with keys that switch a bundled server), one line or one JSON object per
// sample otherwise.
func runWatch(ctx context.Context, c flags.Config, r *model.Reader, stdin *os.File, stdout, stderr io.Writer) error {
	s := &watch.Sampler{Reader: r, PID: c.PID, Opt: model.Options{FDTypes: c.FDTypes, MinAge: c.MinAge}}
	// Every exit and reap from the kernel's process events, where it
	// allows them (in the host's pid namespace, on its /proc); else the
	// watch polls, and says once why there are no latencies.
	s.Events = startEvents(ctx, r, stderr)
	if c.Origin {
		stop, err := watchOrigins(c, s)
		if err != nil {
			return err
		}
		defer stop()
	}
	tty := isTerminal(stdout) && !c.JSON
	var err error
	if tty {
		err = screen.Watch(ctx, s, stdin, stdout, c.Interval, c.Count)
	} else {
		emit := (&render.Lines{W: stdout}).Emit
		if c.JSON {
			emit = (&render.JSONLines{W: stdout}).Emit
		}
		ticker := time.NewTicker(c.Interval)
		defer ticker.Stop()
		err = watch.Run(ctx, s, ticker.C, c.Count, emit)
	}
	var ended *watch.Ended
	if errors.As(err, &ended) {
		out := stdout
		if c.JSON {
			out = stderr // stdout stays JSON lines
		}
		fmt.Fprintf(out, "%s\n", ended.Reason)
		return nil
	}
	return err
}

// runHostWatch samples the whole host every c.Interval and ranks what
// grows: a top-like screen on a terminal, one line or one JSON object per
// sample otherwise.
func runHostWatch(ctx context.Context, c flags.Config, r *model.Reader, stdin *os.File, stdout, stderr io.Writer) error {
	hs := &watch.HostSampler{Reader: r, Events: startEvents(ctx, r, stderr)}
	if c.Origin {
		stop, err := hostOrigins(c, hs)
		if err != nil {
			return err
		}
		defer stop()
	}
	if isTerminal(stdout) && !c.JSON {
		pidSampler := func(pid int) *watch.Sampler {
			return &watch.Sampler{Reader: r, PID: pid, Opt: model.Options{FDTypes: c.FDTypes}, Events: hs.Events}
		}
		return screen.HostWatch(ctx, hs, pidSampler, stdin, stdout, c.Interval, c.Count)
	}
	emit := (&render.HostLines{W: stdout}).Emit
	if c.JSON {
		emit = render.HostJSONLines{W: stdout}.Emit
	}
	ticker := time.NewTicker(c.Interval)
	defer ticker.Stop()
	return watch.RunHost(ctx, hs, ticker.C, c.Count, emit)
}

// startEvents subscribes to the kernel's process events for exit-to-reap
// latency where it can; else the watch polls, and says why once.
func startEvents(ctx context.Context, r *model.Reader, stderr io.Writer) *events.Source {
	if !r.FS.Live() {
		fmt.Fprintf(stderr, "zombiewatch: no exit-to-reap latencies, polling only: %s is not this host's own /proc as seen from here\n", r.FS.Root())
		return nil
	}
	src, err := events.Start(ctx, r.FS)
	if err != nil {
		fmt.Fprintf(stderr, "zombiewatch: no exit-to-reap latencies, polling only: %v\n", err)
		return nil
	}
	return src
}
