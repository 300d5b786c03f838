package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/control"
)

const ctlHelp = `Usage: zombiewatch ctl --pid PID [reaper=off|wait|loop|ignore] [close-conn=on|off] [hold=DURATION] [--json]

Shows, or switches, the reaper and the connection closing of a running
bundled server (cmd/server) and prints its settings after the change.
Only the server's own uid or root may switch it.

  reaper=off      nobody waits: each finished child stays a zombie
  reaper=wait     one wait per SIGCHLD: bursts leave zombies (signals coalesce)
  reaper=loop     waitpid(-1, WNOHANG) until none is left: no zombies
  reaper=ignore   SIGCHLD ignored: the kernel reaps
  close-conn=off  the parent keeps its copy of each connection (fds leak)
  close-conn=on   the parent closes its copy (and the copies kept so far)
  hold=300ms      each new child stays this long after answering
`

func runCtl(_ context.Context, args []string, stdout io.Writer) error {
	var pid int
	var asJSON bool
	fs := flag.NewFlagSet("zombiewatch ctl", flag.ContinueOnError)
	fs.IntVar(&pid, "pid", 0, "")
	fs.BoolVar(&asJSON, "json", false, "")
	if err := cli.Parse(fs, args, stdout, ctlHelp); err != nil {
		return err
	}
	if pid <= 0 {
		return cli.Usagef("ctl: --pid: want the server's process id (above 0)")
	}
	req, err := control.ParseRequest(fs.Args())
	if err != nil {
		return cli.Usagef("ctl: %v", err)
	}
	st, err := control.Call(pid, req, 2*time.Second)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", serverLine(st))
	return err
}

// serverLine is a server's settings and counters on one line.
func serverLine(st *control.Status) string {
	return fmt.Sprintf("server pid %d on %s: reaper=%s close-conn=%s hold=%s; spawned %d, reaped %d, held conns %d, fork errors %d, accept errors %d; spawn-to-reaped p50 %.1fms p99 %.1fms",
		st.PID, st.Addr, st.Reaper, onOff(st.CloseConn), st.Hold, st.Spawned, st.Reaped, st.HeldConns,
		st.ForkErrors, st.AcceptErrors, st.ReapP50Ms, st.ReapP99Ms)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
