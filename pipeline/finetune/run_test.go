package finetune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"synth/internal/demo"
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/lora"
	"synth/weights"
)

// demoSet writes the demo's product set (n products, two images each) and its tiny
// random BLIP-2 into dir.
func demoSet(t *testing.T, dir string, n int) (model, manifest string) {
	t.Helper()
	d, err := demo.WriteData(filepath.Join(dir, "data"), demo.Sizes{Source: n, ImagesPerProduct: 2}, 7)
	if err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(dir, "blip2")
	if err := demo.WriteBLIP2(model, filepath.Join(dir, "lora"), demo.DemoBLIP2, 7); err != nil {
		t.Fatal(err)
	}
	return model, d.Source
}

// TestOverfitAndRoundTrip trains a tiny random model on the demo's products until the
// training loss falls by 90% (the demo's model with its token embeddings scaled up: at
// width 48 the tied LM head of the random embeddings cannot give any token a high
// probability, which floors the loss near 2 whatever the adapter does), then checks that the adapter written to disk, loaded the
// way synth caption loads it (merged or live), gives the captions the trained model in
// memory gives, and that they differ from the base model's.
func TestOverfitAndRoundTrip(t *testing.T) {
	dir := t.TempDir()
	model, manifest := demoSet(t, dir, 6)
	scaleTensor(t, filepath.Join(model, "model.safetensors"), "language_model.model.decoder.embed_tokens.weight", 8)
	o := Defaults()
	o.Model, o.Data, o.Out, o.DType, o.Threads = model, manifest, filepath.Join(dir, "adapter"), native.F32, 2
	o.LoRA = lora.LoRAConfig{R: 16, Alpha: 32, Targets: []string{"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}}
	o.Optim.LR, o.Optim.Schedule, o.ValFraction, o.BaseDropout = 1e-2, "constant", 0, 0
	o.Batch, o.MaxSteps, o.SaveEvery = 12, 60, 0
	tr := &trainer{o: &o}
	t.Cleanup(tr.close)
	if err := tr.open(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := tr.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f -> %.4f in %d steps", sum.FirstLoss, sum.FinalLoss, sum.Steps)
	if sum.FinalLoss > 0.1*sum.FirstLoss {
		t.Errorf("training loss fell from %.4f to %.4f: less than 90%%", sum.FirstLoss, sum.FinalLoss)
	}

	// the trained model in memory: the adapter live on the trainer's model
	pixels, err := tr.pixels(tr.data.train)
	if err != nil {
		t.Fatal(err)
	}
	caption := func(m *blip2.Model) [][]int32 {
		t.Helper()
		gen, err := m.NewGenerator(tr.c, len(tr.data.train), 1, m.Params(16))
		if err != nil {
			t.Fatal(err)
		}
		defer gen.Close()
		res, err := gen.Generate(native.FromF32(pixels, len(tr.data.train), 3, tr.size(), tr.size()), make([]blip2.Prompt, len(tr.data.train)), m.Params(16))
		if err != nil {
			t.Fatal(err)
		}
		var out [][]int32
		for _, r := range res {
			out = append(out, r.Tokens)
		}
		return out
	}
	if err := tr.md.Adapter.Attach(tr.m.Device()); err != nil {
		t.Fatal(err)
	}
	trained := caption(tr.m)
	tr.md.Adapter.Detach()
	base := caption(tr.m)
	if fmt.Sprint(base) == fmt.Sprint(trained) {
		t.Fatal("the trained adapter does not change any caption")
	}
	for _, live := range []bool{false, true} {
		src, err := weights.Open(model)
		if err != nil {
			t.Fatal(err)
		}
		a, err := weights.LoadAdapter(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		m, err := blip2.Load(src, blip2.Options{DType: native.F32, Adapter: a, LiveLoRA: live})
		if err != nil {
			t.Fatal(err)
		}
		if got := caption(m); fmt.Sprint(got) != fmt.Sprint(trained) {
			t.Errorf("captions with the adapter from disk (live %v):\n%v\nin memory:\n%v", live, got, trained)
		}
		a.Close()
		src.Close()
	}
}

// TestResumeAfterKill kills a run with SIGKILL between checkpoints, resumes it, and
// checks that the adapter and the log are bit for bit those of an uninterrupted run
// (dropouts, a validation split and gradient accumulation all on).
func TestResumeAfterKill(t *testing.T) {
	if dir := os.Getenv("SYNTH_FINETUNE_KILL_CHILD"); dir != "" {
		o := resumeOptions(dir)
		o.OnStep = func(step int) {
			if step == 7 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
		Run(context.Background(), o)
		return
	}
	dir := t.TempDir()
	demoSet(t, dir, 8)
	whole := resumeOptions(dir)
	whole.Out = filepath.Join(dir, "whole")
	if _, err := Run(context.Background(), whole); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeAfterKill$")
	cmd.Env = append(os.Environ(), "SYNTH_FINETUNE_KILL_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed (%v):\n%s", err, out)
	}
	killed := resumeOptions(dir)
	st, err := (&trainer{o: &killed}).peek()
	if err != nil || st != 6 {
		t.Fatalf("the killed run's checkpoint is at step %d (%v), want 6", st, err)
	}
	if _, err := Run(context.Background(), killed); err == nil {
		t.Fatal("a second run into the killed run's folder without Resume was not refused")
	}
	killed.Resume = true
	sum, err := Run(context.Background(), killed)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ResumedAtStep != 6 {
		t.Errorf("resumed at step %d, want 6", sum.ResumedAtStep)
	}
	for _, f := range []string{WeightsFile, CheckpointFile} {
		a, _ := os.ReadFile(filepath.Join(whole.Out, f))
		b, _ := os.ReadFile(filepath.Join(killed.Out, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	if a, b := logLosses(t, whole.Out), logLosses(t, killed.Out); a != b {
		t.Errorf("logs differ:\nwhole   %s\nresumed %s", a, b)
	}
}

func resumeOptions(dir string) Options {
	o := Defaults()
	o.Model, o.Data, o.Out = filepath.Join(dir, "blip2"), filepath.Join(dir, "data", "source.jsonl"), filepath.Join(dir, "killed")
	o.DType, o.Threads, o.Seed = native.F32, 2, 11
	o.LoRA.R, o.LoRA.Targets = 4, []string{"q_proj", "v_proj", "fc2"}
	o.Batch, o.GradAccum, o.MaxSteps, o.SaveEvery, o.EvalEvery, o.ValFraction = 3, 2, 10, 3, 4, 0.2
	o.Optim.LR, o.Optim.Warmup, o.Optim.Schedule = 1e-3, 2, "cosine"
	return o
}

// peek is the step of Out's checkpoint.
func (tr *trainer) peek() (int, error) {
	src, err := weights.Open(filepath.Join(tr.o.Out, CheckpointFile))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	raw, _ := src.MetaString(stateKey)
	var st state
	err = json.Unmarshal([]byte(raw), &st)
	return st.Step, err
}

// logLosses is the log's lines without their timings.
func logLosses(t *testing.T, out string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	var s []byte
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var l LogLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		l.TokensSec = 0
		js, _ := json.Marshal(l)
		s = append(append(s, js...), '\n')
	}
	return string(s)
}

// scaleTensor multiplies one F32 tensor of a safetensors file in place.
func scaleTensor(t *testing.T, path, name string, k float32) {
	t.Helper()
	src, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []weights.Tensor
	found := false
	for _, x := range src.Tensors() {
		v, err := x.F32()
		if err != nil {
			t.Fatal(err)
		}
		if x.Name == name {
			found = true
			for i := range v {
				v[i] *= k
			}
		}
		ts = append(ts, weights.F32Tensor(x.Name, x.Shape, v))
	}
	src.Close()
	if !found {
		t.Fatalf("%s: no tensor %s", path, name)
	}
	if err := weights.WriteSafetensors(path, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}
