package llm

import (
	"context"
	"fmt"
	"time"

	"synth/dataset"
	"synth/llm/llamacpp"
)

// Task is the work behind one output record: one generation per part (a rewrite has
// one part, a translation one per field of the product), recorded together once every
// part is done.
type Task struct {
	ID    string
	Parts []Part
	// Err is a failure found while building the prompts: the task is recorded as failed
	// without generating.
	Err  error
	Data any // the caller's, e.g. the product
}

// Part is one generation of a task.
type Part struct {
	Name   string // "" for a task of one part; the field of a translation
	Suffix []llamacpp.Token
}

// PartResult is the attempt kept for a part.
type PartResult struct {
	Name string
	Result
	Attempts int     // 2 when the part was retried, whichever attempt was kept
	Score    float64 // Recorder.Score of the kept text, when Scored
	Scored   bool
	// Low: the score is still below JobOptions.MinScore after the retry.
	Low bool
}

// Recorder is what a batch job does with its results: a rewrite scores keyword
// coverage and writes rewrite records, a translation scores faithfulness and writes
// translated manifest lines.
type Recorder interface {
	// Score rates a part's generated text (higher is better); ok is false when the score
	// is undefined, which never triggers a retry.
	Score(t *Task, part int, text string) (score float64, ok bool)
	// Record builds the output record of a task whose parts all generated, or returns a
	// per-item error (e.g. an answer that cannot be parsed).
	Record(t *Task, parts []PartResult) (any, error)
	// Failed builds the record of a failed task; parts holds what each part produced
	// (a zero PartResult for parts that never ran).
	Failed(t *Task, parts []PartResult, err error) any
}

// JobOptions configure RunJob.
type JobOptions struct {
	Recorder Recorder
	// Seed is the run's seed; each part's sampler seed is PartSeed(Seed, id, part, attempt).
	Seed uint64
	// MinScore retries a part once with another seed when its score is below it, then
	// keeps the better attempt and marks it Low if still below; 0 is off. There is no
	// retry at temperature 0, where another seed gives the same text.
	MinScore float64
	// FailFast stops the run at the first failed task (after recording it).
	FailFast bool
	// Progress, when set, is called after every decode step (from RunJob's goroutine).
	Progress func(JobStats)
}

// JobStats count a job's work so far.
type JobStats struct {
	Total        int // tasks the caller announced
	Done, Failed int // tasks recorded, of which failed
	Retried, Low int // parts retried for a low score; parts still below after it
	ScoreSum     float64
	Scored       int            // parts of recorded tasks with a defined score
	Finish       map[string]int // finish reasons of the kept attempts
	FirstError   string         // "<id>: <error>" of the first failed task
	Gen          Stats          // the Generator's counts
	Elapsed      time.Duration
	// RetriesDisabled: MinScore is set but the sampler is greedy, so nothing is retried.
	RetriesDisabled bool
}

// PartSeed is the sampler seed of a part: ItemSeed of the task id for a task of one
// part (so a rewrite's seeds are the same as before translations existed), of
// "id\x00part" otherwise, so that each field of a product draws differently.
func PartSeed(seed uint64, id, part string, attempt int) uint32 {
	if part == "" {
		return ItemSeed(seed, id, attempt)
	}
	return ItemSeed(seed, id+"\x00"+part, attempt)
}

