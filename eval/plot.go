package eval

import (
	"bytes"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// histogramBins is the number of bins across the range of all cosines.
const histogramBins = 60

// Histogram is the binning shared by every dataset: Edges has bins+1 increasing values;
// bin i is [Edges[i], Edges[i+1]), the last one closed.
type Histogram struct {
	Edges []float64 `json:"edges"`
}

// histograms bins every dataset's same and diff values on one set of edges spanning
// them all, so the panels are comparable.
func histograms(sets []*sorted, bins int) Histogram {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range sets {
		for _, v := range [][]float32{s.same, s.diff} {
			lo = min(lo, float64(v[0]))
			hi = max(hi, float64(v[len(v)-1]))
		}
	}
	if hi-lo < 1e-6 { // all values equal: give the lone bar some width
		lo, hi = lo-0.005, hi+0.005
	}
	edges := make([]float64, bins+1)
	for i := range edges {
		edges[i] = lo + (hi-lo)*float64(i)/float64(bins)
	}
	edges[bins] = hi
	return Histogram{Edges: edges}
}

// counts bins sorted values on h's edges.
func (h Histogram) counts(sorted []float32) []int {
	bins := len(h.Edges) - 1
	out := make([]int, bins)
	b := 0
	for _, v := range sorted {
		for b < bins-1 && float64(v) >= h.Edges[b+1] {
			b++
		}
		out[b]++
	}
	return out
}

var (
	sameColor = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x99} // red, translucent
	diffColor = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x99} // blue, translucent
)

// datasetColors tell the datasets apart in the comparison panel.
var datasetColors = []color.NRGBA{
	{R: 0x33, G: 0x33, B: 0x33, A: 0xff}, {R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

// plot draws one panel per dataset, stacked, with the same and diff densities on the
// shared bins, one y scale for every panel and a dashed line at each mean, then one
// comparison panel: the empirical CDFs of every dataset's same (solid) and different
// (dashed) cosines on one axis. It returns the PNG.
func (r *Report) plot() ([]byte, error) {
	panels, err := r.panels()
	if err != nil {
		return nil, err
	}
	rows := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		rows[i] = []*plot.Plot{p}
	}
	w, h := 8*vg.Inch, vg.Length(len(rows))*3*vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(12)}
	canvases := plot.Align(rows, tiles, dc)
	for i, row := range rows {
		row[0].Draw(canvases[i][0])
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("eval: render %s: %w", SimilarityPNG, err)
	}
	return buf.Bytes(), nil
}

// panels are the figure's panels, top to bottom: one per dataset, then the comparison.
func (r *Report) panels() ([]*plot.Plot, error) {
	edges := r.Histogram.Edges
	var ymax float64
	hists := make([][2]*plotter.Histogram, len(r.Datasets))
	for i, d := range r.Datasets {
		hists[i] = [2]*plotter.Histogram{densityHist(edges, d.HistogramDiff, diffColor), densityHist(edges, d.HistogramSame, sameColor)}
		for _, h := range hists[i] {
			for _, b := range h.Bins {
				ymax = max(ymax, b.Weight)
			}
		}
	}
	ytop := ymax * 1.3 // room for the legend
	var panels []*plot.Plot
	for i, d := range r.Datasets {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: n = %d products", d.Name, d.Used)
		p.X.Label.Text = "cosine similarity (image, text)"
		p.Y.Label.Text = "density"
		// Different first, so the smaller same-product histogram is drawn over it.
		for k, s := range []struct {
			label string
			mean  float64
			c     color.Color
		}{
			{fmt.Sprintf("different product (mean %.4f)", d.Diff.Mean), d.Diff.Mean, diffColor},
			{fmt.Sprintf("same product (mean %.4f)", d.Same.Mean), d.Same.Mean, sameColor},
		} {
			h := hists[i][k]
			p.Add(h)
			p.Legend.Add(s.label, h)
			p.Add(meanLine(s.mean, ytop, s.c))
		}
		p.Legend.Top = true
		p.X.Min, p.X.Max = edges[0], edges[len(edges)-1]
		p.Y.Min, p.Y.Max = 0, ytop
		panels = append(panels, p)
	}
	cmp, err := r.comparison()
	if err != nil {
		return nil, err
	}
	return append(panels, cmp), nil
}

// meanLine is a dashed vertical line at x from 0 to top.
func meanLine(x, top float64, c color.Color) *plotter.Line {
	l, _ := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}}) // two finite points: no error
	l.Color = c
	l.Width = vg.Points(1.2)
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	return l
}

// comparison draws every dataset's empirical CDFs, same and different, on one panel,
// from the shared histogram bins (a step at each bin's upper edge).
func (r *Report) comparison() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "comparison: empirical CDF of same (solid) and different (dashed) product similarity"
	p.X.Label.Text = "cosine similarity (image, text)"
	p.Y.Label.Text = "fraction <= x"
	edges := r.Histogram.Edges
	for i, d := range r.Datasets {
		c := datasetColors[i%len(datasetColors)]
		for _, s := range []struct {
			name   string
			counts []int
			dashed bool
		}{{"same", d.HistogramSame, false}, {"different", d.HistogramDiff, true}} {
			total := 0
			for _, n := range s.counts {
				total += n
			}
			if total == 0 {
				continue
			}
			pts := plotter.XYs{{X: edges[0], Y: 0}}
			cum := 0
			for b, n := range s.counts {
				cum += n
				pts = append(pts, plotter.XY{X: edges[b+1], Y: float64(cum) / float64(total)})
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, fmt.Errorf("eval: plot %s: %w", d.Name, err)
			}
			l.Color = c
			l.Width = vg.Points(1.5)
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s: %s", d.Name, s.name), l)
		}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.X.Min, p.X.Max = edges[0], edges[len(edges)-1]
	p.Y.Min, p.Y.Max = 0, 1.05
	return p, nil
}

// densityHist turns counts into a histogram whose area is 1.
func densityHist(edges []float64, counts []int, c color.Color) *plotter.Histogram {
	total := 0
	for _, n := range counts {
		total += n
	}
	bins := make([]plotter.HistogramBin, len(counts))
	for i, n := range counts {
		width := edges[i+1] - edges[i]
		bins[i] = plotter.HistogramBin{Min: edges[i], Max: edges[i+1], Weight: float64(n) / (float64(total) * width)}
	}
	return &plotter.Histogram{
		Bins:      bins,
		Width:     edges[1] - edges[0],
		FillColor: c,
		LineStyle: draw.LineStyle{Color: c, Width: vg.Points(0.5)},
	}
}
