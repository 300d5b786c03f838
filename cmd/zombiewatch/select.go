package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/render"
)

// pidList is --pid, which may be given more than once.
type pidList []int

func (l *pidList) String() string { return fmt.Sprint(*l) }

func (l *pidList) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("parse error")
	}
	*l = append(*l, n)
	return nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// lookupUID takes a user name or a uid number, as pgrep -u does.
func lookupUID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, errors.New("no such user")
	}
	return strconv.Atoi(u.Uid)
}

// selectTargets is the --pid list and what --name and --user match, as
// pgrep selects them (both when both are given). No match is an error.
func selectTargets(ctx context.Context, c snapshotConfig, r *model.Reader) ([]int, error) {
	targets := slices.Clone(c.pids)
	if c.names != nil || c.uid != nil {
		matched, err := r.Select(ctx, model.Selector{Names: c.names, Full: c.full, UID: c.uid})
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
func runMany(ctx context.Context, c snapshotConfig, r *model.Reader, pids []int, stdout io.Writer) error {
	var read []*model.Process
	var denied, gone error
	for _, pid := range pids {
		p, err := r.Process(ctx, pid, c.options())
		var perm *model.PermissionError
		switch {
		case errors.Is(err, model.ErrNoProcess), errors.Is(err, model.ErrPIDReused):
			if slices.Contains(c.pids, pid) && gone == nil {
				gone = err // asked for by pid: named after the others are shown
			}
			continue
		case errors.As(err, &perm):
			denied = err
		case err != nil:
			return err
		}
		read = append(read, p)
	}
	var err error
	switch {
	case c.json:
		err = render.JSONList(stdout, read, isTerminal(stdout))
	default:
		for i, p := range read {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			if c.zombies {
				err = render.Zombies(stdout, p)
			} else {
				err = render.Table(stdout, p)
			}
			if err != nil {
				return err
			}
		}
	}
	if err != nil {
		return err
	}
	for _, p := range read {
		if terr := checkThresholds(c, p); terr != nil {
			return terr
		}
	}
	if denied != nil {
		return denied
	}
	return gone
}
