package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/zombiewatch/zombiewatch/internal/flags"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/render"
)

// selectTargets is the --pid list and what --name and --user match, as
// pgrep selects them (both when both are given). No match is an error.
func selectTargets(ctx context.Context, c flags.Config, r *model.Reader) ([]int, error) {
	targets := slices.Clone(c.PIDs)
	if c.Names != nil || c.UID != nil {
		matched, err := r.Select(ctx, model.Selector{Names: c.Names, Full: c.Full, UID: c.UID})
		if err != nil {
			return nil, err
		}
		if len(matched) == 0 {
			return nil, errors.New("no process matches the --name/--user selection")
		}
		targets = append(targets, matched...)
	}
	slices.Sort(targets)
	return slices.Compact(targets), nil
}

// runMany reads several processes: each table in turn, or one JSON array
// of the one-process objects. A process that exits meanwhile is left out;
// thresholds hold for any of them.
func runMany(ctx context.Context, c flags.Config, r *model.Reader, pids []int, stdout, stderr io.Writer) error {
	read, denied, gone := r.Processes(ctx, pids, c.Options(), func(pid int) bool { return slices.Contains(c.PIDs, pid) })
	if gone != nil && denied == nil && len(read) == 0 {
		return gone
	}
	observe(ctx, c, r, stderr, read...)
	if c.JSON {
		if err := render.JSONList(stdout, read, isTerminal(stdout)); err != nil {
			return err
		}
	}
	for i, p := range read {
		if c.JSON {
			break
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := renderText(stdout, c, p); err != nil {
			return err
		}
	}
	for _, p := range read {
		if terr := c.Thresholds(p); terr != nil {
			return terr
		}
	}
	if denied != nil {
		return denied
	}
	return gone
}
