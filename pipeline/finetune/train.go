package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"synth/vision/lora"
	"time"

	"synth/dataset"
	"synth/dataset/embcache"
	"synth/dataset/imagefile"
	"synth/internal/filehash"
	"synth/internal/progress"
	"synth/internal/seed"
	"synth/native"
	"synth/vision/blip2"
	"synth/vision/gpt2tok"
	"synth/weights"
)

// Files of the output folder. The folder is itself the PEFT adapter (synth caption
// --lora OUT loads it).
const (
	ConfigFile     = "adapter_config.json"
	WeightsFile    = "adapter_model.safetensors"
	CheckpointFile = "checkpoint.safetensors" // adapter + optimizer state + position
	LogFile        = "train_log.jsonl"
	PlotFile       = "loss.png"
	SummaryFile    = "summary.json"
	// prefixCacheSuffix names the default prefix cache, beside the output folder (not
	// in it: the folder is the adapter, and its hash is part of caption's provenance).
	prefixCacheSuffix = ".prefix-cache"
)

// Options is one training run: synth finetune's flags.
type Options struct {
	Model     string // a BLIP-2 folder or GGUF
	Tokenizer string // the folder with vocab.json and merges.txt ("": the model's)
	Data      string // the product manifest
	Out       string // the adapter folder written
	Cache     string // the prefix cache ("": OUT.prefix-cache beside OUT)
	Text      Text
	LoRA      lora.LoRAConfig
	// FromAdapter starts from this PEFT adapter instead of a fresh one (LoRA's shape
	// then comes from its adapter_config.json).
	FromAdapter string
	Optim       lora.Optim
	ValFraction float64
	EvalEvery   int // validation every this many steps (0: at the end of each epoch)
	Epochs      int // passes over the training set (when MaxSteps is 0)
	MaxSteps    int // optimizer steps, overriding Epochs when positive
	SaveEvery   int // a checkpoint every this many steps (0: at the end only)
	Batch       int // examples per micro-batch
	GradAccum   int // micro-batches per optimizer step
	Seed        uint64
	// BaseDropout is the frozen model's dropout in training: negative for the config's
	// rates (OPT dropout, Q-Former hidden_dropout_prob), else this rate for both.
	BaseDropout float64
	Resume      bool
	DType       native.DType // the frozen weights' type (native.F32, F16, BF16, Q8_0)
	AutoDType   bool         // the checkpoint's own type instead of DType
	Device      *native.Device
	Threads     int
	Progress    *progress.Reporter
	// Stop, when set, is polled between steps: training then saves a checkpoint and
	// returns ErrStopped (SIGINT).
	Stop func() bool
	// OnStep, when set, is called after each optimizer step is logged (before its
	// checkpoint): the resume test kills the process there.
	OnStep func(step int)
}

// ErrStopped is returned when Options.Stop asked training to stop; a checkpoint was
// written, so --resume continues.
var ErrStopped = errors.New("finetune: stopped; --resume continues from the checkpoint")

// Summary is what a run did (summary.json).
type Summary struct {
	Examples      int       `json:"examples"`
	ValExamples   int       `json:"val_examples"`
	Products      int       `json:"products"`
	Truncated     int       `json:"truncated"`
	Steps         int       `json:"steps"`
	Epochs        float64   `json:"epochs"`
	Tokens        int64     `json:"tokens"` // text tokens trained on, padding excluded
	Seconds       float64   `json:"seconds"`
	TokensPerSec  float64   `json:"tokens_per_second"`
	FirstLoss     float64   `json:"first_loss"`
	FinalLoss     float64   `json:"final_loss"`
	FinalValLoss  *float64  `json:"final_val_loss,omitempty"`
	Adapter       string    `json:"adapter"` // the output folder's name
	Params        string    `json:"trainable"`
	Fingerprint   string    `json:"fingerprint"`
	PrefixCache   string    `json:"prefix_cache,omitempty"` // the cache folder's name
	ResumedAtStep int       `json:"resumed_at_step,omitempty"`
	Finished      time.Time `json:"finished"`
	// Reused is set when OUT already held this run finished: nothing was trained.
	Reused bool `json:"-"`
}

// LogLine is one line of train_log.jsonl: an optimizer step, or a validation.
type LogLine struct {
	Step      int      `json:"step"` // 1-based: the update this line follows
	Epoch     float64  `json:"epoch"`
	Loss      *float64 `json:"loss,omitempty"`
	ValLoss   *float64 `json:"val_loss,omitempty"`
	LR        float64  `json:"lr"`
	GradNorm  *float64 `json:"grad_norm,omitempty"`
	Tokens    int      `json:"tokens,omitempty"`
	TokensSec float64  `json:"tokens_per_second,omitempty"`
}

