package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"synth/dataset"
	"synth/weights/modellock"
)

func pipelineCommand() *cli.Command {
	return &cli.Command{
		Name:  "pipeline",
		Usage: "run the paper's method end to end from one config file: [translate ->] caption -> rewrite -> eval",
		Description: "Reads a YAML config (see synth.example.yaml: every key is documented there) and runs\n" +
			"   0. synth translate the source manifest (optional)   -> OUTPUT/translated.jsonl,\n" +
			"                      which then stands for the source set\n" +
			"   1. synth caption  on the unlabeled product images   -> OUTPUT/captioned.jsonl\n" +
			"   2. synth rewrite  on the keyword-list products      -> OUTPUT/rewritten.jsonl\n" +
			"   3. synth eval     source vs captioned vs rewritten  -> OUTPUT/eval/\n" +
			"then writes Parquet copies of both outputs and a dataset card (OUTPUT/README.md).\n" +
			"Each step is resumable and skipped when its output is already complete, so running\n" +
			"the same config again recomputes nothing, and a killed run continues where it stopped.\n" +
			"The keys of the translate, caption, rewrite and eval sections are the flags of those commands.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Required: true, Usage: "pipeline config `FILE` (YAML)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the commands the pipeline would run, run nothing"},
			&cli.StringFlag{Name: "models-lock", Usage: "verify the models against this `FILE` (synth models lock) before any work; overrides the config's models-lock:"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("pipeline takes no arguments, got %q", c.Args().Slice())
			}
			cfg, err := readPipelineConfig(c.String("config"))
			if err != nil {
				return err
			}
			if c.IsSet("models-lock") {
				cfg.ModelsLock = c.String("models-lock") // from the command line: relative to the working directory
				if cfg.ModelsLock != "" && !filepath.IsAbs(cfg.ModelsLock) {
					if cfg.ModelsLock, err = filepath.Abs(cfg.ModelsLock); err != nil {
						return fmt.Errorf("pipeline: %w", err)
					}
				}
			}
			p := &pipeline{cfg: cfg, stdout: c.App.Writer, stderr: c.App.ErrWriter, dryRun: c.Bool("dry-run"), threads: threads(c)}
			return p.run()
		},
	}
}

// pipelineConfig is synth.yaml. Paths are relative to the file's folder.
type pipelineConfig struct {
	Output     string `yaml:"output"`
	Threads    int    `yaml:"threads"`
	ModelsLock string `yaml:"models-lock"`
	Data       struct {
		Source    string `yaml:"source"`
		Unlabeled string `yaml:"unlabeled"`
		Foreign   string `yaml:"foreign"`
	} `yaml:"data"`
	// Translate, when present, translates data.source (e.g. Korean) and the translation
	// stands for the source set from then on (the paper's step 0).
	Translate stepFlags `yaml:"translate"`
	Caption   stepFlags `yaml:"caption"`
	Rewrite   stepFlags `yaml:"rewrite"`
	Eval      stepFlags `yaml:"eval"`

	path, dir string
	raw       []byte
}

// stepFlags are a step's command-line flags by name (without "--"), in file order.
type stepFlags struct {
	keys   []string
	values map[string]string
	line   map[string]int
}

func (s *stepFlags) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of flag: value", n.Line)
	}
	s.values, s.line = map[string]string{}, map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: %s: want a single value", v.Line, k.Value)
		}
		if _, dup := s.values[k.Value]; dup {
			return fmt.Errorf("line %d: %s given twice", k.Line, k.Value)
		}
		s.keys = append(s.keys, k.Value)
		s.values[k.Value] = v.Value
		s.line[k.Value] = k.Line
	}
	return nil
}

func (s stepFlags) has(k string) bool { return s.values[k] != "" }

// pathFlags are flags whose values are file paths, resolved against the config's folder.
var pathFlags = map[string]bool{"model": true, "lora": true, "tokenizer": true, "examples": true, "examples-from": true, "glossary": true, "system-file": true, "vocab": true, "cache": true}

// modelFlags are the path flags that name model files, which a models.lock must list.
var modelFlags = []string{"model", "lora", "tokenizer", "vocab"}

// reservedFlags are set by the pipeline itself for each step.
var reservedFlags = map[string][]string{
	"translate": {"in", "out", "shard"},
	"caption":   {"images", "out", "shard"},
	"rewrite":   {"in", "out", "shard"},
	"eval":      {"data", "out"},
}

