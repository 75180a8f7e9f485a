package llm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"synth/internal/seed"
	"synth/llm/llamacpp"
)

// Options configure a Generator.
type Options struct {
	// Parallel is the number of slots: sequences decoded together, one llama_decode per
	// step for all of them.
	Parallel int
	// MaxTokens bounds each generation (a Request may ask for fewer).
	MaxTokens int
	// CtxPerSeq is the most positions one product may use: shared prefix + its own
	// prompt + generated tokens. A product whose prompt leaves no room fails alone.
	CtxPerSeq int
	// NBatch is the most tokens per llama_decode (prompt chunks plus one token per
	// generating slot); 0: 512. It must be at least Parallel.
	NBatch int
	// Threads for llama.cpp (0: its default).
	Threads int
	// Sampling is the sampler chain of every product; its Seed is replaced by each
	// Request's.
	Sampling llamacpp.SamplerParams
	// OnStep, when set, is called after every decode step with the counts so far (from
	// Run's goroutine), e.g. to report progress between finished products.
	OnStep func(Stats)
}

// Finish reasons of a Result.
const (
	FinishStop    = "stop"    // the model ended its turn (an end-of-generation token)
	FinishLength  = "length"  // MaxTokens reached
	FinishContext = "context" // CtxPerSeq reached before MaxTokens
)

// Request is one product's generation.
type Request struct {
	ID        string
	Suffix    []llamacpp.Token // prompt tokens after the shared prefix
	Seed      uint32           // sampler seed (see ItemSeed)
	MaxTokens int              // 0: Options.MaxTokens
	Tag       any              // the caller's, returned in the Result
}

// Result is the outcome of a Request.
type Result struct {
	Req          Request
	Tokens       []llamacpp.Token // generated, without the end-of-generation token
	Text         string           // the tokens' pieces joined; invalid UTF-8 shown as U+FFFD
	PromptTokens int              // shared prefix + suffix
	Finish       string
	Duration     time.Duration // from taking a slot to the last token
	Err          error         // a per-item failure; the run goes on
}

// ErrPromptTooLong is the per-item error of a prompt that does not fit CtxPerSeq.
var ErrPromptTooLong = errors.New("prompt exceeds the context")

// Stats count a Generator's work.
type Stats struct {
	PrefixTokens int // shared prefix, decoded once
	Products     int // requests that ran (errors included)
	PromptTokens int // suffix tokens decoded
	GenTokens    int // tokens sampled
	DecodeCalls  int // llama_decode calls after the prefix
	// PrefixAvoided is the prefill saved by sharing the prefix: each generation after
	// the first would have decoded it again.
	PrefixAvoided int
	// DecodeTime is the time spent in llama_decode after the prefix, SampleTime in the
	// sampler chains: what Run spends besides them is the loop's own overhead.
	DecodeTime, SampleTime time.Duration
}

// Generator decodes a shared prefix once and then generates for a stream of requests in
// Parallel slots with continuous batching: each step is one Decode holding one token per
// generating slot plus chunks of newly admitted prompts, and a slot that finishes takes
// the next request at once.
//
// Slot s is KV sequence s. The prefix is decoded on sequence 0 and shared with every
// other sequence (SeqCopy in a unified KV cache: the cells are stored once). A finished
// slot drops its positions after the prefix, which stays.
type Generator struct {
	model  *llamacpp.Model
	ctx    *llamacpp.Context
	batch  *llamacpp.Batch
	opt    Options
	prefix int
	stats  Stats
	// admitted counts generations started, over every Run
	admitted int
	// per-step scratch: the slots sampled, their samplers, batch indices and tokens
	which    []int
	samplers []*llamacpp.Sampler
	idx      []int
	toks     []llamacpp.Token
}

// NewGenerator creates the context for opt and decodes the prefix.
func NewGenerator(m *llamacpp.Model, prefix []llamacpp.Token, opt Options) (*Generator, error) {
	if opt.NBatch == 0 {
		opt.NBatch = 512
	}
	switch {
	case opt.Parallel < 1 || opt.Parallel > 256:
		return nil, fmt.Errorf("llm: parallel %d not in [1, 256]", opt.Parallel)
	case opt.MaxTokens < 1:
		return nil, fmt.Errorf("llm: max tokens %d must be positive", opt.MaxTokens)
	case opt.NBatch < opt.Parallel:
		return nil, fmt.Errorf("llm: batch %d is smaller than parallel %d: every slot needs a token per step", opt.NBatch, opt.Parallel)
	case len(prefix) == 0:
		return nil, errors.New("llm: empty prefix (it holds at least BOS and the system turn)")
	case len(prefix) >= opt.CtxPerSeq:
		return nil, fmt.Errorf("llm: the shared prefix (system turn + examples) is %d tokens, the context per product is %d: %w", len(prefix), opt.CtxPerSeq, ErrPromptTooLong)
	}
	if err := opt.Sampling.Validate(); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	// Unified KV: the prefix once, plus each slot's own positions after it.
	cells := len(prefix) + opt.Parallel*(opt.CtxPerSeq-len(prefix))
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextParams{
		NCtx:      cells,
		NBatch:    opt.NBatch,
		NSeqMax:   opt.Parallel,
		Threads:   opt.Threads,
		KVUnified: true,
	})
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	g := &Generator{model: m, ctx: ctx, batch: llamacpp.NewBatch(ctx.NBatch()), opt: opt, prefix: len(prefix)}
	if err := g.decodePrefix(prefix); err != nil {
		g.Close()
		return nil, err
	}
	g.stats.PrefixTokens = len(prefix)
	return g, nil
}

