package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is synth.yaml (synth.example.yaml documents every key). Paths are relative to
// the file's folder. A step runs when its section is present.
type Config struct {
	Path, Dir string
	Output    string
	Threads   int
	// ModelsLock is a models.lock (synth models lock): every model the steps read must
	// be listed in it and match it before any work starts.
	ModelsLock string
	Data       struct{ Source, Unlabeled, Foreign string }
	Card       struct{ Title, License string }
	// Translate, when present, translates data.source (e.g. Korean to English); the
	// translation stands for the source set in the evaluation (the paper's step 0).
	Translate *TranslateParams
	// Finetune, when present, trains a LoRA adapter on data.source (its translation
	// when translate runs); caption then uses it unless caption.lora names another.
	Finetune *FinetuneParams
	Caption  *CaptionParams
	Rewrite  *RewriteParams
	Eval     *EvalParams

	// lines maps "section.key" to its line, for messages about values found later.
	lines map[string]int
}

// ConfigError is a problem with synth.yaml: one line naming the file, the line and the
// key. It is a usage error.
type ConfigError struct {
	Path string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

var (
	topKeys  = []string{"output", "threads", "models-lock", "data", "card", "translate", "finetune", "caption", "rewrite", "eval"}
	dataKeys = []string{"source", "unlabeled", "foreign"}
	cardKeys = []string{"title", "license"}
	// inputs and outputs that the pipeline sets for each step itself
	reserved = map[string][]string{"translate": {"in", "out", "shard"}, "finetune": {"data", "out", "resume"}, "caption": {"images", "out", "shard"}, "rewrite": {"in", "out", "shard"}, "eval": {"data", "out"}}
)

// ReadConfig reads and checks synth.yaml: every key known (a typo gets a suggestion),
// every value parsed for its type and range. It opens no model.
func ReadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	cfg := &Config{Path: path, Dir: filepath.Dir(abs), lines: map[string]int{}}
	cerr := func(line int, format string, args ...any) error {
		return &ConfigError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, cerr(0, "%v", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, cerr(0, "empty: output and at least one step (caption:, rewrite:, eval:) are needed")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, cerr(top.Line, "want a mapping of keys (output:, data:, caption:, ...)")
	}
	err = eachKey(top, topKeys, func(k, v *yaml.Node) error {
		cfg.lines[k.Value] = k.Line
		switch k.Value {
		case "output":
			return scalar(v, &cfg.Output, cerr)
		case "models-lock":
			if err := scalar(v, &cfg.ModelsLock, cerr); err != nil {
				return err
			}
			cfg.ModelsLock = cfg.resolve(cfg.ModelsLock)
		case "threads":
			var s string
			if err := scalar(v, &s, cerr); err != nil {
				return err
			}
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 {
				return cerr(v.Line, "threads: %q is not a count >= 0", s)
			}
			cfg.Threads = n
		case "data":
			return eachKey(v, dataKeys, func(k, v *yaml.Node) error {
				dst := map[string]*string{"source": &cfg.Data.Source, "unlabeled": &cfg.Data.Unlabeled, "foreign": &cfg.Data.Foreign}[k.Value]
				if err := scalar(v, dst, cerr); err != nil {
					return err
				}
				*dst = cfg.resolve(*dst)
				return nil
			}, "data.", cerr)
		case "card":
			return eachKey(v, cardKeys, func(k, v *yaml.Node) error {
				return scalar(v, map[string]*string{"title": &cfg.Card.Title, "license": &cfg.Card.License}[k.Value], cerr)
			}, "card.", cerr)
		case "translate":
			cfg.Translate = &TranslateParams{}
			return cfg.section("translate", v, cfg.Translate, cerr)
		case "finetune":
			cfg.Finetune = &FinetuneParams{}
			return cfg.section("finetune", v, cfg.Finetune, cerr)
		case "caption":
			cfg.Caption = &CaptionParams{}
			return cfg.section("caption", v, cfg.Caption, cerr)
		case "rewrite":
			cfg.Rewrite = &RewriteParams{}
			return cfg.section("rewrite", v, cfg.Rewrite, cerr)
		case "eval":
			cfg.Eval = &EvalParams{}
			return cfg.section("eval", v, cfg.Eval, cerr)
		}
		return nil
	}, "", cerr)
	if err != nil {
		return nil, err
	}
	if cfg.Output == "" {
		return nil, cerr(0, "output: the dataset folder is required")
	}
	cfg.Output = cfg.resolve(cfg.Output)
	if cfg.Translate == nil && cfg.Finetune == nil && cfg.Caption == nil && cfg.Rewrite == nil && cfg.Eval == nil {
		return nil, cerr(0, "no step configured (translate:, finetune:, caption:, rewrite:, eval:)")
	}
	for _, st := range []struct {
		name, input, key string
		on               bool
		params           interface{ Validate() error }
	}{
		{"translate", cfg.Data.Source, "data.source", cfg.Translate != nil, cfg.Translate},
		{"finetune", cfg.Data.Source, "data.source", cfg.Finetune != nil, cfg.Finetune},
		{"caption", cfg.Data.Unlabeled, "data.unlabeled", cfg.Caption != nil, cfg.Caption},
		{"rewrite", cfg.Data.Foreign, "data.foreign", cfg.Rewrite != nil, cfg.Rewrite},
		{"eval", cfg.Data.Source, "data.source", cfg.Eval != nil, cfg.Eval},
	} {
		if !st.on {
			continue
		}
		if st.input == "" {
			return nil, cerr(cfg.lines[st.name], "the %s step needs %s", st.name, st.key)
		}
		if err := st.params.Validate(); err != nil {
			if se, ok := AsSettingError(err); ok {
				line := cfg.lines[st.name+"."+se.Key]
				if line == 0 {
					line = cfg.lines[st.name]
				}
				return nil, cerr(line, "%s.%s %s", st.name, se.Key, se.Msg)
			}
			return nil, cerr(cfg.lines[st.name], "%s: %v", st.name, err)
		}
	}
	return cfg, nil
}

// section reads a step's settings: defaults first, then every key given, paths
// resolved against the config's folder.
func (cfg *Config) section(step string, n *yaml.Node, params any, cerr func(int, string, ...any) error) error {
	SetDefaults(params)
	if n.Kind == yaml.ScalarNode && n.Value == "" { // "eval:" alone: every default
		return nil
	}
	var names []string
	for _, s := range Settings(params) {
		names = append(names, s.Names()...)
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; slices.Contains(reserved[step], k.Value) {
				return cerr(k.Line, "%s.%s is set by the pipeline (from data: and output:)", step, k.Value)
			}
		}
	}
	return eachKey(n, names, func(k, v *yaml.Node) error {
		var value string
		if err := scalar(v, &value, cerr); err != nil {
			return err
		}
		s, _ := Lookup(params, k.Value)
		if s.Path && value != "" {
			value = cfg.resolve(value)
		}
		if err := Set(params, k.Value, value); err != nil {
			return cerr(v.Line, "%s.%s: %v", step, k.Value, err)
		}
		cfg.lines[step+"."+s.Name] = k.Line
		return nil
	}, step+".", cerr)
}

