package opt

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
	"synth/native"
	"synth/vision/generate"
	"synth/vision/nn"
	"synth/weights"
)

// loadDir loads an OPTForCausalLM folder (config.json + model.safetensors) at F32.
func loadDir(t *testing.T, dir string, dev *native.Device) *Model {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	src, err := weights.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	l := nn.NewLoader(weights.NewScope(src), nn.Options{DType: native.F32, Device: dev})
	m, err := Load(l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	return m
}

func toI32(v []int64) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// forward runs ids [B, T] with mask through the full decoder (one prefill of every row),
// returning the hidden states and the logits of every position.
func forward(c *native.Ctx, m *Model, ids []int32, mask []int64, b, tl int) ([][]float32, []float32) {
	kv := c.Device().NewKVCache(len(m.Layers), b, tl, m.Cfg.Hidden, m.KVCache)
	defer c.FreeKV(kv)
	var pos []int32
	var keyMask [][]bool
	slots, lens := make([]int, b), make([]int, b)
	for i := 0; i < b; i++ {
		row := make([]bool, tl)
		for j := range row {
			row[j] = mask[i*tl+j] != 0
		}
		pos = PositionIDs(pos, row, tl, 0)
		keyMask = append(keyMask, row)
		slots[i], lens[i] = i, tl
	}
	var hidden [][]float32
	m.Trace = func(name string, h native.Tensor) { hidden = append(hidden, c.ToHost(h)) }
	defer func() { m.Trace = nil }()
	mk := c.Mark()
	defer c.Release(mk)
	x := m.EmbedTokens(c, ids)
	h := m.Forward(c, kv, x, Batch{Slots: slots, Lens: lens, Pos: pos, KeyMask: keyMask})
	return hidden, c.ToHost(m.Logits(c, h))
}

type genCase struct {
	Name     string    `json:"name"`
	Call     string    `json:"call"`
	OutputID [][]int32 `json:"output_ids"`
}

func TestOPTProjParity(t *testing.T) {
	for _, dev := range parity.Devices(t) {
		for _, set := range fixtures.Sets(t, "blip2", "opt-proj/config.json") {
			t.Run(dev.Name()+"/"+filepath.Base(set), func(t *testing.T) { testOPTProj(t, dev, set) })
		}
	}
}

func testOPTProj(t *testing.T, dev *native.Device, set string) {
	dir := filepath.Join(set, "opt-proj")
	{
		{
			m := loadDir(t, dir, dev)
			if m.ProjIn == nil {
				t.Logf("%s: word_embed_proj_dim == hidden_size, no project_in/out", dir)
			}
			in := parity.Load(t, filepath.Join(dir, "inputs.safetensors"))
			want := parity.Load(t, filepath.Join(dir, "expected.safetensors"))
			ids64, shape := in.Ints(t, "input_ids")
			b, tl := shape[0], shape[1]
			mask, _ := in.Ints(t, "attention_mask")
			c := parity.Ctx(t, dev, 2)

			hidden, logits := forward(c, m, toI32(ids64), mask, b, tl)
			ck := &parity.Checker{T: t, Tol: 1e-4}
			var order []string
			for i, h := range hidden {
				name := fmt.Sprintf("hidden_states.%d", i)
				w, _ := want.F32(t, name)
				ck.Check(name, h, w, nil)
				order = append(order, name)
			}
			w, _ := want.F32(t, "logits")
			ck.Check("logits", logits, w, nil)

			padIDs, _ := in.Ints(t, "pad_input_ids")
			padMask, _ := in.Ints(t, "pad_attention_mask")
			_, padLogits := forward(c, m, toI32(padIDs), padMask, b, tl)
			w, _ = want.F32(t, "pad_logits")
			v := m.Cfg.Vocab
			// rows of leading padding see no key: upstream's values there are arbitrary
			ck.Check("pad_logits", padLogits, w, func(i int) bool { return padMask[i/v] == 0 })
			t.Log(ck.Summary(append(order, "logits", "pad_logits")))

			var gen struct {
				Cases []genCase `json:"cases"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "generate.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &gen); err != nil {
				t.Fatal(err)
			}
			if len(gen.Cases) == 0 {
				t.Fatal("generate.json has no cases")
			}
			for _, kv := range []native.DType{native.F32, native.F16} {
				m.KVCache = kv // the ids must not change with an f16 cache either
				for _, gc := range gen.Cases {
					ids, msk := ids64, mask
					if gc.Name == "greedy_padded" {
						ids, msk = padIDs, padMask
					}
					got := greedyOPT(t, c, m, toI32(ids), msk, b, tl, 8)
					for i := range got {
						if !slices.Equal(got[i], gc.OutputID[i]) {
							t.Errorf("kv %s: %s row %d: got %v, want %v (%s)", kv, gc.Name, i, got[i], gc.OutputID[i], gc.Call)
						}
					}
				}
			}
		}
	}
}

// greedyOPT is OPTForCausalLM.generate(input_ids, attention_mask, max_new_tokens): the
// prompt followed by the new tokens, finished rows padded.
func greedyOPT(t *testing.T, c *native.Ctx, m *Model, ids []int32, mask []int64, b, tl, maxNew int) [][]int32 {
	s, err := m.NewSession(c, b, tl+maxNew)
	if err != nil {
		t.Fatal(err)
	}
	var masks [][]bool
	slots, lens := make([]int, b), make([]int, b)
	for i := 0; i < b; i++ {
		row := make([]bool, tl)
		for j := range row {
			row[j] = mask[i*tl+j] != 0
		}
		masks = append(masks, row)
		slots[i], lens[i] = i, tl
	}
	defer s.Close()
	mk := c.Mark()
	defer c.Release(mk)
	lg := s.Prefill(m.EmbedTokens(c, ids), slots, lens, masks)
	rows := make([]generate.Row, b)
	for i := range rows {
		rows[i] = generate.Row{Slots: []int{i}, Context: ids[i*tl : (i+1)*tl]}
	}
	res, err := generate.Run(s, generate.Defaults(maxNew, m.Cfg.EOS...), rows, lg)
	if err != nil {
		t.Fatal(err)
	}
	width := 0
	for _, r := range res {
		n := len(r.Tokens)
		if r.EOS {
			n++
		}
		width = max(width, n)
	}
	out := make([][]int32, b)
	for i, r := range res {
		row := append(slices.Clone(ids[i*tl:(i+1)*tl]), r.Tokens...)
		if r.EOS {
			row = append(row, m.Cfg.EOS[0])
		}
		for len(row) < tl+width {
			row = append(row, m.Cfg.PAD)
		}
		out[i] = row
	}
	return out
}

func TestParseConfig(t *testing.T) {
	cfg, err := Parse([]byte(`{"hidden_size": 64, "num_attention_heads": 4, "eos_token_id": [50118, 2], "word_embed_proj_dim": 32}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Vocab != 50272 || cfg.FFN != 3072 || cfg.ProjDim() != 32 || !slices.Equal(cfg.EOS, IDs{50118, 2}) || cfg.BOS != 2 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	cfg, err = Parse([]byte(`{"hidden_size": 64, "num_attention_heads": 4, "eos_token_id": 50118}`))
	if err != nil || cfg.ProjDim() != 64 || !slices.Equal(cfg.EOS, IDs{50118}) {
		t.Errorf("eos as a number: %+v %v", cfg, err)
	}
	for _, bad := range []string{
		`{"hidden_size": 65, "num_attention_heads": 4}`,
		`{"do_layer_norm_before": false}`,
		`{"activation_function": "swish"}`,
		`{"eos_token_id": 60000}`,
		`{"hidden_size": "x"}`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestPositionIDs(t *testing.T) {
	// left padding: pads get 1, real tokens count from 2
	got := PositionIDs(nil, []bool{false, false, true, true, true}, 5, 0)
	if !slices.Equal(got, []int32{1, 1, 2, 3, 4}) {
		t.Errorf("padded: %v", got)
	}
	got = PositionIDs(nil, nil, 3, 4)
	if !slices.Equal(got, []int32{6, 7, 8}) {
		t.Errorf("continued: %v", got)
	}
}
