package render

import (
	"os"

	"github.com/guptarohit/asciigraph"
)

// Chart draws zombies and fds over time; color only for a terminal, and
// never where NO_COLOR is set (no-color.org).
func Chart(zombies, fds []float64, width, height int, color bool) string {
	opts := []asciigraph.Option{asciigraph.Width(width), asciigraph.Height(height), asciigraph.Precision(0)}
	if color && os.Getenv("NO_COLOR") == "" {
		opts = append(opts, asciigraph.SeriesColors(asciigraph.Red, asciigraph.Blue), asciigraph.SeriesLegends("zombies", "fds"))
		return asciigraph.PlotMany([][]float64{zombies, fds}, opts...)
	}
	// Without colour the two lines need their own characters (and the
	// library's legend would still carry colour codes).
	opts = append(opts, asciigraph.SeriesChars(asciigraph.CreateCharSet("*"), asciigraph.CreateCharSet("o")))
	return asciigraph.PlotMany([][]float64{zombies, fds}, opts...) + "\n\n      * zombies   o fds"
}