func readPipelineConfig(path string) (*pipelineConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	cfg := &pipelineConfig{path: path, raw: raw}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, usageErrorf("pipeline: %s: %v", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	cfg.dir = filepath.Dir(abs)
	if cfg.Output == "" {
		return nil, usageErrorf("pipeline: %s: output: the dataset folder is required", path)
	}
	if cfg.Threads < 0 {
		return nil, usageErrorf("pipeline: %s: threads must be >= 0", path)
	}
	steps := 0
	for _, st := range []struct {
		name  string
		flags stepFlags
		input string
	}{
		{"translate", cfg.Translate, cfg.Data.Source},
		{"caption", cfg.Caption, cfg.Data.Unlabeled},
		{"rewrite", cfg.Rewrite, cfg.Data.Foreign},
		{"eval", cfg.Eval, cfg.Data.Source},
	} {
		if st.flags.values == nil {
			continue
		}
		steps++
		for _, k := range reservedFlags[st.name] {
			if _, ok := st.flags.values[k]; ok {
				return nil, usageErrorf("pipeline: %s:%d: %s.%s is set by the pipeline (from data: and output:)", path, st.flags.line[k], st.name, k)
			}
		}
		if err := checkStepFlags(st.name, st.flags); err != nil {
			return nil, usageErrorf("pipeline: %s: %v", path, err)
		}
		if !st.flags.has("model") {
			return nil, usageErrorf("pipeline: %s: %s.model is required", path, st.name)
		}
		if st.input == "" {
			need := map[string]string{"translate": "data.source", "caption": "data.unlabeled", "rewrite": "data.foreign", "eval": "data.source"}[st.name]
			return nil, usageErrorf("pipeline: %s: the %s step needs %s", path, st.name, need)
		}
	}
	if steps == 0 {
		return nil, usageErrorf("pipeline: %s: no step configured (translate:, caption:, rewrite:, eval:)", path)
	}
	return cfg, nil
}

// checkStepFlags rejects keys that are not flags of the step's command, with the line.
func checkStepFlags(step string, f stepFlags) error {
	var cmd *cli.Command
	for _, c := range commands() {
		if c.Name == step {
			cmd = c
		}
	}
	if cmd == nil {
		return fmt.Errorf("%s: this build of synth has no %s command", step, step)
	}
	known := map[string]bool{}
	for _, fl := range cmd.Flags {
		for _, n := range fl.Names() {
			known[n] = true
		}
	}
	for _, k := range f.keys {
		if !known[k] {
			var names []string
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return fmt.Errorf("line %d: %s.%s is not a flag of synth %s (flags: %s)", f.line[k], step, k, step, strings.Join(names, ", "))
		}
	}
	return nil
}

func (cfg *pipelineConfig) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(cfg.dir, p)
}

// args turns a step's flags into command-line arguments, resolving paths.
func (cfg *pipelineConfig) args(f stepFlags) []string {
	var out []string
	for _, k := range f.keys {
		v := f.values[k]
		if pathFlags[k] && v != "" {
			v = cfg.resolve(v)
		}
		out = append(out, "--"+k+"="+v)
	}
	return out
}

type pipeline struct {
	cfg            *pipelineConfig
	stdout, stderr io.Writer
	dryRun         bool
	threads        int
	out            string
	hashes         *hashCache
}

// Files the pipeline writes in the output folder.
const (
	translatedFile = "translated.jsonl"
	captionedFile  = "captioned.jsonl"
	rewrittenFile  = "rewritten.jsonl"
	evalDir        = "eval"
	evalDataDir    = "eval-data"
	evalStamp      = ".inputs.sha256"
)

func (p *pipeline) run() error {
	cfg := p.cfg
	if err := p.checkModels(); err != nil {
		return err
	}
	p.out = cfg.resolve(cfg.Output)
	if err := os.MkdirAll(p.out, 0o755); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if !p.dryRun {
		// One pipeline per output folder: a second one would run every step twice.
		lock, err := dataset.LockOutput(p.out)
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	if cfg.Threads > 0 {
		p.threads = cfg.Threads
	}
	// Every manifest the config names is read before any step runs: a missing or broken
	// data.source used to fail at eval, after captioning and rewriting.
	for _, m := range []string{cfg.Data.Source, cfg.Data.Unlabeled, cfg.Data.Foreign} {
		if m != "" {
			if _, err := dataset.ReadManifest(cfg.resolve(m)); err != nil {
				return fmt.Errorf("pipeline: %s: %w", cfg.path, err)
			}
		}
	}
	p.hashes = loadHashCache(filepath.Join(p.out, ".model-hashes.json"))
	start := time.Now()
	var sum runSummary
	if cfg.Translate.values != nil {
		st, err := p.step("translate", cfg.Data.Source, "in", translatedFile, cfg.Translate, false)
		if err != nil {
			return err
		}
		sum.translate = st
	}
	if cfg.Caption.values != nil {
		st, err := p.step("caption", cfg.Data.Unlabeled, "images", captionedFile, cfg.Caption, true)
		if err != nil {
			return err
		}
		sum.caption = st
	}
	if cfg.Rewrite.values != nil {
		st, err := p.step("rewrite", cfg.Data.Foreign, "in", rewrittenFile, cfg.Rewrite, false)
		if err != nil {
			return err
		}
		sum.rewrite = st
	}
	if p.dryRun {
		return nil
	}
	sets, err := p.evalManifests()
	if err != nil {
		return err
	}
	if cfg.Eval.values != nil {
		if err := p.eval(sets); err != nil {
			return err
		}
	}
	if err := p.parquet(); err != nil {
		return err
	}
	card, err := p.writeCard(sum, sets)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.stderr, "pipeline: done in %s\n", time.Since(start).Round(time.Second))
	fmt.Fprintf(p.stdout, "dataset: %s\ncard:    %s\n", p.out, card)
	if cfg.Eval.values != nil {
		fmt.Fprintf(p.stdout, "report:  %s\n", filepath.Join(p.out, evalDir, "report.md"))
	}
	return nil
}