// Validate checks the settings, naming the flag at fault.
func (o *Options) Validate() error {
	bad := func(flag string, v any, want string) error {
		return fmt.Errorf("finetune: --%s %v: want %s", flag, v, want)
	}
	switch {
	case o.Model == "":
		return fmt.Errorf("finetune: --model is required")
	case o.Data == "":
		return fmt.Errorf("finetune: --data is required")
	case o.Out == "":
		return fmt.Errorf("finetune: --out is required")
	case o.Batch < 1 || o.Batch > 4096:
		return bad("batch", o.Batch, "1 to 4096")
	case o.GradAccum < 1 || o.GradAccum > 1<<16:
		return bad("grad-accum", o.GradAccum, "1 to 65536")
	case o.MaxSteps < 0:
		return bad("max-steps", o.MaxSteps, "a count >= 0 (0: --epochs decides)")
	case o.MaxSteps == 0 && o.Epochs < 1:
		return bad("epochs", o.Epochs, "at least 1 (or set --max-steps)")
	case o.SaveEvery < 0:
		return bad("save-every", o.SaveEvery, "a count >= 0 (0: at the end only)")
	case o.EvalEvery < 0:
		return bad("eval-every", o.EvalEvery, "a count >= 0 (0: every epoch)")
	case o.Text.MaxLen != 0 && (o.Text.MaxLen < 2 || o.Text.MaxLen > 1<<16):
		return bad("max-length", o.Text.MaxLen, "2 to 65536 tokens (0: 128, or what the model's positions allow)")
	case !(o.ValFraction >= 0 && o.ValFraction < 1):
		return bad("val-fraction", o.ValFraction, "a fraction in [0, 1)")
	case o.BaseDropout >= 1 || o.BaseDropout != o.BaseDropout:
		return bad("base-dropout", o.BaseDropout, "a rate in [0, 1)")
	}
	return o.Optim.Validate()
}

// trainer is one run in progress.
type trainer struct {
	o      *Options
	m      *blip2.Model
	md     *lora.Model
	c      *native.Ctx
	data   *corpus
	cache  *embcache.Cache
	prep   string // the prefix cache's preprocessing key
	modelH string // the model's content hash
	qTrain bool   // the Q-Former or the projection carries LoRA: prefixes are recomputed
	total  int    // optimizer steps
	perEp  int    // optimizer steps per epoch
	fp     string // the run's fingerprint
	log    *os.File
	sum    Summary
	losses []float64 // training loss per step (for the plot)
	vals   [][2]float64
}

// Run trains the adapter, resuming from OUT's checkpoint with Options.Resume, and
// returns the summary it also writes to OUT/summary.json.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("finetune: --out: %w", err)
	}
	lock, err := dataset.LockOutput(o.Out)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if os.Getenv("GOGC") == "" {
		// The collector paces itself by the live heap, gigabytes of frozen weights: at the
		// default GOGC a step's garbage (host copies of gradients, decoded images) could
		// grow by as much again before a cycle.
		defer debug.SetGCPercent(debug.SetGCPercent(25))
	}
	tr := &trainer{o: &o}
	defer tr.close()
	if err := tr.open(); err != nil {
		return nil, err
	}
	return tr.run(ctx)
}

func (tr *trainer) close() {
	if tr.log != nil {
		tr.log.Close()
	}
	if tr.cache != nil {
		tr.cache.Close()
	}
	if tr.c != nil {
		tr.c.Close()
	}
}

