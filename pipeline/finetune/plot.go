package finetune

import (
	"bytes"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotLosses draws the training loss per step and the validation losses: loss.png.
func plotLosses(train []float64, val [][2]float64, perEpoch int) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("synth finetune: %d steps (%d per epoch)", len(train), perEpoch)
	p.X.Label.Text = "optimizer step"
	p.Y.Label.Text = "loss (mean cross-entropy per token)"
	pts := make(plotter.XYs, len(train))
	for i, v := range train {
		pts[i] = plotter.XY{X: float64(i + 1), Y: v}
	}
	if len(pts) > 0 {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("finetune: plot: %w", err)
		}
		l.Color = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
		p.Add(l)
		p.Legend.Add("training", l)
	}
	if len(val) > 0 {
		vp := make(plotter.XYs, len(val))
		for i, v := range val {
			vp[i] = plotter.XY{X: v[0], Y: v[1]}
		}
		l, s, err := plotter.NewLinePoints(vp)
		if err != nil {
			return nil, fmt.Errorf("finetune: plot: %w", err)
		}
		c := color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
		l.Color, s.Color, s.Shape = c, c, draw.CircleGlyph{}
		p.Add(l, s)
		p.Legend.Add("validation", l, s)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	w, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, fmt.Errorf("finetune: plot: %w", err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("finetune: plot: %w", err)
	}
	return buf.Bytes(), nil
}
