package eval

import (
	"strings"
	"testing"
)

// The figure's dataset panels share one y scale (a taller histogram is not drawn the
// same height as a flat one), and a last panel compares every dataset on one axis.
func TestPlotSharesScaleAndCompares(t *testing.T) {
	r := &Report{Histogram: Histogram{Edges: []float64{0, 0.25, 0.5, 0.75, 1}}}
	for _, d := range []struct {
		name       string
		same, diff []int
	}{
		{"source", []int{0, 0, 2, 8}, []int{5, 3, 2, 0}},    // peaked
		{"captioned", []int{2, 3, 3, 2}, []int{3, 3, 2, 2}}, // flat
	} {
		r.Datasets = append(r.Datasets, DatasetReport{Name: d.name, HistogramSame: d.same, HistogramDiff: d.diff})
	}
	panels, err := r.panels()
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) != len(r.Datasets)+1 {
		t.Fatalf("%d panels for %d datasets, want one more for the comparison", len(panels), len(r.Datasets))
	}
	// the peaked dataset's highest bin: 8 of 10 values in a 0.25-wide bin is density 3.2
	for i, p := range panels[:len(r.Datasets)] {
		if p.Y.Max != panels[0].Y.Max || p.Y.Max < 3.2 {
			t.Errorf("panel %d: y up to %g, panel 0 up to %g; want one scale above the highest bin 3.2", i, p.Y.Max, panels[0].Y.Max)
		}
	}
	cmp := panels[len(panels)-1]
	if !strings.Contains(cmp.Title.Text, "comparison") || cmp.Y.Max < 1 || cmp.X.Min != 0 || cmp.X.Max != 1 {
		t.Errorf("comparison panel %q, x [%g, %g], y up to %g", cmp.Title.Text, cmp.X.Min, cmp.X.Max, cmp.Y.Max)
	}
	if png, err := r.plot(); err != nil || len(png) == 0 {
		t.Errorf("render: %v", err)
	}
}