// open loads the model, the adapter and the data, and derives the run's fingerprint.
func (tr *trainer) open() error {
	o := tr.o
	tokDir := o.Tokenizer
	if tokDir == "" {
		tokDir = o.Model
		if st, err := os.Stat(o.Model); err == nil && !st.IsDir() {
			tokDir = filepath.Dir(o.Model)
		}
	}
	if _, err := os.Stat(filepath.Join(tokDir, "vocab.json")); err != nil {
		return fmt.Errorf("finetune: no tokenizer in %s (vocab.json and merges.txt): pass --tokenizer DIR", tokDir)
	}
	tok, err := gpt2tok.Load(tokDir)
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	src, err := weights.Open(o.Model)
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	defer src.Close()
	dt := o.DType
	if o.AutoDType {
		dt = blip2.StoredDType(src)
		if dt == native.F32 && src.ParamCount() > 1e9 {
			slog.Info("finetune: the frozen weights stay F32 as stored (--dtype auto); --dtype f16 halves their memory, q8_0 (QLoRA-style, integer products) quarters it and trains fastest on the cpu",
				"params", src.ParamCount())
		}
	}
	m, err := blip2.Load(src, blip2.Options{DType: dt, Device: o.Device})
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	if err := lora.CheckModel(m); err != nil {
		return err
	}
	tr.m = m
	if tr.modelH, err = hashModel(o.Model); err != nil {
		return err
	}
	var ad *lora.Adapter
	if o.FromAdapter != "" {
		ad, err = lora.LoadAdapter(o.FromAdapter, m.Linears)
	} else {
		o.LoRA.Base = filepath.Base(filepath.Clean(o.Model))
		ad, err = lora.NewAdapter(m.Linears, o.LoRA, seed.Item(o.Seed, "lora-init"))
	}
	if err != nil {
		return err
	}
	if ad.Frozen > 0 {
		slog.Info("finetune: the target modules also match vision-encoder layers, which stay frozen (synth trains OPT and Q-Former layers)", "layers", ad.Frozen)
	}
	dr := lora.Dropouts{OPT: m.Cfg.Text.Dropout, QFormer: m.Cfg.QFormer.HiddenDropout}
	if o.BaseDropout >= 0 {
		dr = lora.Dropouts{OPT: float32(o.BaseDropout), QFormer: float32(o.BaseDropout)}
	}
	tr.md = lora.NewModel(m, ad, dr)
	tr.qTrain = tr.md.QFormerTrains()
	if o.Text.MaxLen == 0 {
		o.Text.MaxLen = min(defaultMaxLen, m.Cfg.Text.MaxPositions-m.Cfg.NumQueryTokens)
	}
	if o.Text.MaxLen+m.Cfg.NumQueryTokens > m.Cfg.Text.MaxPositions {
		return fmt.Errorf("finetune: --max-length %d plus %d query tokens exceeds the language model's %d positions", o.Text.MaxLen, m.Cfg.NumQueryTokens, m.Cfg.Text.MaxPositions)
	}
	eos := tok.EOS()
	if len(m.Cfg.Text.EOS) > 0 {
		eos = m.Cfg.Text.EOS[0] // what synth caption stops at, so captions learn to end
	}
	if tr.data, err = readCorpus(o.Data, o.Text, tok, eos, o.ValFraction, o.Seed); err != nil {
		return err
	}
	all := append(append([]example(nil), tr.data.train...), tr.data.val...)
	if err := hashImages(all, imagefile.Limits{}, nil); err != nil {
		return err
	}
	copy(tr.data.train, all[:len(tr.data.train)])
	copy(tr.data.val, all[len(tr.data.train):])
	micro := (len(tr.data.train) + o.Batch - 1) / o.Batch
	tr.perEp = (micro + o.GradAccum - 1) / o.GradAccum
	tr.total = o.MaxSteps
	if tr.total == 0 {
		tr.total = o.Epochs * tr.perEp
	}
	tr.prep = fmt.Sprintf("blip2-prefix/v1/%s/%d", strings.ToLower(dt.String()), m.Cfg.Vision.ImageSize)
	tr.fp = tr.fingerprint(ad, dt)
	tr.c, err = native.NewCtxOn(o.Device, o.Threads)
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	return nil
}

