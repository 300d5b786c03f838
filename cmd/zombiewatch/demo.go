package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/demo"
)

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
	if err := cli.Parse(fs, args, stdout, cli.Section(manual(), "demo")); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("demo: unexpected argument %q", fs.Arg(0))
	case phase < 0 || phase > 7:
		return cli.Usagef("demo: --phase %d: want 1 to 7 (0, the default: every phase)", phase)
	case requests < 1 || requests > 2000:
		return cli.Usagef("demo: --requests %d: want 1 to 2000", requests)
	case burst < 2 || burst > 1000:
		return cli.Usagef("demo: --burst %d: want 2 to 1000", burst)
	}
	outs, err := demo.OpenOutputs(outFile, plot) // before the run: a bad path fails at once
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer outs.Close()
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
	if err := demo.Summary(stdout, res, isTerminal(stdout)); err != nil {
		return err
	}
	return outs.Write(stdout, res)
}
