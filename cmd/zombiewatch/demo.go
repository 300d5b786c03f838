package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/term"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/demo"
	"github.com/zombiewatch/zombiewatch/internal/report"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

const demoHelp = `Usage: zombiewatch demo [--phase N] [--requests N] [--burst N] [--out FILE] [--plot FILE]

Starts the bundled server on a free loopback port as a child of this
process, drives load at it and walks through the lessons of a forking
server, switching the server live and measuring each step:

  1. reaper off: every finished child stays a zombie (cross-checked with ps)
  2. reaper wait: children that exit together leave zombies, signals coalesce
  3. reaper loop: back to 0 zombies, and a burst leaves none
  4. close-conn off: the parent's fds grow by one socket per request (CLOSE_WAIT)
  5. close-conn on: the copies are closed and the fds stay flat

It ends with a table of the phases and a chart, and stops the server and
every child it started, also on Ctrl-C.

  --phase N       run lesson N (1-5) alone
  --requests N    requests in phases 1, 4 and 5 (default 30)
  --burst N       simultaneous connections in phases 2 and 3 (default 100)
  --out FILE      write the run as JSON lines: each sample, then each phase
  --plot FILE     write the run as an SVG picture
`

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		phase           int
		requests, burst int
		outFile, plot   string
	)
	fs := flag.NewFlagSet("zombiewatch demo", flag.ContinueOnError)
	fs.IntVar(&phase, "phase", 0, "")
	fs.IntVar(&requests, "requests", 30, "")
	fs.IntVar(&burst, "burst", 100, "")
	fs.StringVar(&outFile, "out", "", "")
	fs.StringVar(&plot, "plot", "", "")
	if err := cli.Parse(fs, args, stdout, demoHelp); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("demo: unexpected argument %q", fs.Arg(0))
	case phase < 0 || phase > 5:
		return cli.Usagef("demo: --phase %d: want 1 to 5", phase)
	case requests < 1 || requests > 2000:
		return cli.Usagef("demo: --requests %d: want 1 to 2000", requests)
	case burst < 2 || burst > 1000:
		return cli.Usagef("demo: --burst %d: want 2 to 1000", burst)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := demo.Config{
		Server: func(args ...string) *exec.Cmd {
			cmd := exec.Command(self, append([]string{"server"}, args...)...)
			cmd.Env = os.Environ()
			return cmd
		},
		Requests: requests, Burst: burst, Out: stdout,
	}
	if _, err := exec.LookPath("ps"); err == nil {
		cfg.PS = demo.PSZombies
	}
	if phase > 0 {
		cfg.Phases = []int{phase}
	}
	res, err := demo.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := demoSummary(stdout, res); err != nil {
		return err
	}
	if outFile != "" {
		if err := writeFile(outFile, func(w io.Writer) error { return demoJSONLines(w, res) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the run to %s\n", outFile)
	}
	if plot != "" {
		if err := writeFile(plot, func(w io.Writer) error { return demo.SVG(w, res) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the picture to %s\n", plot)
	}
	return nil
}

// demoSummary prints the table of the phases and a chart of the run.
func demoSummary(w io.Writer, res *demo.Result) error {
	rows := [][]string{}
	for _, p := range res.Phases {
		ps := "-"
		if p.PSZombies != nil {
			ps = strconv.Itoa(*p.PSZombies)
		}
		recover := "-"
		if p.RecoverMs != nil {
			recover = fmt.Sprintf("%.1f ms", *p.RecoverMs)
		}
		rows = append(rows, []string{strconv.Itoa(p.Phase), p.Name, strconv.Itoa(p.Requests), strconv.Itoa(p.Zombies), ps,
			fmt.Sprintf("%d -> %d", p.FDsBefore, p.FDs), strconv.Itoa(p.CloseWait), recover})
	}
	if err := report.Rows(w, []string{"PHASE", "WHAT", "REQUESTS", "ZOMBIES", "PS", "FDS", "CLOSE_WAIT", "RECOVERED IN"}, rows); err != nil {
		return err
	}
	var zombies, fds []float64
	for _, p := range res.Points {
		zombies = append(zombies, float64(p.Zombies))
		fds = append(fds, float64(p.FDs))
	}
	if len(zombies) > 1 {
		fmt.Fprintf(w, "\n%s\n", watch.Chart(zombies, fds, 70, 10, isTerminal(w)))
	}
	_, err := fmt.Fprintf(w, "\nThe run took %.1f s; the server and every child it started are gone.\n", res.Elapsed.Seconds())
	return err
}

// demoJSONLines writes each sample, then each phase, one JSON object a line.
func demoJSONLines(w io.Writer, res *demo.Result) error {
	enc := json.NewEncoder(w)
	for _, p := range res.Points {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			demo.Point
		}{"sample", p}); err != nil {
			return err
		}
	}
	for _, p := range res.Phases {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			demo.Phase
		}{"phase", p}); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// isTerminal tells whether w is a terminal (colour and redraw are for
// people, not for pipes and files).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