// fingerprint hashes everything the trained adapter depends on: a checkpoint of another
// fingerprint cannot be resumed. Speed settings (threads, device) are left out.
func (tr *trainer) fingerprint(ad *lora.Adapter, dt native.DType) string {
	o := tr.o
	h := sha256.New()
	var init string
	if o.FromAdapter != "" {
		init, _ = filehash.Tree(o.FromAdapter)
	}
	js, _ := json.Marshal(map[string]any{
		"model": tr.modelH, "dtype": dt.String(), "lora": ad.Config, "from_adapter": init,
		"text": o.Text, "optim": o.Optim, "val_fraction": o.ValFraction, "steps": tr.total,
		"batch": o.Batch, "grad_accum": o.GradAccum, "seed": o.Seed, "dropout": tr.md.Dropouts,
	})
	h.Write(js)
	for _, set := range [][]example{tr.data.train, tr.data.val} {
		for _, e := range set {
			fmt.Fprintf(h, "%s\x00%x\x00%v\x00%d\n", e.product, e.sha, e.ids, e.noLoss)
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// hashModel is the model's content hash (every file of a folder).
func hashModel(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("finetune: %w", err)
	}
	if st.IsDir() {
		return filehash.Tree(path)
	}
	return filehash.File(path)
}

func (tr *trainer) run(ctx context.Context) (*Summary, error) {
	o := tr.o
	ad := tr.md.Adapter
	start, err := tr.startState()
	if err != nil {
		return nil, err
	}
	if start < 0 {
		return &tr.sum, nil // already complete
	}
	slog.Info("finetune", "examples", len(tr.data.train), "val_examples", len(tr.data.val), "products", tr.data.products,
		"steps", tr.total, "steps_per_epoch", tr.perEp, "adapter", ad.Describe(), "base_dropout", fmt.Sprintf("%g/%g", tr.md.Dropouts.OPT, tr.md.Dropouts.QFormer),
		"device", tr.c.Device(), "threads", tr.c.Threads(), "resume_at", start)
	if tr.data.truncated > 0 {
		slog.Warn("finetune: captions cut at --max-length", "examples", tr.data.truncated, "max_length", o.Text.MaxLen)
	}
	if tr.data.skipped > 0 {
		slog.Warn("finetune: products without images or text skipped", "products", tr.data.skipped)
	}
	if tr.m.Cfg.Text.AttentionDropout > 0 || tr.m.Cfg.Text.ActivationDropout > 0 || (tr.qTrain && tr.m.Cfg.QFormer.AttnDropout > 0) {
		slog.Info("finetune: dropout on attention weights and after activations is not applied (only the hidden dropout)")
	}
	if !tr.qTrain {
		if err := tr.cachePrefixes(ctx); err != nil {
			return nil, err
		}
	} else {
		slog.Info("finetune: LoRA on the Q-Former or projection: image prefixes are recomputed every step (no prefix cache)")
	}
	if err := ad.Attach(tr.m.Device()); err != nil {
		return nil, err
	}
	defer ad.Detach()
	task := o.Progress.Start("finetune", "steps", tr.total)
	task.Add(start)
	defer task.End()
	began := time.Now()
	var stepTokens int64
	for s := start; s < tr.total; s++ {
		if cerr := ctx.Err(); cerr != nil || (o.Stop != nil && o.Stop()) {
			if err := tr.checkpoint(s); err != nil {
				return nil, err
			}
			if cerr != nil {
				return nil, fmt.Errorf("%w (%w)", ErrStopped, cerr)
			}
			return nil, ErrStopped
		}
		t0 := time.Now()
		loss, tokens, norm, err := tr.step(s)
		if err != nil {
			return nil, err
		}
		stepTokens += int64(tokens)
		dt := time.Since(t0).Seconds()
		line := LogLine{Step: s + 1, Epoch: tr.epochAt(s + 1), Loss: &loss, LR: o.Optim.Rate(s, tr.total), GradNorm: &norm,
			Tokens: tokens, TokensSec: float64(tokens) / dt}
		if err := tr.writeLog(line); err != nil {
			return nil, err
		}
		task.Add(1)
		task.Note(fmt.Sprintf("loss %.4f", loss))
		if o.OnStep != nil {
			o.OnStep(s + 1)
		}
		if len(tr.data.val) > 0 && tr.evalDue(s+1) {
			if err := tr.validate(s + 1); err != nil {
				return nil, err
			}
		}
		if o.SaveEvery > 0 && (s+1)%o.SaveEvery == 0 && s+1 < tr.total {
			if err := tr.checkpoint(s + 1); err != nil {
				return nil, err
			}
		}
	}
	return tr.finish(start, began, stepTokens)
}

// epochAt is the fraction of epochs done after n optimizer steps.
func (tr *trainer) epochAt(n int) float64 { return float64(n) / float64(tr.perEp) }

// evalDue: every EvalEvery steps, or at each epoch's end, and always at the last step.
func (tr *trainer) evalDue(n int) bool {
	if n == tr.total {
		return true
	}
	if tr.o.EvalEvery > 0 {
		return n%tr.o.EvalEvery == 0
	}
	return n%tr.perEp == 0
}

// defaultMaxLen is --max-length 0's token limit (less when the model has fewer
// positions).
const defaultMaxLen = 128

// Defaults are synth finetune's defaults: the widely used BLIP-2 PEFT captioning recipe
// (LoRA r 16, alpha 32, dropout 0.05 on OPT's q_proj and k_proj, lr 5e-4) under
// transformers Trainer's defaults (AdamW betas 0.9, 0.999, eps 1e-8, no weight decay,
// linear decay, gradient norm clipped to 1, 3 epochs).
func Defaults() Options {
	return Options{
		Text:        Text{Field: "text"},
		LoRA:        lora.LoRAConfig{R: 16, Alpha: 32, Dropout: 0.05, Targets: []string{"q_proj", "k_proj"}},
		Optim:       lora.Optim{LR: 5e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Schedule: "linear", GradClip: 1},
		ValFraction: 0.05, Epochs: 3, SaveEvery: 200, Batch: 4, GradAccum: 1, BaseDropout: -1,
	}
}
