package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/flags"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/origin"
	"github.com/zombiewatch/zombiewatch/internal/render"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// runOrigin traces one process for --for (Ctrl-C ends it early, and the
// report of what was traced is still printed), then shows the process
// and the stacks behind the descriptors it holds and the zombies it has
// not reaped.
func runOrigin(ctx context.Context, c flags.Config, r *model.Reader, stdout, stderr io.Writer) error {
	t, err := origin.Trace(c.PID)
	if err != nil {
		return err
	}
	defer t.Close()
	if isTerminal(stderr) {
		fmt.Fprintf(stderr, "zombiewatch: tracing pid %d for %s (Ctrl-C ends it early)\n", c.PID, c.For)
	}
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(c.For):
	}
	traced := time.Since(start)
	// The table first, then the records: whatever it holds that was
	// opened while traced has its record by then.
	opts := c.Options()
	opts.FDList = true
	p, err := r.Process(context.WithoutCancel(ctx), c.PID, opts)
	var denied *model.PermissionError
	if err != nil && (p == nil || !errors.As(err, &denied)) {
		return err
	}
	rec, err := t.Recorded(c.PID)
	if ctx.Err() == nil {
		observe(ctx, c, r, stderr, p) // the tracing is over: its records are read
	}
	if err != nil {
		return fmt.Errorf("reading what was traced: %v", err)
	}
	sym, err := origin.NewSymbolizer(c.ProcRoot, p.PID)
	if err != nil {
		return fmt.Errorf("pid %d: reading its mappings to name the stacks: %v", p.PID, err)
	}
	report := origin.Join(p, rec, traced, sym.Resolve)
	if c.JSON {
		out := struct {
			*model.Process
			Origin *origin.Report `json:"origin"`
		}{p, report}
		err = render.Encode(stdout, out, isTerminal(stdout))
	} else if err = render.Table(stdout, p); err == nil {
		err = render.Origin(stdout, report)
	}
	if err != nil {
		return err
	}
	if denied != nil {
		return denied
	}
	return ctx.Err()
}

// watchOrigins traces the watched process for as long as the watch runs
// and names, for each fd group that grows, the code that opened most of
// it. The maps are bounded; each sample that names growing groups reads
// the fd list once.
func watchOrigins(c flags.Config, s *watch.Sampler) (stop func(), err error) {
	t, err := origin.Trace(c.PID)
	if err != nil {
		return nil, err
	}
	o := &tracedOrigins{t: t, procRoot: c.ProcRoot, syms: map[int]*origin.Symbolizer{}}
	if err := o.symbolizer(c.PID); err != nil {
		t.Close()
		return nil, err
	}
	s.Origins = o.Name
	return func() { t.Close() }, nil
}

// hostOrigins traces, for as long as the host watch runs, the processes
// whose fd groups it names (the first few fd growers), from when they are
// first named: their growth from then on gets its origin.
func hostOrigins(c flags.Config, hs *watch.HostSampler) (stop func(), err error) {
	t, err := origin.New("host", origin.Options{Processes: origin.MaxFollowed})
	if err != nil {
		return nil, err
	}
	hs.Origins = &tracedOrigins{t: t, procRoot: c.ProcRoot, syms: map[int]*origin.Symbolizer{}}
	return func() { t.Close() }, nil
}

// tracedOrigins names growing fd groups from one tracer's records.
type tracedOrigins struct {
	t        *origin.Tracer
	procRoot string
	syms     map[int]*origin.Symbolizer
}

func (o *tracedOrigins) symbolizer(pid int) error {
	sym, err := origin.NewSymbolizer(o.procRoot, pid)
	if err != nil {
		return fmt.Errorf("pid %d: reading its mappings to name the stacks: %v", pid, err)
	}
	o.syms[pid] = sym
	return nil
}

// Follow starts tracing pid.
func (o *tracedOrigins) Follow(pid int) error {
	if err := o.symbolizer(pid); err != nil {
		return err
	}
	if err := o.t.Follow(pid); err != nil {
		delete(o.syms, pid)
		return err
	}
	return nil
}

// Unfollow ends it, and forgets what was recorded.
func (o *tracedOrigins) Unfollow(pid int) {
	o.t.Unfollow(pid)
	delete(o.syms, pid)
}

// Name sets the origin of each of p's growing groups that the tracer saw
// opened (p read with its fd list: the records after it); a group it did
// not see keeps none.
func (o *tracedOrigins) Name(p *model.Process, growing []watch.GroupGrowth) {
	sym := o.syms[p.PID]
	if sym == nil {
		return
	}
	rec, err := o.t.Recorded(p.PID)
	if err != nil || sym.Refresh() != nil {
		return
	}
	for i := range growing {
		stack, opened, traced := origin.Of(p, rec, growing[i].FDGroup, sym.Resolve)
		if stack != nil {
			growing[i].Origin = fmt.Sprintf("%s (%d of the %d opened while traced)", render.OriginShort(stack), opened, traced)
		}
	}
}
