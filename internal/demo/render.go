package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
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

// Outputs are the files a run is written to (--out, --plot), opened
// before the run so that a bad path fails at once, not after it.
type Outputs struct {
	jsonl, svg *os.File
}

// OpenOutputs creates the files named (an empty name: none).
func OpenOutputs(jsonlPath, svgPath string) (*Outputs, error) {
	o := &Outputs{}
	for _, f := range []struct {
		path string
		file **os.File
	}{{jsonlPath, &o.jsonl}, {svgPath, &o.svg}} {
		if f.path == "" {
			continue
		}
		file, err := os.Create(f.path)
		if err != nil {
			o.Close()
			return nil, err
		}
		*f.file = file
	}
	return o, nil
}

// Write writes res to the files and closes them, saying so on w.
func (o *Outputs) Write(w io.Writer, res *Result) error {
	for _, f := range []struct {
		file  *os.File
		what  string
		write func(io.Writer, *Result) error
	}{{o.jsonl, "the run", JSONLines}, {o.svg, "the picture", SVG}} {
		if f.file == nil {
			continue
		}
		err := f.write(f.file, res)
		if cerr := f.file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", f.file.Name(), err)
		}
		fmt.Fprintf(w, "wrote %s to %s\n", f.what, f.file.Name())
	}
	return nil
}

// Close closes the files (after an interrupted run).
func (o *Outputs) Close() {
	for _, f := range []*os.File{o.jsonl, o.svg} {
		if f != nil {
			f.Close()
		}
	}
}
