package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/term"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// runWatch samples c.pid every c.interval: redrawn in place on a terminal
// (with keys that switch a bundled server), one line or one JSON object per
// sample otherwise.
func runWatch(ctx context.Context, c snapshotConfig, fs *proc.FS, stdout io.Writer) error {
	s := &watch.Sampler{
		FS: fs, PID: c.pid,
		Opt:    proc.Options{FDTypes: c.fdTypes},
		Server: func(pid int) *control.Status { return serverStatus(c.procRoot, pid) },
	}
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()

	out, isTTY := stdout.(*os.File)
	isTTY = isTTY && term.IsTerminal(int(out.Fd())) && !c.json
	var emit func(*watch.Sample) error
	var keys chan byte
	var last *watch.Sample
	note := ""
	handle := func(k byte) (bool, bool) { return false, false }

	switch {
	case c.json:
		emit = watch.JSONLines{W: stdout}.Emit
	case !isTTY:
		emit = (&watch.Lines{W: stdout}).Emit
	default:
		raw := false
		if term.IsTerminal(int(os.Stdin.Fd())) {
			if old, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
				raw = true
				defer term.Restore(int(os.Stdin.Fd()), old)
				keys = readKeys(os.Stdin)
			}
		}
		io.WriteString(stdout, "\x1b[2J")
		screen := &watch.Screen{W: stdout, Raw: raw, History: s.History,
			Status: func() string { return keyHelp(last, note, raw) }}
		emit = func(sample *watch.Sample) error {
			last = sample
			return screen.Emit(sample)
		}
		handle = func(k byte) (bool, bool) {
			switch k {
			case 'q', 3, 4: // q, Ctrl-C, Ctrl-D
				return false, true
			case 'r', 'c':
				note = switchServer(c.pid, last, k)
				return true, false
			}
			return false, false
		}
	}

	err := s.Run(ctx, ticker.C, c.count, emit, keys, handle)
	if isTTY {
		fmt.Fprint(stdout, "\r\n")
	}
	var ended *watch.Ended
	if errors.As(err, &ended) {
		if c.json {
			fmt.Fprintf(os.Stderr, "zombiewatch: %s\n", ended.Reason)
		} else {
			fmt.Fprintf(stdout, "%s\n", ended.Reason)
		}
		return nil
	}
	return err
}

// readKeys delivers the bytes typed on f.
func readKeys(f *os.File) chan byte {
	keys := make(chan byte)
	go func() {
		buf := make([]byte, 1)
		for {
			if n, err := f.Read(buf); err != nil || n == 0 {
				return
			}
			keys <- buf[0]
		}
	}()
	return keys
}

func keyHelp(last *watch.Sample, note string, keys bool) string {
	if !keys {
		return "Ctrl-C quits"
	}
	if last == nil || last.Server == nil {
		return "keys: q quit (r and c switch a bundled server; this is not one)"
	}
	st := last.Server
	help := fmt.Sprintf("keys: r reaper (now %s)  c close-conn (now %s)  q quit", st.Reaper, onOff(st.CloseConn))
	if note != "" {
		help += "   | " + note
	}
	return help
}

// switchServer applies key k to the bundled server: r cycles the reaper,
// c toggles close-conn. It returns what happened, for the status line.
func switchServer(pid int, last *watch.Sample, k byte) string {
	if last == nil || last.Server == nil {
		return "not a bundled server: nothing to switch"
	}
	var req control.Request
	switch k {
	case 'r':
		i := slices.Index(control.Reapers, last.Server.Reaper)
		next := control.Reapers[(i+1)%len(control.Reapers)]
		req.Reaper = &next
	case 'c':
		on := !last.Server.CloseConn
		req.CloseConn = &on
	}
	st, err := control.Call(pid, req, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("switched: reaper=%s close-conn=%s", st.Reaper, onOff(st.CloseConn))
}
