package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/zombiewatch/zombiewatch/internal/render"
)

// Summary prints the table of the phases and a chart of the run (in
// colour for a terminal).
func Summary(w io.Writer, res *Result, color bool) error {
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
	if err := render.Rows(w, []string{"PHASE", "WHAT", "REQUESTS", "ZOMBIES", "PS", "FDS", "CLOSE_WAIT", "RECOVERED IN"}, rows); err != nil {
		return err
	}
	var zombies, fds []float64
	for _, p := range res.Points {
		zombies = append(zombies, float64(p.Zombies))
		fds = append(fds, float64(p.FDs))
	}
	if len(zombies) > 1 {
		fmt.Fprintf(w, "\n%s\n", render.Chart(zombies, fds, 70, 10, color))
	}
	_, err := fmt.Fprintf(w, "\nThe run took %.1f s; the server and every child it started are gone.\n", res.Elapsed.Seconds())
	return err
}

// JSONLines writes each sample, then each phase, one JSON object a line.
func JSONLines(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	for _, p := range res.Points {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			Point
		}{"sample", p}); err != nil {
			return err
		}
	}
	for _, p := range res.Phases {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			Phase
		}{"phase", p}); err != nil {
			return err
		}
	}
	return nil
}
