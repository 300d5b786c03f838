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
	const (
		width, height = 960.0, 420.0
		left, right   = 60.0, 20.0
		top, bottom   = 50.0, 60.0
	)
	if len(res.Points) == 0 {
		return fmt.Errorf("no samples to plot")
	}
	tMax, yMax := res.Points[len(res.Points)-1].T, 1
	for _, p := range res.Points {
		yMax = max(yMax, p.Zombies, p.FDs)
	}
	yMax = niceCeil(yMax)
	x := func(t float64) float64 { return left + t/max(tMax, 1e-9)*(width-left-right) }
	y := func(v int) float64 { return height - bottom - float64(v)/float64(yMax)*(height-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="16" font-weight="bold">zombiewatch demo: the bundled server (pid %d), zombies and open fds</text>`+"\n", left, res.PID)

	// One band per phase, labelled.
	names := map[int]string{}
	for _, p := range res.Phases {
		names[p.Phase] = fmt.Sprintf("%d. %s", p.Phase, p.Name)
	}
	for i := 0; i < len(res.Points); {
		j := i
		for j < len(res.Points) && res.Points[j].Phase == res.Points[i].Phase {
			j++
		}
		x0, x1 := x(res.Points[i].T), x(res.Points[j-1].T)
		if j < len(res.Points) {
			x1 = x(res.Points[j].T)
		}
		fill := "#f2f2f2"
		if res.Points[i].Phase%2 == 0 {
			fill = "#e4e9f2"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", x0, top, max(x1-x0, 0), height-top-bottom, fill)
		label := names[res.Points[i].Phase]
		if float64(len(label))*7 > x1-x0 { // too narrow: the number alone
			label, _, _ = strings.Cut(label, " ")
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f">%s</text>`+"\n", x0+4, top+14, html.EscapeString(label))
		i = j
	}

	// Axes and grid.
	step := niceCeil(yMax / 5)
	for v := 0; v <= yMax; v += step {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#bbb" stroke-dasharray="3,3"/>`+"\n", left, width-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%d</text>`+"\n", left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">seconds</text>`+"\n", (left+width-right)/2, height-18)
	for s := 0.0; s <= tMax; s += tickStep(tMax) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0f</text>`+"\n", x(s), height-bottom+16, s)
	}

	// The two series.
	for _, series := range []struct {
		name, color string
		v           func(Point) int
	}{
		{"zombies", "#c0392b", func(p Point) int { return p.Zombies }},
		{"open fds", "#2c5aa0", func(p Point) int { return p.FDs }},
	} {
		var pts []string
		for _, p := range res.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y(series.v(p))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", series.color, strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="34" width="12" height="3" fill="#c0392b"/><text x="%.0f" y="40">zombies</text>`+"\n", width-200, width-184)
	fmt.Fprintf(&b, `<rect x="%.0f" y="34" width="12" height="3" fill="#2c5aa0"/><text x="%.0f" y="40">open fds</text>`+"\n", width-110, width-94)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
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
