package blip2

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
	"synth/native"
	"synth/vision/generate"
	"synth/vision/opt"
	"synth/weights"
)

// variant is one way of running a fixture set: the base model, or with its adapter.
type variant struct {
	name     string
	adapter  bool
	live     bool
	expected string // tensors file
	logits   string // the logits tensor this variant must reproduce
	generate string // generate.json file
	cases    string // its list of cases
}

var variants = []variant{
	{name: "base", expected: "expected.safetensors", logits: "logits", generate: "generate.json", cases: "cases"},
	{name: "lora-live", adapter: true, live: true, expected: "lora_expected.safetensors", logits: "logits", generate: "lora_generate.json", cases: "cases"},
	{name: "lora-merged", adapter: true, expected: "lora_expected.safetensors", logits: "merged_logits", generate: "lora_generate.json", cases: "cases"},
	{name: "lora-merged", adapter: true, generate: "lora_generate.json", cases: "merged_cases"},
}

func loadSet(t *testing.T, dir string, adapter, live bool, dt native.DType) *Model {
	return loadSetOn(t, dir, adapter, live, dt, native.CPU)
}

func loadSetOn(t *testing.T, dir string, adapter, live bool, dt native.DType, dev *native.Device) *Model {
	t.Helper()
	src, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	o := Options{DType: dt, LiveLoRA: live, Device: dev}
	if adapter {
		a, err := weights.LoadAdapter(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		o.Adapter = a
	}
	m, err := Load(src, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type fixtureInputs struct {
	pixels     native.Tensor
	b, tp      int
	ids, padID []int32
	mask, pad  []bool
}

func readInputs(t *testing.T, dir string) fixtureInputs {
	in := parity.Load(t, filepath.Join(dir, "inputs.safetensors"))
	px, shape := in.F32(t, "pixel_values")
	ids, idShape := in.Ints(t, "input_ids")
	mask, _ := in.Ints(t, "attention_mask")
	padIDs, _ := in.Ints(t, "pad_input_ids")
	padMask, _ := in.Ints(t, "pad_attention_mask")
	f := fixtureInputs{pixels: native.FromF32(px, shape...), b: idShape[0], tp: idShape[1]}
	for i := range ids {
		f.ids = append(f.ids, int32(ids[i]))
		f.padID = append(f.padID, int32(padIDs[i]))
		f.mask = append(f.mask, mask[i] != 0)
		f.pad = append(f.pad, padMask[i] != 0)
	}
	return f
}

// blockOrder is the forward order of the fixture's blocks, to name the first divergence.
func blockOrder(cfg Config) []string {
	o := []string{"vision_embeddings"}
	for i := 0; i <= cfg.Vision.Layers; i++ {
		o = append(o, fmt.Sprintf("vision_hidden_states.%d", i))
	}
	o = append(o, "vision_last_hidden_state", "vision_pooler_output")
	for i := 0; i <= cfg.QFormer.Layers; i++ {
		o = append(o, fmt.Sprintf("qformer_hidden_states.%d", i))
	}
	o = append(o, "qformer_last_hidden_state", "language_projection", "lm_inputs_embeds")
	for i := 0; i <= cfg.Text.Layers; i++ {
		o = append(o, fmt.Sprintf("lm_hidden_states.%d", i))
	}
	return append(o, "logits", "pad_logits")
}

// TestParity runs every fixture set's forward pass (every block against upstream, float32
// relative error <= 1e-4) and generate() cases (identical ids, with an F32 and with an F16
// KV cache), for the base model and with the set's LoRA adapter live and merged, on
// every test device (parity.Devices).
func TestParity(t *testing.T) {
	for _, dev := range parity.Devices(t) {
		for _, dir := range fixtures.Sets(t, "blip2", "expected.safetensors") {
			for _, v := range variants {
				t.Run(dev.Name()+"/"+filepath.Base(dir)+"/"+v.name+"/"+v.cases, func(t *testing.T) {
					testParity(t, dev, dir, v)
				})
			}
		}
	}
}

func testParity(t *testing.T, dev *native.Device, dir string, v variant) {
	if v.adapter {
		if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err != nil {
			t.Skipf("%s has no adapter", dir)
		}
	}
	m := loadSetOn(t, dir, v.adapter, v.live, native.F32, dev)
	in := readInputs(t, dir)
	c := parity.Ctx(t, dev, 2)
	if v.expected != "" {
		checkForward(t, c, m, in, parity.Load(t, filepath.Join(dir, v.expected)), v.logits)
	}
	// Beam scores are sums of log-probabilities: with an F16 cache, keys and
	// values carry a relative error up to 2^-11 (4.9e-4) and so may the scores.
	for kv, scoreTol := range map[native.DType]float64{native.F32: 1e-4, native.F16: 1e-3} {
		m.LM.KVCache = kv
		t.Run("kv="+kv.String(), func(t *testing.T) {
			checkGenerate(t, c, m, in, filepath.Join(dir, v.generate), v.cases, scoreTol)
		})
	}
}

func checkForward(t *testing.T, c *native.Ctx, m *Model, in fixtureInputs, want parity.Tensors, logitsName string) {
	ck := &parity.Checker{T: t, Tol: 1e-4}
	m.SetTrace(func(name string, x native.Tensor) {
		if _, ok := want[name]; !ok {
			t.Fatalf("block %s is not in the fixture", name)
		}
		w, _ := want.F32(t, name)
		ck.Check(name, c.ToHost(x), w, nil)
	})
	logits := m.Forward(c, in.pixels, in.ids, in.mask)
	m.SetTrace(nil)
	w, _ := want.F32(t, logitsName)
	ck.Check("logits", c.ToHost(logits), w, nil)
	c.Release(native.Mark{})
	padLogits := m.Forward(c, in.pixels, in.padID, in.pad)
	w, _ = want.F32(t, "pad_logits")
	ck.Check("pad_logits", c.ToHost(padLogits), w, nil)
	c.Release(native.Mark{})
	t.Log(ck.Summary(blockOrder(m.Cfg)))
}

type genCase struct {
	Name      string          `json:"name"`
	Call      string          `json:"call"`
	Kwargs    json.RawMessage `json:"kwargs"`
	Inputs    []string        `json:"inputs_used"`
	OutputIDs [][]int32       `json:"output_ids"`
	Scores    []float64       `json:"sequences_scores"`
}

// literalArg matches keyword arguments with a number or boolean value in a call.
var literalArg = regexp.MustCompile(`\b([a-z_]+)=(-?[0-9.]+|True|False)\b`)

// kwargsParams maps a case's generate() kwargs onto Params; ok is false for kwargs whose
// result cannot be reproduced (sampling draws from torch's generator).
func kwargsParams(t *testing.T, m *Model, raw json.RawMessage, call string) (generate.Params, bool) {
	var kw map[string]json.RawMessage
	if raw == nil {
		// merged_cases have no kwargs object: read the literal keyword arguments of the call
		kw = map[string]json.RawMessage{}
		for _, a := range literalArg.FindAllStringSubmatch(call, -1) {
			kw[a[1]] = json.RawMessage(strings.ToLower(a[2]))
		}
	} else if err := json.Unmarshal(raw, &kw); err != nil {
		t.Fatalf("kwargs of %s: %v", call, err)
	}
	p := m.Params(20)
	for k, v := range kw {
		var err error
		switch k {
		case "max_new_tokens":
			err = json.Unmarshal(v, &p.MaxNewTokens)
		case "min_new_tokens":
			err = json.Unmarshal(v, &p.MinNewTokens)
		case "num_beams":
			err = json.Unmarshal(v, &p.NumBeams)
		case "length_penalty":
			err = json.Unmarshal(v, &p.LengthPenalty)
		case "repetition_penalty":
			err = json.Unmarshal(v, &p.RepetitionPenalty)
		case "no_repeat_ngram_size":
			err = json.Unmarshal(v, &p.NoRepeatNgramSize)
		case "early_stopping":
			var s any
			err = json.Unmarshal(v, &s)
			p.EarlyStopping, err = generate.ParseEarlyStopping(fmt.Sprint(s))
		case "do_sample":
			var on bool
			err = json.Unmarshal(v, &on)
			if on {
				return p, false
			}
		default:
			t.Fatalf("%s: kwarg %s is not mapped by this test", call, k)
		}
		if err != nil {
			t.Fatalf("%s: kwarg %s: %v", call, k, err)
		}
	}
	return p, true
}

// checkGenerate runs the generate() cases of file's list: identical ids, and beam
// search's sequence scores within scoreTol relative error.
func checkGenerate(t *testing.T, c *native.Ctx, m *Model, in fixtureInputs, file, list string, scoreTol float64) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var cases []genCase
	if err := json.Unmarshal(doc[list], &cases); err != nil || len(cases) == 0 {
		t.Fatalf("%s: no %s (%v)", file, list, err)
	}
	for _, gc := range cases {
		p, ok := kwargsParams(t, m, gc.Kwargs, gc.Call)
		if !ok {
			t.Logf("%s: sampling is not reproducible across implementations, skipped", gc.Name)
			continue
		}
		// merged_cases do not list their inputs; their call says which were passed
		padded := slices.Contains(gc.Inputs, "pad_input_ids") || strings.Contains(gc.Call, "input_ids=pad_input_ids")
		plain := slices.Contains(gc.Inputs, "input_ids") || strings.Contains(gc.Call, "input_ids=input_ids")
		prompts := make([]Prompt, in.b)
		for i := range prompts {
			lo, hi := i*in.tp, (i+1)*in.tp
			switch {
			case padded:
				prompts[i] = Prompt{IDs: in.padID[lo:hi], Mask: in.pad[lo:hi]}
			case plain:
				prompts[i] = Prompt{IDs: in.ids[lo:hi], Mask: in.mask[lo:hi]}
			}
		}
		g, err := m.NewGenerator(c, in.b, in.tp, p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.Generate(in.pixels, prompts, p)
		if err != nil {
			t.Fatal(err)
		}
		got := upstreamLayout(res, p, m.Cfg.Text)
		for i := range got {
			if !slices.Equal(got[i], gc.OutputIDs[i]) {
				t.Errorf("%s row %d: got %v, want %v\n  call: %s", gc.Name, i, got[i], gc.OutputIDs[i], gc.Call)
			}
			if gc.Scores != nil && math.Abs(res[i].Score-gc.Scores[i]) > scoreTol*math.Abs(gc.Scores[i]) {
				t.Errorf("%s row %d: sequence score %v, want %v", gc.Name, i, res[i].Score, gc.Scores[i])
			}
		}
	}
}

// upstreamLayout arranges results as Blip2ForConditionalGeneration.generate returns
// them: BOS, the new tokens, and for rows shorter than the batch an EOS then padding
// (greedy: the EOS the row produced; beam search: an EOS when it fits within
// max_new_tokens).
func upstreamLayout(res []generate.Result, p generate.Params, cfg opt.Config) [][]int32 {
	width := 0
	for _, r := range res {
		n := len(r.Tokens)
		if p.NumBeams == 1 && r.EOS {
			n++
		}
		if p.NumBeams > 1 {
			n = min(n+1, p.MaxNewTokens)
		}
		width = max(width, n)
	}
	out := make([][]int32, len(res))
	for i, r := range res {
		row := append([]int32{cfg.BOS}, r.Tokens...)
		if len(row) < width+1 && (r.EOS || p.NumBeams > 1) {
			row = append(row, cfg.EOS[0])
		}
		for len(row) < width+1 {
			row = append(row, cfg.PAD)
		}
		out[i] = row
	}
	return out
}
