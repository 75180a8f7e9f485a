package finetune

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"synth/vision/lora"
	"testing"

	"synth/internal/fixtures"
	"synth/internal/parity"
	"synth/native"
)

// goldenTol is the fixture README's bound: float32 with another summation order.
const goldenTol = 1e-4

type golden struct {
	Losses   []float64 `json:"losses"`
	InputIDs [][]int32 `json:"input_ids"`
	Labels   [][]int32 `json:"labels"`
	Flags    []string  `json:"flags"`
}

func readGolden(t *testing.T, set string) golden {
	t.Helper()
	var g golden
	b, err := os.ReadFile(filepath.Join(set, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", set, err)
	}
	return g
}

// goldenOptions are the run a fixture set describes: its model and products, its
// starting adapter, and the recipe its flags state (parsed here as synth finetune
// parses them; cmd/synth's test runs the flags through the real command).
func goldenOptions(t *testing.T, set string, g golden, dev *native.Device) Options {
	t.Helper()
	o := Defaults()
	o.Model, o.Data, o.FromAdapter = filepath.Join(set, "model"), filepath.Join(set, "products.jsonl"), filepath.Join(set, "init_adapter")
	o.Out, o.DType, o.Device, o.Threads = t.TempDir(), native.F32, dev, 2
	if dev != native.CPU {
		o.Threads = 1
	}
	for i := 0; i+1 < len(g.Flags); i += 2 {
		name, v := strings.TrimPrefix(g.Flags[i], "--"), g.Flags[i+1]
		num := func() float64 {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: flag --%s %q: %v", set, name, v, err)
			}
			return f
		}
		switch name {
		case "lora-r":
			o.LoRA.R = int(num())
		case "lora-alpha":
			o.LoRA.Alpha = num()
		case "lora-dropout":
			o.LoRA.Dropout = float32(num())
		case "target-modules":
			o.LoRA.Targets = strings.Split(v, ",")
		case "lr":
			o.Optim.LR = num()
		case "weight-decay":
			o.Optim.WeightDecay = num()
		case "warmup-steps":
			o.Optim.Warmup = int(num())
		case "schedule":
			o.Optim.Schedule = v
		case "grad-clip":
			o.Optim.GradClip = num()
		case "batch":
			o.Batch = int(num())
		case "max-steps":
			o.MaxSteps = int(num())
		case "val-fraction":
			o.ValFraction = num()
		case "base-dropout":
			o.BaseDropout = num()
		case "grad-accum":
			o.GradAccum = int(num())
		case "eps":
			o.Optim.Eps = num()
		case "betas":
			var b1, b2 float64
			if _, err := fmt.Sscanf(v, "%g,%g", &b1, &b2); err != nil {
				t.Fatalf("%s: --betas %q: %v", set, v, err)
			}
			o.Optim.Beta1, o.Optim.Beta2 = b1, b2
		default:
			t.Fatalf("%s: flag --%s is not known to this test", set, name)
		}
	}
	return o
}

