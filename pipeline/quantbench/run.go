package quantbench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"synth/dataset"
	"synth/eval/quant"
	"synth/internal/progress"
	"synth/native"
	"synth/vision/nn"
	"synth/weights"
)

// Config is one comparison. At least one of Caption, Rewrite and Eval is set.
type Config struct {
	Sample string   // product manifest (JSONL)
	N      int      // products to use (default 50)
	Levels []string // level names: ggml types (f16, q8_0, q4_k, ...) or keys of Rewrite.Files
	Out    string   // report folder; level files and the reference's logits live here while measured

	Device  *native.Device // where the vision models run (nil: the cpu)
	Threads int            // compute threads (0: GOMAXPROCS)
	Batch   int            // images per forward pass of the vision models (0: 8 on a CPU, 64 on a GPU)
	// CaptionTokens and RewriteTokens bound the greedy outputs (default 30 and 64).
	CaptionTokens, RewriteTokens int
	// RewriteParallel is the number of rewrites decoded together (default 4).
	RewriteParallel int
	Seed            uint64 // the Long-CLIP evaluation's sample

	Caption *Caption
	Rewrite *Rewrite
	Eval    *Eval

	// Progress shows each model's levels as they are measured (nil: nothing shown).
	Progress *progress.Reporter
}

// Caption is the BLIP-2 captioner to compare.
type Caption struct {
	Model     string // HF folder or GGUF
	Tokenizer string // folder with vocab.json and merges.txt (default: beside the model)
}

// Rewrite is the Llama to compare.
type Rewrite struct {
	Model string            // the reference GGUF
	Files map[string]string // level name -> GGUF of that level
}

// Eval is the Long-CLIP to compare.
type Eval struct {
	Model string // folder, .pt, .safetensors or .gguf
	Vocab string // the CLIP merges file (default: bpe_simple_vocab_16e6.txt.gz beside the model)
}

// Defaults.
const (
	DefaultN             = 50
	DefaultCaptionTokens = 30
	DefaultRewriteTokens = 64
	DefaultParallel      = 4
)

// DefaultLevels are the levels of the example.
var DefaultLevels = []string{"f16", "q8_0", "q5_k", "q4_k", "q4_0"}

// CheckLevels returns an error naming the first level that is neither a ggml type name
// nor one of the Llama level files given (a typo such as "q8" would otherwise only be
// reported as a level no model can take).
func CheckLevels(levels []string, files map[string]string) error {
	if len(levels) == 0 {
		return errors.New("no level to compare")
	}
	seen := map[string]bool{}
	for _, l := range levels {
		if seen[l] {
			return fmt.Errorf("level %q given twice", l)
		}
		seen[l] = true
		if _, ok := files[l]; ok {
			continue
		}
		if _, err := weights.ParseDType(l); err != nil {
			return fmt.Errorf("level %q is neither a ggml type (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, ...) nor one of the Llama's level files", l)
		}
	}
	return nil
}

// Validate fills in the defaults and checks the configuration (Run does it too): its
// errors are the caller's mistakes.
func (c *Config) Validate() error {
	if c.N == 0 {
		c.N = DefaultN
	}
	if c.CaptionTokens == 0 {
		c.CaptionTokens = DefaultCaptionTokens
	}
	if c.RewriteTokens == 0 {
		c.RewriteTokens = DefaultRewriteTokens
	}
	if c.RewriteParallel == 0 {
		c.RewriteParallel = DefaultParallel
	}
	if c.Device == nil {
		c.Device = native.CPU
	}
	if c.Threads <= 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	if c.Batch <= 0 {
		c.Batch = 8
		if c.Device.GPU() {
			c.Batch = 64
		}
	}
	var files map[string]string
	if c.Rewrite != nil {
		files = c.Rewrite.Files
	}
	switch {
	case c.Caption == nil && c.Rewrite == nil && c.Eval == nil:
		return errors.New("quantbench: no model to compare (give a caption, rewrite or eval model)")
	case c.N < 2:
		return fmt.Errorf("quantbench: %d products: the evaluation needs at least 2", c.N)
	case c.CaptionTokens < 1 || c.RewriteTokens < 1 || c.RewriteParallel < 1:
		return fmt.Errorf("quantbench: longest outputs of %d and %d tokens, %d rewrites at once: want at least 1", c.CaptionTokens, c.RewriteTokens, c.RewriteParallel)
	case c.Out == "":
		return errors.New("quantbench: no report folder")
	}
	if _, err := os.Stat(c.Sample); err != nil {
		return fmt.Errorf("quantbench: sample: %w", err)
	}
	if err := CheckLevels(c.Levels, files); err != nil {
		return fmt.Errorf("quantbench: levels: %w", err)
	}
	return nil
}

