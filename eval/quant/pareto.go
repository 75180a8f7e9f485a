package quant

import (
	"bytes"
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	pointColor = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff} // blue
	frontColor = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xcc} // red
)

// point is one measured level on a Pareto panel.
type point struct {
	label string
	x, y  float64
}

// ParetoFront returns the indices of the points no other point beats on both axes
// (higher y is better; lower x when lowerX, else higher x), ordered by x. A point equal
// to another on both axes stays on the front.
func ParetoFront(xs, ys []float64, lowerX bool) []int {
	better := func(a, b float64) bool { // a strictly better than b on x
		if lowerX {
			return a < b
		}
		return a > b
	}
	var front []int
	for i := range xs {
		dominated := false
		for j := range xs {
			if j == i {
				continue
			}
			noWorse := !better(xs[i], xs[j]) && ys[j] >= ys[i]
			strictly := better(xs[j], xs[i]) || ys[j] > ys[i]
			if noWorse && strictly {
				dominated = true
				break
			}
		}
		if !dominated {
			front = append(front, i)
		}
	}
	sort.SliceStable(front, func(a, b int) bool { return xs[front[a]] < xs[front[b]] })
	return front
}

// paretoPlot draws the model's levels (the reference included) in two panels, file size
// and speed against Fidelity, with the Pareto front of each, and returns the PNG.
func (m *Model) paretoPlot() ([]byte, error) {
	var size, speed []point
	unit := ""
	for i, l := range append([]Level{m.Reference}, m.Levels...) {
		if l.Skipped != "" || l.Cost == nil {
			continue
		}
		y := 1.0 // the reference is its own perfect copy
		if i > 0 {
			var ok bool
			if y, ok = Fidelity(m.Role, &l); !ok {
				continue
			}
		}
		size = append(size, point{l.Level, mb(l.Cost.FileBytes), y})
		speed = append(speed, point{l.Level, l.Cost.Speed, y})
		unit = l.Cost.SpeedUnit
	}
	left, err := paretoPanel(fmt.Sprintf("%s: file size", m.Role), "file size (MB)", FidelityName(m.Role), size, true)
	if err != nil {
		return nil, err
	}
	right, err := paretoPanel(fmt.Sprintf("%s: speed", m.Role), "speed ("+unit+")", FidelityName(m.Role), speed, false)
	if err != nil {
		return nil, err
	}
	rows := [][]*plot.Plot{{left, right}}
	img := vgimg.New(11*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadX: vg.Points(18)}
	canvases := plot.Align(rows, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("quant: render %s: %w", ParetoPNG(m.Role), err)
	}
	return buf.Bytes(), nil
}

// paretoPanel is one panel: every level a labelled point, the front a line through its
// points.
func paretoPanel(title, xLabel, yLabel string, pts []point, lowerX bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	if len(pts) == 0 {
		return p, nil
	}
	xys := make(plotter.XYs, len(pts))
	labels := make([]string, len(pts))
	xs, ys := make([]float64, len(pts)), make([]float64, len(pts))
	for i, q := range pts {
		xys[i] = plotter.XY{X: q.x, Y: q.y}
		labels[i] = q.label
		xs[i], ys[i] = q.x, q.y
	}
	front := ParetoFront(xs, ys, lowerX)
	line := make(plotter.XYs, len(front))
	for i, k := range front {
		line[i] = xys[k]
	}
	l, err := plotter.NewLine(line)
	if err != nil {
		return nil, fmt.Errorf("quant: plot %s: %w", title, err)
	}
	l.LineStyle = draw.LineStyle{Color: frontColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	s, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, fmt.Errorf("quant: plot %s: %w", title, err)
	}
	s.GlyphStyle = draw.GlyphStyle{Color: pointColor, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, fmt.Errorf("quant: plot %s: %w", title, err)
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].XAlign = draw.XLeft
	}
	lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(3)}
	p.Add(l, s, lb)
	p.Legend.Add("Pareto front", l)
	p.Legend.Top = false
	// room for the labels right of the points, and a y range that shows small differences
	minX, maxX, minY := xs[0], xs[0], ys[0]
	for i := range xs {
		minX, maxX, minY = min(minX, xs[i]), max(maxX, xs[i]), min(minY, ys[i])
	}
	pad := (maxX - minX) * 0.15
	if pad == 0 {
		pad = max(maxX*0.1, 1e-6)
	}
	p.X.Min, p.X.Max = max(0, minX-pad), maxX+pad*1.5
	spread := 1 - minY
	if spread <= 0 {
		spread = 1e-3
	}
	p.Y.Min, p.Y.Max = minY-spread*0.1, 1+spread*0.1
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