// TestGoldenStep checks one training step against HF transformers + peft on every
// fixture set and device: the batch's tokens and labels, the loss, and the gradient of
// every LoRA tensor.
func TestGoldenStep(t *testing.T) {
	for _, set := range fixtures.Sets(t, "finetune", "expected.json") {
		g := readGolden(t, set)
		want := parity.Load(t, filepath.Join(set, "grads_step0.safetensors"))
		for _, dev := range parity.Devices(t) {
			t.Run(filepath.Base(set)+"/"+dev.String(), func(t *testing.T) {
				o := goldenOptions(t, set, g, dev)
				tr := &trainer{o: &o}
				t.Cleanup(tr.close)
				if err := tr.open(); err != nil {
					t.Fatal(err)
				}
				if len(tr.data.train) != len(g.InputIDs) {
					t.Fatalf("%d training examples, the fixture's batch has %d", len(tr.data.train), len(g.InputIDs))
				}
				for i, ex := range tr.data.train {
					ids, labels := padded(ex, len(g.InputIDs[i]), tr.m.LM.Cfg.PAD)
					if fmt.Sprint(ids) != fmt.Sprint(g.InputIDs[i]) || fmt.Sprint(labels) != fmt.Sprint(g.Labels[i]) {
						t.Fatalf("example %d:\n ids    %v\n labels %v\nwant\n ids    %v\n labels %v", i, ids, labels, g.InputIDs[i], g.Labels[i])
					}
				}
				if err := tr.cachePrefixes(context.Background()); err != nil {
					t.Fatal(err)
				}
				ad := tr.md.Adapter
				if err := ad.Attach(tr.m.Device()); err != nil {
					t.Fatal(err)
				}
				defer ad.Detach()
				idx := make([]int, len(tr.data.train))
				for i := range idx {
					idx[i] = i
				}
				tr.md.Train, tr.md.GradScale = true, 1
				x, bt, _, err := tr.inputs(pick(tr.data.train, idx), &lora.Seeds{}, true)
				if err != nil {
					t.Fatal(err)
				}
				loss, _, _ := tr.md.Loss(tr.c, x, bt, tr.m.Cfg.NumQueryTokens, &lora.Seeds{}, true, false)
				if d := math.Abs(loss-g.Losses[0]) / math.Abs(g.Losses[0]); d > goldenTol {
					t.Errorf("loss %.7f, want %.7f (rel %.2g)", loss, g.Losses[0], d)
				}
				worst := 0.0
				for _, p := range ad.Params {
					for _, x := range []struct {
						ab   string
						grad []float32
					}{{"A", p.GA}, {"B", p.GB}} {
						name := "base_model.model." + p.Module + ".lora_" + x.ab + ".weight"
						w, _ := want.F32(t, name)
						e := parity.RelErr(x.grad, w, nil)
						worst = max(worst, e)
						if e > goldenTol {
							t.Errorf("%s: gradient rel err %.3g", name, e)
						}
					}
				}
				t.Logf("loss %.7f (want %.7f); worst gradient rel err %.3g over %d tensors", loss, g.Losses[0], worst, 2*len(ad.Params))
			})
		}
	}
}

func padded(ex example, n int, pad int32) (ids, labels []int32) {
	for j := 0; j < n; j++ {
		if j < len(ex.ids) {
			ids = append(ids, ex.ids[j])
			labels = append(labels, ex.ids[j])
		} else {
			ids = append(ids, pad)
			labels = append(labels, native.IgnoreIndex)
		}
	}
	return ids, labels
}

// TestGoldenRun runs the fixture's whole recipe through Run and checks every step's
// loss and every tensor of the final adapter.
func TestGoldenRun(t *testing.T) {
	for _, set := range fixtures.Sets(t, "finetune", "expected.json") {
		g := readGolden(t, set)
		want := parity.Load(t, filepath.Join(set, "expected_adapter", WeightsFile))
		for _, dev := range parity.Devices(t) {
			t.Run(filepath.Base(set)+"/"+dev.String(), func(t *testing.T) {
				o := goldenOptions(t, set, g, dev)
				if _, err := Run(context.Background(), o); err != nil {
					t.Fatal(err)
				}
				checkLosses(t, filepath.Join(o.Out, LogFile), g.Losses)
				got := parity.Load(t, filepath.Join(o.Out, WeightsFile))
				if len(got) != len(want) {
					t.Errorf("adapter has %d tensors, want %d", len(got), len(want))
				}
				worst := 0.0
				for name := range want {
					w, _ := want.F32(t, name)
					v, _ := got.F32(t, name)
					e := parity.RelErr(v, w, nil)
					worst = max(worst, e)
					if e > goldenTol {
						t.Errorf("%s: rel err %.3g", name, e)
					}
				}
				t.Logf("worst adapter tensor rel err %.3g", worst)
			})
		}
	}
}

// checkLosses compares the log's training losses with the fixture's, step by step.
func checkLosses(t *testing.T, log string, want []float64) {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", log, err)
		}
		if l.Loss != nil {
			got = append(got, *l.Loss)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d steps logged, want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(got[i]-want[i]) / math.Abs(want[i]); d > goldenTol {
			t.Errorf("step %d: loss %.7f, want %.7f (rel %.2g)", i+1, got[i], want[i], d)
		}
	}
}
