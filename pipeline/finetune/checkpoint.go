package finetune

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"synth/internal/atomicfile"
	"synth/weights"
)

// stateKey is the safetensors metadata key of a checkpoint's position.
const stateKey = "synth.finetune.state"

// state is where a checkpoint stands.
type state struct {
	Fingerprint string `json:"fingerprint"`
	Step        int    `json:"step"`  // optimizer steps done
	Total       int    `json:"total"` // of the run
	Epoch       int    `json:"epoch"` // the data position: epoch and micro-batch of the next step
	Micro       int    `json:"micro"`
}

func (tr *trainer) path(name string) string { return filepath.Join(tr.o.Out, name) }

// checkpoint writes the adapter, AdamW's moments and the position after step optimizer
// steps, in one file written atomically: a kill -9 leaves the previous checkpoint or
// this one, never a mix. The dropout masks and the data order are functions of the seed
// and the step, so nothing else is needed to continue exactly.
func (tr *trainer) checkpoint(step int) error {
	st := state{Fingerprint: tr.fp, Step: step, Total: tr.total, Epoch: step / tr.perEp, Micro: step % tr.perEp * tr.o.GradAccum}
	js, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var ts []weights.Tensor
	for _, p := range tr.md.Adapter.Params {
		for _, t := range []struct {
			name string
			v    []float32
			rows int
		}{{"A", p.A, p.R}, {"B", p.B, p.Out}, {"exp_avg.A", p.MA, p.R}, {"exp_avg_sq.A", p.VA, p.R},
			{"exp_avg.B", p.MB, p.Out}, {"exp_avg_sq.B", p.VB, p.Out}} {
			ts = append(ts, weights.F32Tensor(p.Module+"."+t.name, []int{t.rows, len(t.v) / t.rows}, t.v))
		}
	}
	if err := weights.WriteSafetensors(tr.path(CheckpointFile), ts, map[string]string{stateKey: string(js)}); err != nil {
		return fmt.Errorf("finetune: checkpoint: %w", err)
	}
	return nil
}

// loadCheckpoint restores the adapter and the optimizer from OUT's checkpoint.
func (tr *trainer) loadCheckpoint() (state, error) {
	path := tr.path(CheckpointFile)
	var st state
	src, err := weights.Open(path)
	if err != nil {
		return st, fmt.Errorf("finetune: checkpoint: %w", err)
	}
	defer src.Close()
	raw, ok := src.MetaString(stateKey)
	if !ok {
		return st, fmt.Errorf("finetune: %s is not a synth finetune checkpoint (no %s)", path, stateKey)
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, fmt.Errorf("finetune: %s: %w", path, err)
	}
	if st.Fingerprint != tr.fp {
		return st, fmt.Errorf("finetune: %s was made by a run with other settings, model or data (fingerprint %s, this run %s): remove it to start over, or use another --out", path, st.Fingerprint, tr.fp)
	}
	if st.Step < 0 || st.Step > tr.total {
		return st, fmt.Errorf("finetune: %s: step %d outside the run's %d", path, st.Step, tr.total)
	}
	for _, p := range tr.md.Adapter.Params {
		for _, t := range []struct {
			name string
			dst  []float32
		}{{"A", p.A}, {"B", p.B}, {"exp_avg.A", p.MA}, {"exp_avg_sq.A", p.VA}, {"exp_avg.B", p.MB}, {"exp_avg_sq.B", p.VB}} {
			w, err := src.Tensor(p.Module + "." + t.name)
			if err != nil {
				return st, fmt.Errorf("finetune: %s: %w", path, err)
			}
			v, err := w.F32()
			if err != nil || len(v) != len(t.dst) {
				return st, fmt.Errorf("finetune: %s: tensor %s: %d values, want %d", path, w.Name, len(v), len(t.dst))
			}
			copy(t.dst, v)
		}
	}
	return st, nil
}

