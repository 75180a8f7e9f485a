package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"synth/internal/llamagguf"
)

// Layout is what Build puts in the demo folder.
type Layout struct {
	Dir      string
	Data     Data
	BLIP2    string // HF folder
	LoRA     string // PEFT adapter folder
	LongCLIP string // .pt, with the merges file beside it
	Llama    string // .gguf
	Config   string // the pipeline's synth.yaml
}

// readyFile records what a finished Build made, so a second Build with the same
// parameters leaves every file (and its time stamps) alone and the pipeline finds its
// outputs complete.
const readyFile = ".demo-ready.json"

type readyStamp struct {
	Seed    uint64 `json:"seed"`
	Version int    `json:"version"`
}

// buildVersion changes when Build would write different files for the same seed.
const buildVersion = 3

// Build writes the demo's data, models and pipeline config into dir, unless a complete
// build with the same seed is already there.
func Build(dir string, seed uint64) (Layout, bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Layout{}, false, fmt.Errorf("demo: %w", err)
	}
	l := Layout{
		Dir:   abs,
		BLIP2: filepath.Join(abs, "models", "blip2-opt-demo"),
		LoRA:  filepath.Join(abs, "models", "blip2-fashion-lora"),
		Llama: filepath.Join(abs, "models", "llama-3.1-demo.gguf"),
	}
	l.LongCLIP, _ = longCLIPFiles(filepath.Join(abs, "models", "longclip"))
	l.Config = filepath.Join(abs, "synth.yaml")
	data := filepath.Join(abs, "data")
	l.Data = Data{
		Source:    filepath.Join(data, "source.jsonl"),
		SourceKo:  filepath.Join(data, "source_ko.jsonl"),
		Glossary:  filepath.Join(data, "glossary.tsv"),
		Unlabeled: filepath.Join(data, "unlabeled.jsonl"),
		Foreign:   filepath.Join(data, "foreign.jsonl"),
		Examples:  filepath.Join(data, "style_examples.jsonl"),
	}
	want := readyStamp{Seed: seed, Version: buildVersion}
	if raw, err := os.ReadFile(filepath.Join(abs, readyFile)); err == nil {
		var got readyStamp
		if json.Unmarshal(raw, &got) == nil && got == want {
			return l, false, nil
		}
	}
	if _, err := WriteData(data, DefaultSizes, seed); err != nil {
		return l, false, err
	}
	if err := WriteBLIP2(l.BLIP2, l.LoRA, DemoBLIP2, seed); err != nil {
		return l, false, err
	}
	pt, vocab := longCLIPFiles(filepath.Dir(l.LongCLIP))
	if err := os.MkdirAll(filepath.Dir(pt), 0o755); err != nil {
		return l, false, fmt.Errorf("demo: %w", err)
	}
	if err := WriteLongCLIP(pt, vocab, DemoLongCLIP, seed); err != nil {
		return l, false, err
	}
	llama := llamagguf.Tiny
	llama.Name, llama.Seed = "llama-3.1-demo", seed
	if err := llamagguf.Write(l.Llama, llama); err != nil {
		return l, false, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(l.Config, []byte(pipelineYAML), 0o644); err != nil {
		return l, false, fmt.Errorf("demo: %w", err)
	}
	stamp, _ := json.Marshal(want)
	if err := os.WriteFile(filepath.Join(abs, readyFile), stamp, 0o644); err != nil {
		return l, false, fmt.Errorf("demo: %w", err)
	}
	return l, true, nil
}

// pipelineYAML is the demo's synth.yaml: the real pipeline with parameters sized for
// tiny models and a small product set (paths relative to the demo folder).
var pipelineYAML = strings.TrimLeft(`
# synth demo: the paper's method end to end on tiny random-weight models.
# Random weights make meaningless text: this shows the pipeline, not quality.
output: out
threads: 0

data:
  # Korean source descriptions, translated by the translate step below; the translation
  # is the evaluation's source set (data/source.jsonl holds the same products described
  # in English, for comparison).
  source: data/source_ko.jsonl
  unlabeled: data/unlabeled.jsonl
  foreign: data/foreign.jsonl

translate:
  model: models/llama-3.1-demo.gguf
  glossary: data/glossary.tsv
  from: ko
  to: en
  fields: text,category
  parallel: 3
  max-tokens: 48
  seed: 0

# The paper's first step: a LoRA adapter for BLIP-2 trained on the (translated) source
# products, a few steps here. Caption then uses it (its lora: defaults to this adapter).
finetune:
  model: models/blip2-opt-demo
  dtype: f32
  lora-r: 8
  lora-alpha: 16
  target-modules: q_proj,k_proj,v_proj
  lr: 2e-3
  batch: 8
  max-steps: 12
  save-every: 4
  eval-every: 4
  val-fraction: 0.1

caption:
  model: models/blip2-opt-demo
  dtype: f32
  batch: 4
  max-new-tokens: 24

rewrite:
  model: models/llama-3.1-demo.gguf
  examples: data/style_examples.jsonl
  parallel: 3
  max-tokens: 48
  temperature: 0.7
  seed: 0

eval:
  model: models/longclip/LongCLIP-demo.pt
  products: 24
  images-per-product: 2
  seed: 0
  cache: cache/embeddings
`, "\n")