// Run compares every model given at every level, writes the report into Out
// (quant.Report.WriteFiles) and returns it. The models run one after the other, each
// level loaded alone; Out is locked against another run meanwhile.
func Run(ctx context.Context, cfg Config) (*quant.Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	sum, err := fileSHA256(cfg.Sample)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.work(), 0o755); err != nil {
		return nil, fmt.Errorf("quantbench: %w", err)
	}
	lock, err := dataset.LockOutput(cfg.Out)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	defer os.RemoveAll(cfg.work())
	rep := &quant.Report{Sample: cfg.Sample, SampleSHA256: sum, Products: cfg.N, Levels: cfg.Levels,
		Device: cfg.Device.Name(), Threads: cfg.Threads}
	if !peakReset() {
		rep.Notes = append(rep.Notes, "peak memory could not be reset per level here (no /proc/self/clear_refs): each level's peak RSS is the process's peak so far")
	}
	type step struct {
		set bool
		run func(context.Context, *Config) (*quant.Model, error)
	}
	for _, s := range []step{{cfg.Eval != nil, runEval}, {cfg.Caption != nil, runCaption}, {cfg.Rewrite != nil, runRewrite}} {
		if !s.set {
			continue
		}
		t0 := time.Now()
		m, err := s.run(ctx, &cfg)
		if err != nil {
			return nil, err
		}
		m.Seconds = time.Since(t0).Seconds()
		rep.Models = append(rep.Models, *m)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, rep.WriteFiles(cfg.Out)
}

// work is the folder of level files and logits while Run runs.
func (c *Config) work() string { return filepath.Join(c.Out, ".quantbench") }

// start begins a model's progress task: the reference and its levels.
func (c *Config) start(role string, levels int) *progress.Task {
	return c.Progress.Start("bench quant: "+role, "levels", levels+1)
}

// visionLevel is how a vision model takes a level: the stored type and the type the
// weights run as, or why it cannot.
type visionLevel struct {
	name   string
	stored weights.DType
	runs   native.DType
	runsAs string // set when the kernels do not read stored: the weights are dequantized to f32
	skip   string
}

// visionLevels checks each level against the checkpoint: a ggml type synth can write
// (weights.Plan) that stores at least one of its tensors (block sizes must divide the
// rows).
func visionLevels(levels []string, src *weights.Source, arch string) []visionLevel {
	var out []visionLevel
	for _, name := range levels {
		l := visionLevel{name: name}
		dt, err := weights.ParseDType(name)
		switch {
		case err != nil:
			l.skip = "not a ggml type: a Llama level only"
		case dt == weights.F32:
			l.skip = "the reference itself (float weights computed in f32)"
		default:
			l.stored = dt
			plan, err := weights.Plan(src, weights.ConvertOptions{Type: dt, Architecture: arch, Codec: native.Codec{}})
			if err != nil {
				l.skip = err.Error()
				break
			}
			if countStored(plan)[strings.ToLower(dt.String())] == 0 {
				l.skip = fmt.Sprintf("no tensor of this model can be stored as %s (rows must be whole blocks of %d values)", dt, dt.BlockSize())
				break
			}
			if l.runs, err = nn.ParseDType(name); err != nil {
				l.runs, l.runsAs = native.F32, "f32"
			}
		}
		out = append(out, l)
	}
	return out
}

func countStored(plan []weights.PlanItem) map[string]int {
	out := map[string]int{}
	for _, it := range plan {
		out[strings.ToLower(it.To.String())]++
	}
	return out
}

// convertLevel writes the checkpoint at path as a GGUF of the level into the work folder
// and returns the file, the tensors per stored type and the time it took.
func (c *Config) convertLevel(role, path string, l visionLevel, arch string, config []byte) (string, map[string]int, float64, error) {
	src, err := weights.Open(path)
	if err != nil {
		return "", nil, 0, err
	}
	defer src.Close()
	if config == nil {
		config = src.Config()
	}
	out := filepath.Join(c.work(), fmt.Sprintf("%s-%s.gguf", role, l.name))
	start := time.Now()
	plan, err := weights.ConvertToGGUF(src, out, weights.ConvertOptions{Type: l.stored, Architecture: arch,
		Name: strings.TrimSuffix(filepath.Base(filepath.Clean(path)), filepath.Ext(path)) + "-" + l.name, Config: config, Threads: c.Threads,
		Codec: native.Codec{Threads: c.Threads}}) // synth convert's: ggml's quantizers, the K-quants included
	if err != nil {
		return "", nil, 0, fmt.Errorf("quantbench: %s at %s: %w", role, l.name, err)
	}
	return out, countStored(plan), time.Since(start).Seconds(), nil
}

