// Compare times whole commands side by side: every round runs each command
// once, in a rotating order so that none always runs first, and the table
// gives medians and ratios against the floor and against ps auxw, of the
// wall time and of the CPU time (user and system, every process of the
// command: several cores make the one smaller than the other).
//
//	compare -rounds 9 "floor::bench/bin/floor 4242" "ps auxw::ps auxw | grep -c ' Z'" ...
//
// Each command runs under /bin/sh -c with its output discarded, so every
// row pays the same shell start-up.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 9, "runs of each command")
	floor := flag.String("floor", "floor", "name of the row the others are divided by")
	ps := flag.String("ps", "ps auxw", "name of the row the others are compared with (its time over theirs)")
	flag.Parse()
	type row struct {
		name, cmd string
		times     []time.Duration
		cpu       []time.Duration // user and system time, the command's processes all
	}
	var rows []*row
	for _, arg := range flag.Args() {
		name, cmd, ok := strings.Cut(arg, "::")
		if !ok {
			fmt.Fprintf(os.Stderr, "compare: %q: want NAME::COMMAND\n", arg)
			os.Exit(2)
		}
		rows = append(rows, &row{name: name, cmd: cmd})
	}
	for r := range *rounds {
		for i := range rows {
			row := rows[(i+r)%len(rows)]
			start := time.Now()
			cmd := exec.Command("/bin/sh", "-c", row.cmd)
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "compare: %s: %v\n", row.name, err)
				os.Exit(1)
			}
			row.times = append(row.times, time.Since(start))
			// The shell waited for the command: its usage includes it.
			row.cpu = append(row.cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
	}
	median := func(ts []time.Duration) time.Duration {
		s := slices.Clone(ts)
		slices.Sort(s)
		return s[len(s)/2]
	}
	base, baseCPU := map[string]time.Duration{}, map[string]time.Duration{}
	for _, row := range rows {
		base[row.name], baseCPU[row.name] = median(row.times), median(row.cpu)
	}
	fmt.Printf("| command | median | min | × %s | %s ÷ this | CPU | CPU × %s |\n|---|---:|---:|---:|---:|---:|---:|\n", *floor, *ps, *ps)
	for _, row := range rows {
		m := median(row.times)
		ratio := func(a, b time.Duration) string {
			if a == 0 || b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", float64(a)/float64(b))
		}
		c := median(row.cpu)
		fmt.Printf("| `%s` | %.1f ms | %.1f ms | %s | %s | %.1f ms | %s |\n", row.name, ms(m), ms(slices.Min(row.times)),
			ratio(m, base[*floor]), ratio(base[*ps], m), ms(c), ratio(c, baseCPU[*ps]))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
