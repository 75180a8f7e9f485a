package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"synth/dataset"
	"synth/internal/progress"
)

// Step is one step of the method as a typed value: its settings, its inputs and its
// output, and the library calls that make the output. A Plan runs its steps in order;
// the commands run one step alone. The order of the method is
//
//	translate -> finetune -> caption -> rewrite -> eval (+ scores) -> publish -> view
//
// A step whose output a later step reads (finetune's adapter, which caption then uses
// as its lora; translate's manifest) is a Producer: the plan records its outputs with
// Env.Will, so the later step's Check accepts the path before it exists and takes its
// fingerprint when it runs. A step whose output is a configuration of the published
// dataset is a Publisher.
type Step interface {
	// Name is the step's name, as in synth.yaml and messages ("caption").
	Name() string
	// Check opens and checks every model, adapter, manifest and setting the step will
	// use, and whether its output was made with other settings, without doing the work:
	// validation before work. Errors are one line naming the setting and the file.
	Check(env *Env) error
	// Run does the work, or finds it done, and says what the output holds.
	Run(ctx context.Context, env *Env) (Status, error)
}

// Producer is a step whose outputs later steps of a plan read: Plan.Check records them
// with Env.Will before the later steps' checks.
type Producer interface {
	Outputs() []string
}

// Status is what a step's output holds after Run.
type Status struct {
	Step   string
	Output string
	// Items is the number of items the step's input asks for; Records how many of them
	// the output holds, Failed how many of those are errors.
	Items, Records, Failed int
	// Done and DoneFailed are the items this run handled, and how many of them failed.
	Done, DoneFailed int
	// Ran is false when the output was already complete (nothing recomputed).
	Ran bool
}

// Env is what every step shares.
type Env struct {
	// Threads is the compute worker count (0: the physical cores available).
	Threads int
	// Version is synth's version, part of every fingerprint.
	Version string
	// Force recomputes outputs made with other settings instead of stopping.
	Force bool
	// Hashes remembers model file hashes (may be nil).
	Hashes *Hashes
	// Progress reports long work (may be nil: nothing shown).
	Progress *progress.Reporter
	// Log receives the steps' messages (default slog.Default()).
	Log *slog.Logger

	will map[string]bool
}

func (e *Env) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// Will records that an earlier step of the plan writes path.
func (e *Env) Will(path string) {
	if e.will == nil {
		e.will = map[string]bool{}
	}
	e.will[filepath.Clean(path)] = true
}

// Pending reports whether path is written by an earlier step of the plan.
func (e *Env) Pending(path string) bool { return e.will[filepath.Clean(path)] }

// hash is the sha256 of a model file or folder for a fingerprint, named in errors by
// its setting.
func (e *Env) hash(step, key, path string) (string, error) {
	sum, err := e.Hashes.Sum(path)
	if err != nil {
		return "", fmt.Errorf("%s: %s %s: %w", step, key, path, unwrapPath(err))
	}
	return sum, nil
}

// hashes is the sha256 of every model file of a step by role, for its fingerprint;
// files are role, path pairs, an empty path (a setting not given) left out.
func (e *Env) hashes(step string, files ...[2]string) (map[string]string, error) {
	models := map[string]string{}
	for _, f := range files {
		if f[1] == "" {
			continue
		}
		sum, err := e.hash(step, f[0], f[1])
		if err != nil {
			return nil, err
		}
		models[f[0]] = sum
	}
	return models, nil
}

// openOutput opens a step's JSONL output for this run: records made with another
// fingerprint stop the step (a StaleError saying what changed), or with Force are
// dropped to be made again.
func (e *Env) openOutput(step, path string, key func(map[string]json.RawMessage) (string, error), prov Provenance, params any, retryErrors bool) (*dataset.Output, error) {
	drop, stale, err := staleRecords(step, path, prov, params, e.Force)
	if err != nil {
		return nil, err
	}
	if stale > 0 {
		e.log().Info(step+": recomputing the records made differently (--force)", "out", path, "records", stale)
	}
	return dataset.OpenOutput(path, dataset.OutputOptions{Key: key, RetryErrors: retryErrors, Drop: drop})
}

// probeLock fails when another run holds an output's lock (naming its pid), so that
// the check refuses a second writer before any model loads. The step takes the lock
// itself when it opens the output.
func probeLock(path string) error {
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil // no folder yet: nobody holds a lock in it
	}
	l, err := dataset.LockOutput(path)
	if err != nil {
		return err
	}
	return l.Release()
}

// exists checks that a setting names an existing file (or folder, when dir), in one
// line naming the setting.
func exists(step, key, path string, dir bool) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %s %s: %w", step, key, path, unwrapPath(err))
	case dir && !st.IsDir():
		return fmt.Errorf("%s: %s %s: not a folder", step, key, path)
	}
	return nil
}

// unwrapPath drops an *os.PathError's repetition of the path: "no such file or
// directory" reads as "not found".
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		if os.IsNotExist(pe.Err) {
			return fmt.Errorf("not found")
		}
		return pe.Err
	}
	return err
}

// nonEmpty keeps the paths that are set.
func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