// eachLevel measures a vision model at each level: the reference checkpoint at path
// converted to the level (convertLevel), measured, removed. A level the model cannot
// take, or that fails to convert (a type this build cannot write after all), is listed
// with the reason instead; measure's errors end the run.
func (c *Config) eachLevel(task *progress.Task, role, path, arch string, config []byte, levels []visionLevel,
	measure func(l visionLevel, file string, size int64) (quant.Level, error)) ([]quant.Level, error) {
	var out []quant.Level
	for _, l := range levels {
		task.Note(l.name)
		var file string
		var stored map[string]int
		var secs float64
		if l.skip == "" {
			var err error
			if file, stored, secs, err = c.convertLevel(role, path, l, arch, config); err != nil {
				l.skip = err.Error()
			}
		}
		if l.skip != "" {
			out = append(out, skipped(l.name, l.skip))
			task.Add(1)
			continue
		}
		size, err := filesSize(file)
		var lv quant.Level
		if err == nil {
			lv, err = measure(l, file, size)
		}
		os.Remove(file)
		if err != nil {
			return nil, err
		}
		lv.Level, lv.Stored, lv.RunsAs = l.name, stored, l.runsAs
		lv.Cost.ConvertSeconds = secs
		out = append(out, lv)
		task.Add(1)
	}
	return out, nil
}

// skipped is the report entry of a level a model cannot take.
func skipped(name, why string) quant.Level { return quant.Level{Level: name, Skipped: why} }

// filesSize is the size of the checkpoint at path: the file, or for a folder the weight
// files weights.Open reads in it.
func filesSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("quantbench: %w", err)
	}
	if !st.IsDir() {
		return st.Size(), nil
	}
	src, err := weights.Open(path)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var n int64
	for _, f := range src.Files() {
		st, err := os.Stat(f)
		if err != nil {
			return 0, fmt.Errorf("quantbench: %w", err)
		}
		n += st.Size()
	}
	return n, nil
}

// storedTypes counts a checkpoint's tensors by stored type and returns its size.
func storedTypes(path string) (map[string]int, int64, error) {
	src, err := weights.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer src.Close()
	out := map[string]int{}
	for _, t := range src.Tensors() {
		out[strings.ToLower(t.DType.String())]++
	}
	size, err := filesSize(path)
	return out, size, err
}

// dominant names the most common stored type but f32 (norms stay f32 at every level),
// or f32.
func dominant(stored map[string]int) string {
	best, n := "f32", 0
	for _, k := range sortedKeys(stored) {
		if k != "f32" && stored[k] > n {
			best, n = k, stored[k]
		}
	}
	return best
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("quantbench: sample: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("quantbench: sample: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// meter measures one level's costs: the peak memory from its start, the device memory
// it leaves in use, the load and the work.
type meter struct {
	dev       *native.Device
	devBefore uint64
	start     time.Time
	cost      quant.Cost
}

// startMeter collects what earlier levels left behind and resets the peak.
func startMeter(dev *native.Device, fileBytes int64) *meter {
	runtime.GC()
	freeOSMemory()
	m := &meter{dev: dev, cost: quant.Cost{FileBytes: fileBytes}}
	if dev.GPU() {
		free, total := dev.Memory()
		m.devBefore = total - free
	}
	peakReset()
	m.start = time.Now()
	return m
}

// loaded marks the end of the load.
func (m *meter) loaded() {
	m.cost.LoadSeconds = time.Since(m.start).Seconds()
}

// done ends the level: items of unit were produced in work (the timed part of what ran
// after the load).
func (m *meter) done(items float64, unit string, work time.Duration) *quant.Cost {
	m.cost.Seconds = work.Seconds()
	if work > 0 {
		m.cost.Speed = items / work.Seconds()
	}
	m.cost.SpeedUnit = unit
	m.cost.PeakRSSBytes = peakRSS()
	if m.dev.GPU() {
		free, total := m.dev.Memory()
		if used := total - free; used > m.devBefore {
			m.cost.DeviceBytes = used - m.devBefore
		}
	}
	c := m.cost
	return &c
}