// startState decides where the run starts: 0 for a new run, the checkpoint's step with
// Resume, or -1 when OUT already holds this run finished (its summary is then in
// tr.sum). Output of another run is never silently reused or overwritten.
func (tr *trainer) startState() (int, error) {
	o := tr.o
	if err := CheckOut(o.Out, o.Resume); err != nil {
		return 0, err
	}
	prior := priorRun(o.Out)
	if o.Resume {
		if b, err := os.ReadFile(tr.path(SummaryFile)); err == nil {
			var s Summary
			if json.Unmarshal(b, &s) == nil && s.Fingerprint == tr.fp {
				if _, err := os.Stat(tr.path(WeightsFile)); err == nil {
					slog.Info("finetune: the run in --out is complete", "out", o.Out, "steps", s.Steps)
					tr.sum = s
					tr.sum.Reused = true
					return -1, nil
				}
			}
		}
	}
	start := 0
	if _, err := os.Stat(tr.path(CheckpointFile)); err == nil && o.Resume {
		st, err := tr.loadCheckpoint()
		if err != nil {
			return 0, err
		}
		start = st.Step
		tr.sum.ResumedAtStep = start
		slog.Info("finetune: resuming", "checkpoint", tr.path(CheckpointFile), "step", start, "of", tr.total)
	} else if o.Resume && len(prior) > 0 {
		slog.Warn("finetune: no checkpoint to resume from: starting over", "out", o.Out)
	}
	if err := tr.reopenLog(start); err != nil {
		return 0, err
	}
	return start, nil
}

// priorRun lists the files of a training run that out holds.
func priorRun(out string) []string {
	var prior []string
	for _, f := range []string{CheckpointFile, LogFile, WeightsFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err == nil {
			prior = append(prior, f)
		}
	}
	return prior
}

// CheckOut refuses an output folder that holds a training run, unless resuming: its
// output is never silently overwritten.
func CheckOut(out string, resume bool) error {
	if prior := priorRun(out); len(prior) > 0 && !resume {
		return fmt.Errorf("finetune: %s already holds a training run (%s): pass --resume to continue or keep it, or choose another --out", out, prior[0])
	}
	return nil
}

// reopenLog keeps the log lines of the first start steps (those a resumed run does not
// redo), replaying them into the run's totals, and opens the log for appending.
func (tr *trainer) reopenLog(start int) error {
	path := tr.path(LogFile)
	var kept bytes.Buffer
	if start > 0 {
		f, err := os.Open(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("finetune: %w", err)
		}
		if f != nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				var l LogLine
				if json.Unmarshal(sc.Bytes(), &l) != nil || l.Step > start {
					continue // a torn last line, or a step to redo
				}
				kept.Write(sc.Bytes())
				kept.WriteByte('\n')
				tr.record(l)
			}
			f.Close()
		}
	}
	if err := atomicfile.WriteFile(path, kept.Bytes()); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	tr.log = f
	return nil
}

// writeLog appends a line to train_log.jsonl and counts it in the run's totals.
func (tr *trainer) writeLog(l LogLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := tr.log.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("finetune: %s: %w", tr.path(LogFile), err)
	}
	tr.record(l)
	if l.ValLoss != nil {
		slog.Info("finetune: validation", "step", l.Step, "val_loss", fmt.Sprintf("%.4f", *l.ValLoss))
	}
	return nil
}

func (tr *trainer) record(l LogLine) {
	if l.Loss != nil {
		if len(tr.losses) == 0 {
			tr.sum.FirstLoss = *l.Loss
		}
		tr.losses = append(tr.losses, *l.Loss)
		tr.sum.FinalLoss = *l.Loss
		tr.sum.Tokens += int64(l.Tokens)
	}
	if l.ValLoss != nil {
		tr.vals = append(tr.vals, [2]float64{float64(l.Step), *l.ValLoss})
		v := *l.ValLoss
		tr.sum.FinalValLoss = &v
	}
}

// finish writes the final checkpoint, the adapter, the loss plot and the summary.
func (tr *trainer) finish(start int, began time.Time, tokens int64) (*Summary, error) {
	o := tr.o
	if err := tr.checkpoint(tr.total); err != nil {
		return nil, err
	}
	if err := tr.md.Adapter.Save(o.Out); err != nil {
		return nil, err
	}
	png, err := plotLosses(tr.losses, tr.vals, tr.perEp)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(tr.path(PlotFile), png); err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	s := &tr.sum
	s.Examples, s.ValExamples, s.Products, s.Truncated = len(tr.data.train), len(tr.data.val), tr.data.products, tr.data.truncated
	s.Steps, s.Epochs = tr.total, tr.epochAt(tr.total)
	s.Seconds = time.Since(began).Seconds()
	if s.Seconds > 0 && tr.total > start {
		s.TokensPerSec = float64(tokens) / s.Seconds
	}
	s.Adapter, s.Params, s.Fingerprint, s.Finished = o.Out, tr.md.Adapter.Describe(), tr.fp, time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(tr.path(SummaryFile), append(b, '\n')); err != nil {
		return nil, fmt.Errorf("finetune: %w", err)
	}
	return s, nil
}
