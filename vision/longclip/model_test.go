package longclip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"synth/native"
	"synth/vision/nn"
	"synth/weights"
)

// smallConfig is a model small enough for quick tests whose head counts follow upstream's
// width // 64 rule (no config.json needed).
var smallConfig = Config{EmbedDim: 32, Eps: LayerNormEps,
	Vision: VisionConfig{Width: 128, Layers: 2, Heads: 2, PatchSize: 8, Resolution: 32},
	Text:   TextConfig{Width: 128, Layers: 2, Heads: 2, Context: 248, Vocab: 600}}

func memSource(t testing.TB, ts []weights.Tensor, config []byte) *weights.Source {
	t.Helper()
	src, err := weights.FromTensors("random", ts, config, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// randomCheckpoint is the state dict of a random model of cfg (see Random).
func randomCheckpoint(t testing.TB, cfg Config, seed uint64) []weights.Tensor {
	t.Helper()
	m, err := Random(cfg, seed, nn.RandomOptions{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Checkpoint()
}

func TestConfigFromWeights(t *testing.T) {
	ts := randomCheckpoint(t, smallConfig, 1)
	cfg, err := ConfigFromWeights(memSource(t, ts, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != smallConfig {
		t.Fatalf("derived %v\nwant    %v", cfg, smallConfig)
	}

	// The released models' dimensions, heads included, come from the state dict alone
	// (one block per tower keeps the test small; the layer count is checked above).
	for _, real := range []Config{LongCLIPB, LongCLIPL} {
		real.Vision.Layers, real.Text.Layers = 1, 1
		got, err := ConfigFromWeights(memSource(t, randomCheckpoint(t, real, 1), nil), nil)
		if err != nil || got != real {
			t.Fatalf("derived %v (%v)\nwant    %v", got, err, real)
		}
	}

	// config.json heads win; other dimensions must agree.
	cfg, err = ConfigFromWeights(memSource(t, ts, nil), []byte(`{"vision": {"heads": 4}, "text": {"heads": 8, "width": 128}}`))
	if err != nil || cfg.Vision.Heads != 4 || cfg.Text.Heads != 8 {
		t.Fatalf("heads from config.json: %v, %v", cfg, err)
	}
	_, err = ConfigFromWeights(memSource(t, ts, nil), []byte(`{"text": {"layers": 3}}`))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "text.layers 3 (the checkpoint has 2)") {
		t.Fatalf("mismatching layers: %v", err)
	}

	// Narrow towers need explicit heads.
	narrow := smallConfig
	narrow.Text.Width = 32
	_, err = ConfigFromWeights(memSource(t, randomCheckpoint(t, narrow, 1), nil), nil)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "text.heads = 0") {
		t.Fatalf("width 32 without config.json: %v", err)
	}

	// A ResNet CLIP is refused by name.
	rn := []weights.Tensor{{Name: "visual.layer1.0.conv1.weight", DType: weights.F32, Shape: []int{1}, Data: make([]byte, 4)}}
	if _, err := ConfigFromWeights(memSource(t, rn, nil), nil); err == nil || !strings.Contains(err.Error(), "ResNet") {
		t.Fatalf("ResNet checkpoint: %v", err)
	}
}

func TestLoadReportsMissingAndUnused(t *testing.T) {
	ts := randomCheckpoint(t, smallConfig, 2)
	var kept []weights.Tensor
	for _, tt := range ts {
		if tt.Name != "transformer.resblocks.1.mlp.c_fc.bias" {
			kept = append(kept, tt)
		}
	}
	kept = append(kept, weights.Tensor{Name: "visual.extra", DType: weights.F32, Shape: []int{2}, Data: make([]byte, 8)})
	_, err := Load(memSource(t, kept, nil), smallConfig, Options{})
	if err == nil {
		t.Fatal("Load accepted a missing bias and an unknown tensor")
	}
	for _, want := range []string{"transformer.resblocks.1.mlp.c_fc.bias", "visual.extra"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

func randomIDs(r *rand.Rand, n, vocab int) []int32 {
	ids := make([]int32, n)
	ids[0] = int32(vocab - 2)
	for i := 1; i < n-1; i++ {
		ids[i] = int32(r.IntN(vocab - 2))
	}
	ids[n-1] = int32(vocab - 1) // the largest id, as EOT is
	return ids
}

// TestBatchesMatchSingles: a batch gives each item what it gets alone, for images and for
// texts of different lengths (the batch computes up to its longest text, each text alone
// up to its own end), and a zero-padded 248-id row equals its unpadded form.
func TestBatchesMatchSingles(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	m, err := Load(memSource(t, randomCheckpoint(t, smallConfig, seed), nil), smallConfig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := native.NewCtx(2)
	defer c.Close()
	s := smallConfig.Vision.Resolution
	px := make([]float32, 3*3*s*s)
	for i := range px {
		px[i] = float32(r.NormFloat64())
	}
	batch := c.ToHost(m.EncodeImage(c, native.FromF32(px, 3, 3, s, s)))
	e := m.Config.EmbedDim
	for i := 0; i < 3; i++ {
		one := c.ToHost(m.EncodeImage(c, native.FromF32(px[i*3*s*s:(i+1)*3*s*s], 1, 3, s, s)))
		if d, _ := maxErr(one, batch[i*e:(i+1)*e]); d > 1e-5 {
			t.Errorf("image %d: batch differs from single by %g", i, d)
		}
	}

	texts := [][]int32{randomIDs(r, 5, 600), randomIDs(r, 248, 600), randomIDs(r, 30, 600)}
	batch = c.ToHost(m.EncodeText(c, texts))
	for i, ids := range texts {
		one := c.ToHost(m.EncodeText(c, [][]int32{ids}))
		if d, _ := maxErr(one, batch[i*e:(i+1)*e]); d > 1e-5 {
			t.Errorf("text %d (%d ids): batch differs from single by %g", i, len(ids), d)
		}
		padded := make([]int32, 248)
		copy(padded, ids)
		p := c.ToHost(m.EncodeText(c, [][]int32{padded}))
		if d, _ := maxErr(p, one); d > 1e-6 {
			t.Errorf("text %d: padded row differs by %g", i, d)
		}
	}
}

// TestPoolsAtFirstMaximum: a row whose largest id appears twice is pooled at the first
// occurrence, so what follows it does not matter.
func TestPoolsAtFirstMaximum(t *testing.T) {
	m, err := Load(memSource(t, randomCheckpoint(t, smallConfig, 5), nil), smallConfig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := native.NewCtx(1)
	defer c.Close()
	a := []int32{598, 10, 11, 599, 12, 13, 599}
	b := []int32{598, 10, 11, 599, 40, 41, 42, 43, 599}
	out := c.ToHost(m.EncodeText(c, [][]int32{a, b}))
	e := m.Config.EmbedDim
	// The rows pooled here are computed along different float paths (7, 9 and 4 tokens:
	// attention sums over other key counts, reductions split differently), so they agree
	// to float32 rounding, a few 1e-7 relative per layer, not bit for bit; pooling at the
	// wrong position would differ at O(1).
	const tol = 1e-5
	if d, _ := maxErr(out[:e], out[e:]); d > tol {
		t.Errorf("texts equal up to the first maximum differ by %g", d)
	}
	cut := c.ToHost(m.EncodeText(c, [][]int32{a[:4]}))
	if d, _ := maxErr(cut, out[:e]); d > tol {
		t.Errorf("text cut after its first maximum differs by %g", d)
	}
}

func TestEncodeRejectsBadInput(t *testing.T) {
	m, err := Load(memSource(t, randomCheckpoint(t, smallConfig, 6), nil), smallConfig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := native.NewCtx(1)
	defer c.Close()
	for name, f := range map[string]func(){
		"id outside vocabulary": func() { m.EncodeText(c, [][]int32{{1, 600}}) },
		"row too long":          func() { m.EncodeText(c, [][]int32{make([]int32, 249)}) },
		"wrong image size":      func() { m.EncodeImage(c, native.NewTensor(1, 3, 16, 16)) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "longclip:") {
					t.Errorf("%s: recovered %v, want a longclip panic", name, r)
				}
			}()
			f()
		}()
	}
	if got := m.EncodeText(c, nil); got.Numel() != 0 {
		t.Errorf("no texts gave %v", got.Shape())
	}
}
