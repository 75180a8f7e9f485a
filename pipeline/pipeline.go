package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"synth/dataset"
	"synth/eval"
	"synth/weights/modellock"
)

// Files and folders of the output folder (docs/dataset.md).
const (
	TranslatedFile = "translated.jsonl"
	CaptionedFile  = "captioned.jsonl"
	RewrittenFile  = "rewritten.jsonl"
	AdapterDir     = "adapter" // finetune's LoRA adapter
	EvalDir        = "eval"
	evalDataDir    = "eval/data"
)

// Plan is a pipeline run: the configured steps in the method's order, then the
// published dataset (imagefolder configurations, Parquet, card, viewer).
type Plan struct {
	Config *Config
	Out    string
	Steps  []Step

	pubs []Publication
	eval *Eval
}

// NewPlan lays out the steps of a config.
func NewPlan(cfg *Config) *Plan {
	p := &Plan{Config: cfg, Out: cfg.Output}
	if cfg.Data.Source != "" {
		p.pubs = append(p.pubs, Publication{Name: "source", Input: cfg.Data.Source})
	}
	if cfg.Translate != nil {
		p.Steps = append(p.Steps, &Translate{Params: *cfg.Translate, In: cfg.Data.Source, Out: filepath.Join(p.Out, TranslatedFile), Shard: dataset.All})
	}
	if cfg.Finetune != nil {
		data := cfg.Data.Source
		if cfg.Translate != nil {
			data = filepath.Join(p.Out, TranslatedFile)
		}
		p.Steps = append(p.Steps, &Finetune{Params: *cfg.Finetune, Data: data, Out: filepath.Join(p.Out, AdapterDir), Resume: true})
	}
	if cfg.Caption != nil {
		if cfg.Finetune != nil && cfg.Caption.LoRA == "" {
			cfg.Caption.LoRA = filepath.Join(p.Out, AdapterDir)
		}
		p.Steps = append(p.Steps, &Caption{Params: *cfg.Caption, Images: cfg.Data.Unlabeled, Out: filepath.Join(p.Out, CaptionedFile), Shard: dataset.All})
	}
	if cfg.Rewrite != nil {
		p.Steps = append(p.Steps, &Rewrite{Params: *cfg.Rewrite, In: cfg.Data.Foreign, Out: filepath.Join(p.Out, RewrittenFile), Shard: dataset.All})
	}
	for _, s := range p.Steps {
		if pub, ok := s.(Publisher); ok {
			p.pubs = append(p.pubs, pub.Publication())
		}
	}
	if cfg.Eval != nil {
		p.eval = &Eval{Params: *cfg.Eval, Out: filepath.Join(p.Out, EvalDir)}
		for _, pub := range p.pubs {
			// A translation stands for the source set: Long-CLIP reads English.
			if pub.Name == "source" && cfg.Translate != nil {
				continue
			}
			p.eval.Datasets = append(p.eval.Datasets, eval.Dataset{Name: pub.Name, Manifest: p.evalManifestPath(pub.Name)})
		}
		p.Steps = append(p.Steps, p.eval)
	}
	return p
}

func (p *Plan) evalManifestPath(name string) string {
	return filepath.Join(p.Out, filepath.FromSlash(evalDataDir), name+".jsonl")
}

// Check is the validation before work: every step opens and checks its models,
// adapters, manifests and settings, in order, each seeing what the earlier steps will
// write. The first problem is returned in one line that names the config file.
func (p *Plan) Check(env *Env) error {
	if st, err := os.Stat(p.Out); err == nil && st.IsDir() {
		if err := probeLock(p.Out); err != nil {
			return err
		}
	}
	if err := p.checkModels(env); err != nil {
		return err
	}
	for _, pub := range p.pubs {
		env.Will(p.evalManifestPath(pub.Name))
	}
	// Every data manifest is read before any step runs: a broken data.source must not
	// wait for the captions to fail.
	for _, pub := range p.pubs {
		if pub.Output == "" {
			if err := checkInput("data", pub.Name, pub.Input); err != nil {
				return fmt.Errorf("%s: %w", p.Config.Path, err)
			}
		}
	}
	for _, s := range p.Steps {
		if err := s.Check(env); err != nil {
			var stale *StaleError
			if errors.As(err, &stale) {
				return err
			}
			if se, ok := AsSettingError(err); ok {
				return &ConfigError{Path: p.Config.Path, Line: p.Config.Line(s.Name(), se.Key), Msg: fmt.Sprintf("%s.%s %s", s.Name(), se.Key, se.Msg)}
			}
			return fmt.Errorf("%s: %w", p.Config.Path, err)
		}
		if pr, ok := s.(Producer); ok {
			for _, f := range pr.Outputs() {
				env.Will(f)
			}
		}
	}
	return nil
}

// checkModels refuses to start when a models.lock is given and the models the steps
// read are not all listed in it or do not match it.
func (p *Plan) checkModels(env *Env) error {
	if p.Config.ModelsLock == "" {
		return nil
	}
	l, err := modellock.Read(p.Config.ModelsLock)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	var models []string
	for _, s := range p.Steps {
		if m, ok := s.(modelReader); ok {
			models = append(models, m.models()...)
		}
	}
	r, err := l.Verify(models...)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	env.log().Info("pipeline: models: " + r.String())
	return nil
}

// modelReader is a step that reads model files (given settings only), which a
// models.lock must list.
type modelReader interface {
	models() []string
}

