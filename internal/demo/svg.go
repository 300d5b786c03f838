package demo

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// SVG draws the run: zombies and fds over time, one band per phase. It is
// a few lines of SVG written by hand: a plotting library (gonum/plot) would
// add a dozen modules to the binary for one picture.
func SVG(w io.Writer, res *Result) error {
	if len(res.Points) == 0 {
		return fmt.Errorf("no samples to plot")
	}
	tMax, yMax := res.Points[len(res.Points)-1].T, 1
	for _, p := range res.Points {
		yMax = max(yMax, p.Zombies, p.FDs)
	}
	pl := plot{tMax: tMax, yMax: niceCeil(yMax)}
	b := &pl.b
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", svgWidth, svgHeight, svgWidth, svgHeight)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="%.0f" y="24" font-size="16" font-weight="bold">zombiewatch demo: the bundled server (pid %d), zombies and open fds</text>`+"\n", svgLeft, res.PID)
	pl.bands(res)
	pl.axes()
	pl.series(res.Points)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// The drawing's size and margins.
const (
	svgWidth, svgHeight = 960.0, 420.0
	svgLeft, svgRight   = 60.0, 20.0
	svgTop, svgBottom   = 50.0, 60.0
)

// plot is the SVG being drawn: seconds on x (0 to tMax), counts on y (0
// to yMax).
type plot struct {
	b    strings.Builder
	tMax float64
	yMax int
}

func (pl *plot) x(t float64) float64 {
	return svgLeft + t/max(pl.tMax, 1e-9)*(svgWidth-svgLeft-svgRight)
}

func (pl *plot) y(v int) float64 {
	return svgHeight - svgBottom - float64(v)/float64(pl.yMax)*(svgHeight-svgTop-svgBottom)
}

// bands draws one band per phase, labelled.
func (pl *plot) bands(res *Result) {
	names := map[int]string{}
	for _, p := range res.Phases {
		names[p.Phase] = fmt.Sprintf("%d. %s", p.Phase, p.Name)
	}
	pts := res.Points
	for i := 0; i < len(pts); {
		j := i
		for j < len(pts) && pts[j].Phase == pts[i].Phase {
			j++
		}
		x0, x1 := pl.x(pts[i].T), pl.x(pts[j-1].T)
		if j < len(pts) {
			x1 = pl.x(pts[j].T)
		}
		fill := "#f2f2f2"
		if pts[i].Phase%2 == 0 {
			fill = "#e4e9f2"
		}
		fmt.Fprintf(&pl.b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", x0, svgTop, max(x1-x0, 0), svgHeight-svgTop-svgBottom, fill)
		label := names[pts[i].Phase]
		if float64(len(label))*7 > x1-x0 { // too narrow: the number alone
			label, _, _ = strings.Cut(label, " ")
		}
		fmt.Fprintf(&pl.b, `<text x="%.1f" y="%.0f">%s</text>`+"\n", x0+4, svgTop+14, html.EscapeString(label))
		i = j
	}
}

// axes draws the grid, the counts and the seconds.
func (pl *plot) axes() {
	step := niceCeil(pl.yMax / 5)
	for v := 0; v <= pl.yMax; v += step {
		fmt.Fprintf(&pl.b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#bbb" stroke-dasharray="3,3"/>`+"\n", svgLeft, svgWidth-svgRight, pl.y(v), pl.y(v))
		fmt.Fprintf(&pl.b, `<text x="%.0f" y="%.1f" text-anchor="end">%d</text>`+"\n", svgLeft-6, pl.y(v)+4, v)
	}
	fmt.Fprintf(&pl.b, `<text x="%.0f" y="%.0f" text-anchor="middle">seconds</text>`+"\n", (svgLeft+svgWidth-svgRight)/2, svgHeight-18)
	for s := 0.0; s <= pl.tMax; s += tickStep(pl.tMax) {
		fmt.Fprintf(&pl.b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0f</text>`+"\n", pl.x(s), svgHeight-svgBottom+16, s)
	}
}

// series draws the zombies and the open fds, and their legend.
func (pl *plot) series(points []Point) {
	for _, series := range []struct {
		name, color string
		v           func(Point) int
	}{
		{"zombies", "#c0392b", func(p Point) int { return p.Zombies }},
		{"open fds", "#2c5aa0", func(p Point) int { return p.FDs }},
	} {
		var pts []string
		for _, p := range points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", pl.x(p.T), pl.y(series.v(p))))
		}
		fmt.Fprintf(&pl.b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", series.color, strings.Join(pts, " "))
	}
	fmt.Fprintf(&pl.b, `<rect x="%.0f" y="34" width="12" height="3" fill="#c0392b"/><text x="%.0f" y="40">zombies</text>`+"\n", svgWidth-200, svgWidth-184)
	fmt.Fprintf(&pl.b, `<rect x="%.0f" y="34" width="12" height="3" fill="#2c5aa0"/><text x="%.0f" y="40">open fds</text>`+"\n", svgWidth-110, svgWidth-94)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}

func tickStep(tMax float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 20, 30, 60} {
		if tMax/s <= 12 {
			return s
		}
	}
	return 120
}