func (g *Generator) decodePrefix(prefix []llamacpp.Token) error {
	b := g.batch
	for start := 0; start < len(prefix); start += b.Cap() {
		b.Clear()
		for i := start; i < min(start+b.Cap(), len(prefix)); i++ {
			b.Add(prefix[i], i, 0, false)
		}
		if err := g.ctx.Decode(b); err != nil {
			return fmt.Errorf("llm: decode shared prefix: %w", err)
		}
	}
	for s := 1; s < g.opt.Parallel; s++ {
		if err := g.ctx.SeqCopy(0, s, -1, -1); err != nil {
			return fmt.Errorf("llm: share prefix: %w", err)
		}
	}
	return nil
}

// Close frees the context.
func (g *Generator) Close() {
	g.batch.Close()
	g.ctx.Close()
}

// PrefixTokens is the length of the shared prefix.
func (g *Generator) PrefixTokens() int { return g.prefix }

// Stats returns the counts so far.
func (g *Generator) Stats() Stats { return g.stats }

type slot struct {
	seq     int
	active  bool
	req     Request
	sampler *llamacpp.Sampler
	pending []llamacpp.Token // prompt tokens not decoded yet
	pos     int              // position of the next token to decode
	last    llamacpp.Token   // sampled, to be decoded next
	out     []llamacpp.Token
	limit   int // tokens this request may generate
	// ctxLimited: limit is the room left in CtxPerSeq, below the requested MaxTokens
	ctxLimited bool
	logit      int // batch index of this slot's logits in the current step, -1 if none
	start      time.Time
}

