package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/zombiewatch/zombiewatch/internal/bundled"
	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/render"
)

func runCtl(args []string, stdout io.Writer) error {
	var pid int
	var asJSON bool
	fs := flag.NewFlagSet("zombiewatch ctl", flag.ContinueOnError)
	fs.IntVar(&pid, "pid", 0, "")
	fs.BoolVar(&asJSON, "json", false, "")
	if err := cli.Parse(fs, args, stdout, cli.Section(manual(), "ctl")); err != nil {
		return err
	}
	if pid <= 0 {
		return cli.Usagef("ctl: --pid: want the server's process id (above 0)")
	}
	req, err := control.ParseRequest(fs.Args())
	if err != nil {
		return cli.Usagef("ctl: %v", err)
	}
	st, err := bundled.Switch(pid, req)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", render.ServerLine(st))
	return err
}