// Describe is the plan in words, one line per step, for --dry-run.
func (p *Plan) Describe() []string {
	var lines []string
	for i, s := range p.Steps {
		var l string
		switch s := s.(type) {
		case *Caption:
			l = fmt.Sprintf("caption %s with %s (lora %s, %d new tokens, %d beams) -> %s", s.Images, s.Params.Model, none(s.Params.LoRA), s.Params.MaxNewTokens, s.Params.Beams, s.Out)
		case *Finetune:
			steps := fmt.Sprintf("%d epochs", s.Params.Epochs)
			if s.Params.MaxSteps > 0 {
				steps = fmt.Sprintf("%d steps", s.Params.MaxSteps)
			}
			l = fmt.Sprintf("finetune %s on %s (LoRA r %d on %s, %s) -> %s", s.Params.Model, s.Data, s.Params.LoRAR, s.Params.TargetModules, steps, s.Out)
		case *Translate:
			l = fmt.Sprintf("translate %s from %s to %s with %s (%s) -> %s", s.In, s.Params.From, s.Params.To, s.Params.Model, s.Params.Fields, s.Out)
		case *Rewrite:
			l = fmt.Sprintf("rewrite the keywords of %s with %s (%s, %d tokens) -> %s", s.In, s.Params.Model, s.Params.Lang, s.Params.MaxTokens, s.Out)
		case *Eval:
			var names []string
			for _, d := range s.Datasets {
				names = append(names, d.Name)
			}
			l = fmt.Sprintf("eval %v with %s (%d products x %d images), and a score for every record -> %s", names, s.Params.Model, s.Params.Products, s.Params.ImagesPerProduct, s.Out)
		default:
			l = s.Name()
		}
		lines = append(lines, fmt.Sprintf("%d. %s", i+1, l))
	}
	var names []string
	for _, pub := range p.pubs {
		names = append(names, pub.Name)
	}
	lines = append(lines, fmt.Sprintf("%d. publish %v into %s: imagefolder configurations, parquet/, README.md (card), index.html (viewer)", len(p.Steps)+1, names, p.Out))
	return lines
}

func none(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Result is what a run made.
type Result struct {
	Out, Card, View, Report string
	Statuses                []Status
	Rows                    map[string]int // rows per configuration
}

// Run checks the plan, runs the steps, and publishes the dataset.
func (p *Plan) Run(ctx context.Context, env *Env) (*Result, error) {
	if err := p.Check(env); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.Out, 0o755); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	// One pipeline per output folder: a second one would run every step twice.
	lock, err := dataset.LockOutput(p.Out)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	log := env.log()
	res := &Result{Out: p.Out, Rows: map[string]int{}}
	for _, s := range p.Steps {
		if s == Step(p.eval) {
			break // eval reads the published configurations
		}
		st, err := s.Run(ctx, env)
		if err != nil {
			return nil, err
		}
		res.Statuses = append(res.Statuses, st)
	}

	var sets []published
	for _, pub := range p.pubs {
		set, err := buildRows(pub)
		if err != nil {
			return nil, err
		}
		rows, missing, err := dataset.LinkImages(p.Out, pub.Name, set.rows, set.src)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			log.Warn("pipeline: rows left out of the published dataset: their image file is missing", "dataset", pub.Name, "rows", len(missing), "first", missing[0].Image)
			set = keepPublished(set, rows)
		}
		sets = append(sets, set)
	}

	var rep *eval.Report
	if p.eval != nil {
		for _, set := range sets {
			if _, err := evalManifest(p.Out, p.evalManifestPath(set.pub.Name), set); err != nil {
				return nil, err
			}
		}
		var at [][2]int
		p.eval.Pairs, at = pairs(p.Out, sets)
		st, err := p.eval.Run(ctx, env)
		if err != nil {
			return nil, err
		}
		res.Statuses = append(res.Statuses, st)
		rep = p.eval.Report
		setScores(sets, p.eval.Scores, at)
		res.Report = filepath.Join(p.eval.Out, eval.ReportMarkdown)
	}

	for _, set := range sets {
		if err := dataset.WriteConfig(p.Out, set.pub.Name, set.rows); err != nil {
			return nil, err
		}
	}
	card := &dataset.Card{Title: p.Config.Card.Title, License: p.Config.Card.License, Version: env.Version}
	if card.Title == "" {
		card.Title = "Synthetic fashion image-text dataset"
	}
	if card.License == "" {
		card.License = "other"
	}
	for _, set := range sets {
		card.Configs = append(card.Configs, dataset.CardConfig{Name: set.pub.Name, Rows: set.rows})
		res.Rows[set.pub.Name] = len(set.rows)
	}
	if rep != nil {
		card.Eval = cardEval(rep)
	}
	if res.Card, err = dataset.WriteCard(p.Out, card); err != nil {
		return nil, err
	}
	if res.View, _, err = dataset.WriteView(p.Out, card.Title); err != nil {
		return nil, err
	}
	if err := env.Hashes.Save(); err != nil {
		return nil, err
	}
	return res, nil
}

// keepPublished narrows a set to the rows PublishConfig kept (same order).
func keepPublished(set published, rows []dataset.Row) published {
	out := published{pub: set.pub}
	k := 0
	for i, r := range set.rows {
		if k < len(rows) && rows[k].ID == r.ID && rows[k].Image == r.Image {
			out.rows = append(out.rows, r)
			out.src = append(out.src, set.src[i])
			k++
		}
	}
	return out
}

func cardEval(rep *eval.Report) *dataset.CardEval {
	ce := &dataset.CardEval{
		Report: EvalDir + "/" + eval.ReportMarkdown, Plot: EvalDir + "/" + eval.SimilarityPNG,
		Model: rep.Model.Name, Products: rep.Params.Products,
	}
	for _, d := range rep.Datasets {
		ce.Rows = append(ce.Rows, dataset.CardEvalRow{Name: d.Name, SameMean: d.Same.Mean, SameVar: d.Same.Var,
			DiffMean: d.Diff.Mean, DiffVar: d.Diff.Var, AUC: d.AUC})
	}
	return ce
}