// Prepare builds tasks ahead of the generator in a goroutine, in order, so that a free
// slot does not wait for the tokenizer. It stops early when ctx is done.
func Prepare(ctx context.Context, n int, build func(i int) *Task) <-chan *Task {
	ch := make(chan *Task, 64)
	go func() {
		defer close(ch)
		for i := 0; i < n; i++ {
			select {
			case ch <- build(i):
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// RunJob runs tasks through gen and writes one record per task to out, as each task
// finishes: the Generator's slots, shared prefix and continuous batching serve every
// part of every task; a part whose score is below MinScore runs once more; a task whose
// prompt or generation failed is recorded as failed and the run goes on (unless
// FailFast). total is the number of tasks the channel will deliver (for progress). The
// returned stats are complete even when the error is not nil (e.g. ctx cancelled: the
// records written so far stay, and a rerun resumes after them).
func RunJob(ctx context.Context, gen *Generator, out *dataset.Output, tasks <-chan *Task, total int, opt JobOptions) (JobStats, error) {
	j := &job{
		gen: gen, out: out, tasks: tasks, opt: opt, start: time.Now(),
		retry: opt.MinScore > 0 && gen.opt.Sampling.Temperature > 0,
		stats: JobStats{Total: total, Finish: map[string]int{}},
	}
	j.stats.RetriesDisabled = opt.MinScore > 0 && !j.retry
	prev := gen.opt.OnStep
	gen.opt.OnStep = func(st Stats) {
		if prev != nil {
			prev(st)
		}
		if opt.Progress != nil {
			opt.Progress(j.snapshot(st))
		}
	}
	defer func() { gen.opt.OnStep = prev }()
	err := gen.Run(ctx, j.next, j.emit)
	if err == nil {
		err = j.fatal
	}
	return j.snapshot(gen.Stats()), err
}

type job struct {
	gen   *Generator
	out   *dataset.Output
	tasks <-chan *Task
	opt   JobOptions
	retry bool
	start time.Time
	stats JobStats

	retries, parts []Request // runs before new tasks: retries first, then the current task's parts
	fatal          error     // what stopped next() from feeding the generator
}

// running is a task in flight.
type running struct {
	t       *Task
	results []PartResult
	pending int
	err     error // the first part that failed
}

// attempt is the Request's Tag: which part of which task, and the first attempt when
// this is its retry.
type attempt struct {
	r          *running
	part, n    int
	first      *Result
	firstScore float64
}

func (j *job) snapshot(st Stats) JobStats {
	s := j.stats
	s.Gen = st
	s.Elapsed = time.Since(j.start)
	return s
}

func (j *job) request(r *running, part, n int) Request {
	p := r.t.Parts[part]
	return Request{ID: r.t.ID, Suffix: p.Suffix, Seed: PartSeed(j.opt.Seed, r.t.ID, p.Name, n), Tag: &attempt{r: r, part: part, n: n}}
}

// next feeds the generator: retries first, then the parts of the task being started,
// then new tasks. A task that fails before generating is recorded here.
func (j *job) next() (Request, bool) {
	for _, q := range []*[]Request{&j.retries, &j.parts} {
		if len(*q) > 0 {
			req := (*q)[0]
			*q = (*q)[1:]
			return req, true
		}
	}
	for t := range j.tasks {
		r := &running{t: t, results: make([]PartResult, len(t.Parts)), pending: len(t.Parts)}
		if t.Err != nil || len(t.Parts) == 0 {
			if err := j.finish(r); err != nil {
				j.fatal = err
				return Request{}, false
			}
			continue
		}
		for i := range t.Parts {
			j.parts = append(j.parts, j.request(r, i, 0))
		}
		req := j.parts[0]
		j.parts = j.parts[1:]
		return req, true
	}
	return Request{}, false
}

func (j *job) emit(res Result) error {
	a := res.Req.Tag.(*attempt)
	r := a.r
	name := r.t.Parts[a.part].Name
	if res.Err != nil {
		r.results[a.part] = PartResult{Name: name, Result: res, Attempts: a.n + 1}
		if r.err == nil {
			r.err = res.Err
			if name != "" {
				r.err = fmt.Errorf("%s: %w", name, res.Err)
			}
		}
		return j.partDone(r)
	}
	score, ok := j.opt.Recorder.Score(r.t, a.part, res.Text)
	if j.retry && ok && score < j.opt.MinScore && a.n == 0 && r.err == nil {
		j.stats.Retried++
		first := res
		req := j.request(r, a.part, 1)
		req.Tag.(*attempt).first, req.Tag.(*attempt).firstScore = &first, score
		j.retries = append(j.retries, req)
		return nil
	}
	kept := PartResult{Name: name, Result: res, Score: score, Scored: ok, Attempts: a.n + 1}
	if a.first != nil && a.firstScore >= score {
		// A tie keeps the first attempt, which ran with the plain seed.
		kept.Result, kept.Score = *a.first, a.firstScore
	}
	kept.Result.Req.Tag = nil
	kept.Low = j.opt.MinScore > 0 && ok && kept.Score < j.opt.MinScore
	r.results[a.part] = kept
	return j.partDone(r)
}

func (j *job) partDone(r *running) error {
	if r.pending--; r.pending > 0 {
		return nil
	}
	return j.finish(r)
}

// finish records a task whose parts are all done.
func (j *job) finish(r *running) error {
	err := r.t.Err
	if err == nil {
		err = r.err
	}
	var rec any
	if err == nil {
		rec, err = j.opt.Recorder.Record(r.t, r.results)
	}
	j.stats.Done++
	if err != nil {
		rec = j.opt.Recorder.Failed(r.t, r.results, err)
		j.stats.Failed++
		if j.stats.FirstError == "" {
			j.stats.FirstError = fmt.Sprintf("%s: %v", r.t.ID, err)
		}
	} else {
		for _, p := range r.results {
			j.stats.Finish[p.Finish]++
			if p.Scored {
				j.stats.ScoreSum += p.Score
				j.stats.Scored++
			}
			if p.Low {
				j.stats.Low++
			}
		}
	}
	if werr := j.out.Write(r.t.ID, rec); werr != nil {
		return werr
	}
	if err != nil && j.opt.FailFast {
		return fmt.Errorf("product %s: %w (fail-fast)", r.t.ID, err)
	}
	return nil
}
