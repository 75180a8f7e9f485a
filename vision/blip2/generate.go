package blip2

import (
	"errors"
	"fmt"

	"synth/native"
	"synth/vision/generate"
	"synth/vision/opt"
)

// Prompt is one image's text prompt.
type Prompt struct {
	// IDs are the prompt's token ids as the tokenizer gives them (with its BOS); upstream
	// adds nothing. Empty means BOS alone, as generate() without input_ids does.
	IDs []int32
	// Mask is the attention mask over IDs (false: padding, e.g. left padding); nil means
	// every id is real.
	Mask []bool
	// Seed seeds this image's sampler.
	Seed uint64
}

// Params are transformers' generate() defaults for this model with maxNew new tokens:
// greedy, the text config's EOS ids (blip2-opt stops at "\n", 50118).
func (m *Model) Params(maxNew int) generate.Params {
	return generate.Defaults(maxNew, m.Cfg.Text.EOS...)
}

// Generator captions batches of images with one KV cache, allocated for the largest
// batch, prompt, beam count and caption length it was made for. It owns its Ctx while it
// runs (see opt.Session).
type Generator struct {
	m                                  *Model
	s                                  *opt.Session
	maxBatch, maxPrompt, beams, maxNew int
}

// ErrInput marks a request the generator cannot run (sizes beyond what it was made for,
// ids outside the vocabulary).
var ErrInput = errors.New("blip2: invalid generation input")

// NewGenerator makes a generator for batches of up to maxBatch images with prompts of up
// to maxPrompt ids, generating with up to p.NumBeams beams and p.MaxNewTokens tokens.
func (m *Model) NewGenerator(c *native.Ctx, maxBatch, maxPrompt int, p generate.Params) (*Generator, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxBatch < 1 || maxPrompt < 0 {
		return nil, fmt.Errorf("%w: batch %d, prompt length %d", ErrInput, maxBatch, maxPrompt)
	}
	maxLen := m.Cfg.NumQueryTokens + max(maxPrompt, 1) + p.MaxNewTokens
	s, err := m.LM.NewSession(c, maxBatch*p.NumBeams, maxLen)
	if err != nil {
		return nil, fmt.Errorf("blip2: %d queries + %d prompt ids + %d new tokens: %w", m.Cfg.NumQueryTokens, maxPrompt, p.MaxNewTokens, err)
	}
	return &Generator{m: m, s: s, maxBatch: maxBatch, maxPrompt: max(maxPrompt, 1), beams: p.NumBeams, maxNew: p.MaxNewTokens}, nil
}

// Close frees the generator's KV cache.
func (g *Generator) Close() { g.s.Close() }

// Generate is Blip2ForConditionalGeneration.generate for a batch of images: pixels
// [B, 3, S, S] (on the host or the model's device) and one prompt per image. All images run the vision tower and Q-Former
// together, their prompts are prefilled together, and every sequence (and beam) decodes
// in the same steps until it finishes. Results are the new tokens per image.
func (g *Generator) Generate(pixels native.Tensor, prompts []Prompt, p generate.Params) (_ []generate.Result, err error) {
	defer native.Recover(&err) // a device out of memory: an error that suggests a smaller batch
	m, c := g.m, g.s.Ctx()
	cfg := m.Cfg
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := len(prompts)
	switch {
	case pixels.Rank() != 4 || pixels.Dim(0) != b || pixels.Dim(1) != 3 || pixels.Dim(2) != cfg.Vision.ImageSize || pixels.Dim(3) != cfg.Vision.ImageSize:
		return nil, fmt.Errorf("%w: pixels %v for %d prompts, want [%d, 3, %d, %d]", ErrInput, pixels.Shape(), b, b, cfg.Vision.ImageSize, cfg.Vision.ImageSize)
	case b < 1 || b > g.maxBatch:
		return nil, fmt.Errorf("%w: batch of %d images, the generator holds %d", ErrInput, b, g.maxBatch)
	case p.NumBeams > g.beams || p.MaxNewTokens > g.maxNew:
		return nil, fmt.Errorf("%w: %d beams and %d new tokens, the generator was made for %d and %d", ErrInput, p.NumBeams, p.MaxNewTokens, g.beams, g.maxNew)
	}
	var ids []int32
	lens, promptLens := make([]int, b), make([]int, b)
	var masks [][]bool
	for i, pr := range prompts {
		pid := pr.IDs
		if len(pid) == 0 {
			pid = []int32{cfg.Text.BOS}
		}
		if len(pid) > g.maxPrompt {
			return nil, fmt.Errorf("%w: prompt %d has %d ids, the generator holds %d", ErrInput, i, len(pid), g.maxPrompt)
		}
		for _, id := range pid {
			if id < 0 || int(id) >= cfg.Text.Vocab {
				return nil, fmt.Errorf("%w: prompt %d: id %d outside the vocabulary of %d", ErrInput, i, id, cfg.Text.Vocab)
			}
		}
		if pr.Mask != nil {
			if len(pr.Mask) != len(pid) {
				return nil, fmt.Errorf("%w: prompt %d: mask of %d for %d ids", ErrInput, i, len(pr.Mask), len(pid))
			}
			if masks == nil {
				masks = make([][]bool, b)
			}
			masks[i] = queryMask(cfg.NumQueryTokens, pr.Mask)
		}
		ids = append(ids, pid...)
		lens[i], promptLens[i] = cfg.NumQueryTokens+len(pid), len(pid)
	}

	mk := c.Mark()
	defer c.Release(mk)
	x := m.inputsEmbeds(c, m.Encode(c, c.Import(pixels)), m.LM.EmbedTokens(c, ids), promptLens) // [sum(Q+Tp), E]
	slots := make([]int, b)
	for i := range slots {
		slots[i] = i * p.NumBeams
	}
	lg := g.s.Prefill(x, slots, lens, masks)
	rows := make([]generate.Row, b)
	for i := range rows {
		s := make([]int, p.NumBeams)
		for j := range s {
			s[j] = i*p.NumBeams + j
		}
		rows[i] = generate.Row{Slots: s, Seed: prompts[i].Seed}
	}
	return generate.Run(g.s, p, rows, lg)
}