// eachKey calls fn for each key of a mapping node, rejecting unknown and repeated keys.
func eachKey(n *yaml.Node, known []string, fn func(k, v *yaml.Node) error, prefix string, cerr func(int, string, ...any) error) error {
	if n.Kind != yaml.MappingNode {
		return cerr(n.Line, "%s want a mapping of keys", strings.TrimSuffix(prefix, "."))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ok := false
		for _, name := range known {
			ok = ok || name == k.Value
		}
		if !ok {
			if s := Suggest(k.Value, known); s != "" {
				return cerr(k.Line, "unknown key %s%s; did you mean %s?", prefix, k.Value, s)
			}
			return cerr(k.Line, "unknown key %s%s", prefix, k.Value)
		}
		if seen[k.Value] {
			return cerr(k.Line, "%s%s given twice", prefix, k.Value)
		}
		seen[k.Value] = true
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func scalar(v *yaml.Node, dst *string, cerr func(int, string, ...any) error) error {
	if v.Kind != yaml.ScalarNode {
		return cerr(v.Line, "want a single value, not a list or mapping")
	}
	*dst = v.Value
	return nil
}

func (cfg *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return filepath.Join(cfg.Dir, p)
}

// Line is the line of a step's setting in the file (0 when not given there).
func (cfg *Config) Line(step, key string) int { return cfg.lines[step+"."+key] }