// Run generates for the requests next returns, in Parallel slots, and calls emit with
// each result as it finishes (in the order they finish, from Run's goroutine). next is
// asked whenever a slot is free; reporting false means "nothing now", and next may have
// more later (e.g. a retry that emit queued). Run returns when next reports false and no
// slot is busy. Per-item failures are Results with Err; Run returns an error when
// generation cannot go on (a decode failure, emit's error, ctx cancelled). Run may be
// called again afterwards for more requests.
func (g *Generator) Run(ctx context.Context, next func() (Request, bool), emit func(Result) error) error {
	slots := make([]slot, g.opt.Parallel)
	for i := range slots {
		slots[i].seq = i
	}
	defer func() {
		for i := range slots {
			g.release(&slots[i])
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range slots {
			for !slots[i].active {
				req, ok := next()
				if !ok {
					break
				}
				if err := g.admit(&slots[i], req); err != nil {
					g.stats.Products++
					if err := emit(Result{Req: req, PromptTokens: g.prefix + len(req.Suffix), Err: err}); err != nil {
						return err
					}
				}
			}
		}
		if !g.fillBatch(slots) {
			return nil // nothing admitted and nothing left
		}
		t0 := time.Now()
		if err := g.ctx.Decode(g.batch); err != nil {
			return fmt.Errorf("llm: %w", err)
		}
		g.stats.DecodeTime += time.Since(t0)
		g.stats.DecodeCalls++
		if err := g.sampleStep(slots, emit); err != nil {
			return err
		}
		if g.opt.OnStep != nil {
			g.opt.OnStep(g.stats)
		}
	}
}

// sampleStep samples a token for every slot with logits in this step and finishes the
// products that are done.
func (g *Generator) sampleStep(slots []slot, emit func(Result) error) error {
	g.which, g.samplers, g.idx = g.which[:0], g.samplers[:0], g.idx[:0]
	for i := range slots {
		if s := &slots[i]; s.active && s.logit >= 0 {
			g.which = append(g.which, i)
			g.samplers = append(g.samplers, s.sampler)
			g.idx = append(g.idx, s.logit)
		}
	}
	if len(g.which) == 0 {
		return nil
	}
	g.toks = append(g.toks[:0], make([]llamacpp.Token, len(g.which))...)
	t0 := time.Now()
	if err := llamacpp.SampleEach(g.ctx, g.samplers, g.idx, g.toks); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	g.stats.SampleTime += time.Since(t0)
	for k, i := range g.which {
		s := &slots[i]
		tok := g.toks[k]
		g.stats.GenTokens++
		finish := ""
		switch {
		case g.model.IsEOG(tok):
			finish = FinishStop
		case len(s.out)+1 >= s.limit:
			s.out = append(s.out, tok)
			finish = FinishLength
			if s.ctxLimited {
				finish = FinishContext
			}
		default:
			s.out = append(s.out, tok)
			s.last = tok
			continue
		}
		res := g.result(s, finish)
		if err := g.release(s); err != nil {
			return err
		}
		if err := emit(res); err != nil {
			return err
		}
	}
	return nil
}

// admit puts req into a free slot, or returns its per-item error.
func (g *Generator) admit(s *slot, req Request) error {
	if len(req.Suffix) == 0 {
		return fmt.Errorf("llm: %s: empty prompt", req.ID)
	}
	room := g.opt.CtxPerSeq - g.prefix - len(req.Suffix)
	if room < 1 {
		return fmt.Errorf("llm: %w: %d tokens (shared prefix %d + product %d), the context per product is %d",
			ErrPromptTooLong, g.prefix+len(req.Suffix), g.prefix, len(req.Suffix), g.opt.CtxPerSeq)
	}
	for _, t := range req.Suffix {
		if t < 0 || int(t) >= g.model.NVocab() {
			return fmt.Errorf("llm: %s: %w", req.ID, llamacpp.ErrToken)
		}
	}
	limit := g.opt.MaxTokens
	if req.MaxTokens > 0 && req.MaxTokens < limit {
		limit = req.MaxTokens
	}
	sp := g.opt.Sampling
	sp.Seed = req.Seed
	sm, err := llamacpp.NewSampler(g.model, sp)
	if err != nil {
		return fmt.Errorf("llm: %s: %w", req.ID, err)
	}
	g.stats.Products++
	g.stats.PromptTokens += len(req.Suffix)
	if g.admitted++; g.admitted > 1 {
		g.stats.PrefixAvoided += g.prefix
	}
	*s = slot{
		seq: s.seq, active: true, req: req, sampler: sm,
		pending: req.Suffix, pos: g.prefix, limit: min(limit, room), ctxLimited: room < limit, start: time.Now(),
	}
	return nil
}

// fillBatch builds the step's batch: first one token for each generating slot, then
// prompt chunks of admitted slots up to n_batch. It reports whether anything is active.
func (g *Generator) fillBatch(slots []slot) bool {
	b := g.batch
	b.Clear()
	active := false
	for i := range slots {
		s := &slots[i]
		s.logit = -1
		if !s.active {
			continue
		}
		active = true
		if len(s.pending) == 0 {
			s.logit = b.Add(s.last, s.pos, s.seq, true)
			s.pos++
		}
	}
	for i := range slots {
		s := &slots[i]
		for s.active && len(s.pending) > 0 && b.Len() < b.Cap() {
			last := len(s.pending) == 1
			idx := b.Add(s.pending[0], s.pos, s.seq, last)
			if last {
				s.logit = idx
			}
			s.pending = s.pending[1:]
			s.pos++
		}
	}
	return active
}

func (g *Generator) result(s *slot, finish string) Result {
	var text strings.Builder
	for _, t := range s.out {
		// Pieces, not llama_detokenize, which would tidy spaces before punctuation:
		// the text is what the model wrote. Control tokens render as nothing.
		p, err := g.model.TokenPiece(t, false)
		if err == nil {
			text.Write(p)
		}
	}
	return Result{
		Req:          s.req,
		Tokens:       s.out,
		Text:         strings.TrimSpace(strings.ToValidUTF8(text.String(), "\uFFFD")),
		PromptTokens: g.prefix + len(s.req.Suffix),
		Finish:       finish,
		Duration:     time.Since(s.start),
	}
}

// release frees a slot: its sampler, and its KV positions after the shared prefix.
func (g *Generator) release(s *slot) error {
	if !s.active {
		return nil
	}
	s.sampler.Close()
	*s = slot{seq: s.seq}
	if err := g.ctx.SeqRemove(s.seq, g.prefix, -1); err != nil {
		return fmt.Errorf("llm: free slot %d: %w", s.seq, err)
	}
	return nil
}

// ItemSeed derives a product's sampler seed from the run's seed, its id and the attempt
// (0 first, 1 for a retry), so that a product's text depends neither on the order nor
// on the slot it ran in. It never returns 0xFFFFFFFF, which llama.cpp takes as "random".
func ItemSeed(run uint64, id string, attempt int) uint32 {
	v := seed.Item(run, id, strconv.Itoa(attempt))
	s := uint32(v ^ v>>32)
	if s == 0xFFFFFFFF {
		s--
	}
	return s
}