// checkModels refuses to start when a models.lock is given and the models the steps use
// are not all listed in it or do not match it.
func (p *pipeline) checkModels() error {
	cfg := p.cfg
	if cfg.ModelsLock == "" {
		return nil
	}
	l, err := modellock.Read(cfg.resolve(cfg.ModelsLock))
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	var models []string
	for _, f := range []stepFlags{cfg.Translate, cfg.Caption, cfg.Rewrite, cfg.Eval} {
		for _, k := range modelFlags {
			if f.has(k) {
				models = append(models, cfg.resolve(f.values[k]))
			}
		}
	}
	r, err := l.Verify(models...)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	fmt.Fprintf(p.stderr, "pipeline: models: %s\n", r)
	return nil
}

// stepStatus is what a step left in its output: records and failures.
type stepStatus struct {
	ran             bool
	records, errors int
	expected        int
}

type runSummary struct{ translate, caption, rewrite stepStatus }

// step runs synth translate, caption or rewrite unless its output already holds a record for
// every item of the input manifest.
func (p *pipeline) step(name, manifest, inFlag, outFile string, flags stepFlags, perImage bool) (stepStatus, error) {
	in := p.cfg.resolve(manifest)
	out := filepath.Join(p.out, outFile)
	m, err := dataset.ReadManifest(in)
	if err != nil {
		return stepStatus{}, err
	}
	st, err := outputStatus(out, m, perImage)
	if err != nil {
		return st, err
	}
	if st.records == st.expected && st.expected > 0 {
		fmt.Fprintf(p.stderr, "pipeline: %s: complete (%d records in %s), skipped\n", name, st.records, out)
		return st, nil
	}
	args := []string{"synth", fmt.Sprintf("--threads=%d", p.threads), name, "--" + inFlag + "=" + in, "--out=" + out}
	args = append(args, p.cfg.args(flags)...)
	fmt.Fprintf(p.stderr, "pipeline: %s: %d of %d done, running: %s\n", name, st.records, st.expected, strings.Join(args, " "))
	if p.dryRun {
		return st, nil
	}
	if err := p.sub(args); err != nil {
		return st, fmt.Errorf("pipeline: %s: %w", name, err)
	}
	st, err = outputStatus(out, m, perImage)
	st.ran = true
	return st, err
}

// sub runs synth in-process with args, as if from the command line.
func (p *pipeline) sub(args []string) error {
	app := newApp(p.stdout, p.stderr)
	return app.Run(args)
}

// outputStatus counts the records of out that belong to the manifest's items.
func outputStatus(out string, m *dataset.Manifest, perImage bool) (stepStatus, error) {
	want := map[string]bool{}
	for _, pr := range m.Products {
		if !perImage {
			want[pr.ID] = true
			continue
		}
		for _, img := range pr.Images {
			want[dataset.JoinKey(pr.ID, img)] = true
		}
	}
	st := stepStatus{expected: len(want)}
	if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	key := dataset.KeyFields("id")
	if perImage {
		key = dataset.KeyFields("id", "image")
	}
	seen := map[string]bool{}
	err := dataset.ReadRecords(out, func(line int, raw json.RawMessage) error {
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("pipeline: %s:%d: %v", out, line, err)
		}
		k, err := key(rec)
		if err != nil || !want[k] || seen[k] {
			return nil
		}
		seen[k] = true
		st.records++
		if _, failed := rec["error"]; failed {
			st.errors++
		}
		return nil
	})
	return st, err
}
