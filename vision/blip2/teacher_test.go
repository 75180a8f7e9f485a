package blip2

import (
	"math"
	"testing"

	"synth/internal/fixtures"
	"synth/native"
)

// Teacher-forcing a greedy caption gives back, row by row, distributions whose most
// likely token is the caption's; teacher-forcing prompt tokens gives Forward's logits
// at those positions; images in one batch with continuations of different lengths get
// the rows each gets alone.
func TestTeacherForce(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		m := loadSet(t, dir, false, false, native.F32)
		in := readInputs(t, dir)
		c := native.NewCtx(2)
		defer c.Close()
		v, nq := m.Cfg.Text.Vocab, m.Cfg.NumQueryTokens

		p := m.Params(8)
		g, err := m.NewGenerator(c, in.b, 1, p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.Generate(in.pixels, make([]Prompt, in.b), p)
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		caps := make([][]int32, in.b)
		for i, r := range res {
			caps[i] = r.Tokens
		}
		if in.b > 1 {
			caps[in.b-1] = caps[in.b-1][:len(caps[in.b-1])/2] // lengths differ within the batch
		}
		rows, err := m.TeacherForce(c, in.pixels, nil, caps)
		if err != nil {
			t.Fatal(err)
		}
		img := in.pixels.F32()
		per := len(img) / in.b
		image := func(i int) native.Tensor { // image i alone, [1, 3, S, S]
			return native.FromF32(img[i*per:(i+1)*per], append([]int{1}, in.pixels.Shape()[1:]...)...)
		}
		for i, cp := range caps {
			if len(rows[i]) != len(cp)*v {
				t.Fatalf("%s image %d: %d logits for %d tokens of a vocabulary of %d", dir, i, len(rows[i]), len(cp), v)
			}
			for j, tok := range cp {
				if got := argmax(rows[i][j*v : (j+1)*v]); got != int(tok) {
					t.Errorf("%s image %d position %d: teacher-forced argmax %d, greedy chose %d", dir, i, j, got, tok)
				}
			}
			alone, err := m.TeacherForce(c, image(i), nil, caps[i:i+1])
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(alone[0], rows[i]); d > 1e-4 {
				t.Errorf("%s image %d: alone and in a batch differ by %g (relative)", dir, i, d)
			}
		}

		// The prompt's own tokens: Forward gives logits [B*(Q+Tp), V] for every position.
		if in.tp < 2 {
			t.Logf("%s: prompts of %d token: no prompt positions to compare with Forward", dir, in.tp)
			continue
		}
		fwd := c.ToHost(m.Forward(c, in.pixels, in.ids, nil))
		for i := 0; i < in.b; i++ {
			ids := in.ids[i*in.tp : (i+1)*in.tp]
			got, err := m.TeacherForce(c, image(i), ids[:1], [][]int32{ids[1:]})
			if err != nil {
				t.Fatal(err)
			}
			base := (i*(nq+in.tp) + nq) * v // row of the first prompt position
			want := fwd[base : base+(in.tp-1)*v]
			if d := maxRelDiff(got[0], want); d > 1e-4 {
				t.Errorf("%s image %d: teacher-forced prompt logits differ from Forward's by %g (relative)", dir, i, d)
			}
		}
	}
}

func TestTeacherForceRejectsBadInput(t *testing.T) {
	for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		m := loadSet(t, dir, false, false, native.F32)
		in := readInputs(t, dir)
		c := native.NewCtx(1)
		defer c.Close()
		if _, err := m.TeacherForce(c, in.pixels, nil, make([][]int32, in.b+1)); err == nil {
			t.Errorf("%s: %d continuations for %d images: no error", dir, in.b+1, in.b)
		}
		bad := make([][]int32, in.b)
		bad[0] = []int32{int32(m.Cfg.Text.Vocab)}
		if _, err := m.TeacherForce(c, in.pixels, nil, bad); err == nil {
			t.Errorf("%s: an id outside the vocabulary: no error", dir)
		}
		empty, err := m.TeacherForce(c, in.pixels, nil, make([][]int32, in.b))
		if err != nil || len(empty) != in.b || len(empty[0]) != 0 {
			t.Errorf("%s: empty continuations: %v, %d rows", dir, err, len(empty))
		}
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// maxRelDiff is max |a - b| over max |b|.
func maxRelDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, scale float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(b[i])))
	}
	return d / max(scale, 1e-30)
}
