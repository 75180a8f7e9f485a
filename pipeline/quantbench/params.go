package quantbench

import (
	"fmt"
	"os"
	"strings"

	"synth/internal/progress"
	"synth/native"
	"synth/pipeline"
)

// Params are `synth bench quant`'s settings (package pipeline's settings: the flags
// come from the tags).
type Params struct {
	CaptionModel     string `set:"caption-model" path:"1" usage:"BLIP-2 folder or GGUF"`
	CaptionTokenizer string `set:"caption-tokenizer" path:"1" usage:"folder with BLIP-2's vocab.json and merges.txt (default: beside the model)"`
	RewriteModel     string `set:"rewrite-model" path:"1" usage:"the Llama GGUF that is the reference"`
	RewriteLevels    string `set:"rewrite-levels" usage:"the Llama at other levels: LEVEL=FILE.gguf, comma-separated (synth does not quantize Llama GGUFs)"`
	EvalModel        string `set:"eval-model" path:"1" usage:"Long-CLIP folder or weights file"`
	EvalVocab        string `set:"eval-vocab" path:"1" usage:"Long-CLIP's merges file (default: bpe_simple_vocab_16e6.txt.gz beside the model)"`
	Levels           string `set:"levels" def:"f16,q8_0,q5_k,q4_k,q4_0" usage:"levels to compare with the reference, comma-separated"`
	Sample           string `set:"sample" path:"1" req:"1" usage:"product manifest (JSONL): images, texts, keywords"`
	N                int    `set:"n" def:"50" usage:"products to use"`
	Device           string `set:"device" def:"cpu" usage:"where the vision models run: cpu, ggml:CPU, cuda:0, ... (a GPU device also offloads the Llama)"`
	Batch            int    `set:"batch" def:"0" usage:"images per forward pass (0: 8 on a CPU, 64 on a GPU)"`
	CaptionTokens    int    `set:"caption-tokens" def:"30" usage:"longest greedy caption, in tokens"`
	RewriteTokens    int    `set:"rewrite-tokens" def:"64" usage:"longest greedy rewrite, in tokens"`
	RewriteParallel  int    `set:"rewrite-parallel" def:"4" usage:"rewrites decoded together (llama.cpp sequences)"`
	Seed             uint64 `set:"seed" def:"0" usage:"seed of Long-CLIP's Table 1 sample"`
}

func bad(key, format string, args ...any) error {
	return &pipeline.SettingError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the values without touching a file.
func (p *Params) Validate() error {
	files, err := ParseLevelFiles(p.RewriteLevels)
	switch {
	case err != nil:
		return bad("rewrite-levels", "%v", err)
	case p.CaptionModel == "" && p.RewriteModel == "" && p.EvalModel == "":
		return bad("", "give at least one of --caption-model, --rewrite-model, --eval-model")
	case len(files) > 0 && p.RewriteModel == "":
		return bad("rewrite-levels", "needs --rewrite-model, the reference")
	case p.N < 2:
		return bad("n", "%d: want at least 2 (the evaluation compares products)", p.N)
	case p.Batch < 0 || p.Batch > 1024:
		return bad("batch", "%d: want 1 to 1024 (0: the device's default)", p.Batch)
	case p.CaptionTokens < 1 || p.CaptionTokens > 4096:
		return bad("caption-tokens", "%d: want 1 to 4096", p.CaptionTokens)
	case p.RewriteTokens < 1 || p.RewriteTokens > 1<<16:
		return bad("rewrite-tokens", "%d: want 1 to 65536", p.RewriteTokens)
	case p.RewriteParallel < 1 || p.RewriteParallel > 256:
		return bad("rewrite-parallel", "%d: want 1 to 256", p.RewriteParallel)
	}
	if _, err := ParseLevels(p.Levels, files); err != nil {
		return bad("levels", "%v", err)
	}
	return nil
}

// Config is the comparison p describes, writing its report to out, computing with
// threads (0: GOMAXPROCS) and reporting progress to r (nil: none). It opens the device.
func (p *Params) Config(out string, threads int, r *progress.Reporter) (Config, error) {
	if err := p.Validate(); err != nil {
		return Config{}, err
	}
	if _, err := os.Stat(p.Sample); err != nil {
		return Config{}, bad("sample", "%v", err)
	}
	dev, err := native.OpenDevice(p.Device)
	if err != nil {
		return Config{}, bad("device", "%v", err)
	}
	files, _ := ParseLevelFiles(p.RewriteLevels)
	levels, _ := ParseLevels(p.Levels, files)
	cfg := Config{Sample: p.Sample, N: p.N, Levels: levels, Out: out, Device: dev, Threads: threads, Batch: p.Batch,
		CaptionTokens: p.CaptionTokens, RewriteTokens: p.RewriteTokens, RewriteParallel: p.RewriteParallel, Seed: p.Seed, Progress: r}
	if p.CaptionModel != "" {
		cfg.Caption = &Caption{Model: p.CaptionModel, Tokenizer: p.CaptionTokenizer}
	}
	if p.RewriteModel != "" {
		cfg.Rewrite = &Rewrite{Model: p.RewriteModel, Files: files}
	}
	if p.EvalModel != "" {
		cfg.Eval = &Eval{Model: p.EvalModel, Vocab: p.EvalVocab}
	}
	return cfg, cfg.Validate()
}

// ParseLevels reads a comma list of level names (lower-cased, blanks dropped) and
// checks it with CheckLevels against the Llama level files.
func ParseLevels(list string, files map[string]string) ([]string, error) {
	out := splitList(list)
	for i := range out {
		out[i] = strings.ToLower(out[i])
	}
	return out, CheckLevels(out, files)
}

// ParseLevelFiles reads a comma list of LEVEL=FILE pairs (the Llama's level files).
func ParseLevelFiles(list string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range splitList(list) {
		name, file, ok := strings.Cut(p, "=")
		name, file = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(file)
		if !ok || name == "" || file == "" {
			return nil, fmt.Errorf("%q: want LEVEL=FILE.gguf", p)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("level %q given twice", name)
		}
		out[name] = file
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
