package finetune

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"synth/vision/lora"

	"synth/dataset/embcache"
	"synth/dataset/imagefile"
	"synth/internal/seed"
	"synth/native"
	"synth/vision/preprocess"
)

// prefixBatch is how many images the prefix pass encodes at once.
const prefixBatch = 8

// micros are the micro-batches of optimizer step s (0-based), as indices into the
// training examples: the step's share of its epoch's seeded order, GradAccum batches
// of Batch (an epoch's last step and batch may be short).
func (tr *trainer) micros(s int) [][]int {
	o := tr.o
	n := len(tr.data.train)
	epoch, j := s/tr.perEp, s%tr.perEp
	order := epochOrder(n, o.Seed, epoch)
	var out [][]int
	for m := j * o.GradAccum; m < (j+1)*o.GradAccum; m++ {
		lo := m * o.Batch
		if lo >= n {
			break
		}
		out = append(out, order[lo:min(lo+o.Batch, n)])
	}
	return out
}

// step runs optimizer step s: the forward and backward passes of its micro-batches
// (their mean losses averaged, as HF's gradient accumulation), gradient clipping, and
// AdamW. It returns the loss, the text tokens seen and the gradients' norm.
func (tr *trainer) step(s int) (loss float64, tokens int, norm float64, err error) {
	o, md, c := tr.o, tr.md, tr.c
	ms := tr.micros(s)
	md.Train, md.GradScale = true, 1/float32(len(ms))
	md.Adapter.ZeroGrads()
	for k, idx := range ms {
		exs := pick(tr.data.train, idx)
		sd := &lora.Seeds{Base: seed.Item(o.Seed, "dropout", fmt.Sprint(s), fmt.Sprint(k))}
		if err := guard(func() error {
			mk := c.Mark()
			defer c.Release(mk)
			x, bt, qt, err := tr.inputs(exs, sd, true)
			if err != nil {
				return err
			}
			l, _, dPrefix := md.Loss(c, x, bt, tr.m.Cfg.NumQueryTokens, sd, true, tr.qTrain)
			if qt != nil {
				md.EncodeBackward(c, qt, dPrefix)
			}
			loss += l / float64(len(ms))
			for _, e := range exs {
				tokens += len(e.ids)
			}
			return nil
		}); err != nil {
			return 0, 0, 0, fmt.Errorf("finetune: step %d: %w", s+1, err)
		}
	}
	norm = o.Optim.Clip(md.Adapter.Params)
	o.Optim.Update(md.Adapter.Params, s+1, o.Optim.Rate(s, tr.total))
	if err := md.Adapter.Attach(tr.m.Device()); err != nil {
		return 0, 0, 0, err
	}
	return loss, tokens, norm, nil
}

func pick(exs []example, idx []int) []example {
	out := make([]example, len(idx))
	for i, j := range idx {
		out[i] = exs[j]
	}
	return out
}

// inputs is the language model's input for exs: per example the Q projected queries,
// then its T text rows (token embeddings, padding after the text). The prefixes come
// from the cache; when the Q-Former trains, from a recorded forward pass whose tape is
// returned for the backward pass (train), or from its plain forward pass.
func (tr *trainer) inputs(exs []example, sd *lora.Seeds, train bool) (native.Tensor, lora.Batch, *lora.QTape, error) {
	c, lm := tr.c, tr.m.LM
	q, e := tr.m.Cfg.NumQueryTokens, tr.m.Cfg.Text.Hidden
	var bt lora.Batch
	t := 0
	for _, ex := range exs {
		bt.IDs = append(bt.IDs, ex.ids)
		bt.NoLoss = append(bt.NoLoss, ex.noLoss)
		t = max(t, len(ex.ids))
	}
	b, n := len(exs), q+t
	x := c.Alloc(b*n, e)
	var qt *lora.QTape
	switch {
	case tr.qTrain && train:
		px, err := tr.pixels(exs)
		if err != nil {
			return x, bt, nil, err
		}
		var prefix native.Tensor
		prefix, qt = tr.md.Encode(c, c.Upload(px, b, 3, tr.size(), tr.size()), b, sd)
		for i := range exs {
			c.Copy(x.Rows(i*n, i*n+q), prefix.Rows(i*q, (i+1)*q))
		}
	case tr.qTrain:
		vecs, err := tr.encodeImages(exs)
		if err != nil {
			return x, bt, nil, err
		}
		for i, vec := range vecs {
			c.Copy(x.Rows(i*n, i*n+q), c.Upload(vec, q, e))
		}
	default:
		for i, ex := range exs {
			vec, err := tr.prefix(ex)
			if err != nil {
				return x, bt, nil, err
			}
			c.Copy(x.Rows(i*n, i*n+q), c.Upload(vec, q, e))
		}
	}
	padded := make([]int32, 0, b*t)
	for _, r := range bt.IDs {
		padded = append(padded, r...)
		for j := len(r); j < t; j++ {
			padded = append(padded, lm.Cfg.PAD)
		}
	}
	emb := lm.EmbedTokens(c, padded)
	for i := range exs {
		c.Copy(x.Rows(i*n+q, (i+1)*n), emb.Rows(i*t, (i+1)*t))
	}
	return x, bt, qt, nil
}

func (tr *trainer) size() int { return tr.m.Cfg.Vision.ImageSize }

// pixels decodes and preprocesses the examples' images: [B, 3, S, S].
func (tr *trainer) pixels(exs []example) ([]float32, error) {
	s := tr.size()
	out, errs := preprocess.BatchBLIP(len(exs), s, max(1, tr.c.Threads()), func(i int) (image.Image, error) {
		return imagefile.Decode(exs[i].path, imagefile.Limits{})
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("finetune: product %q image %s: %w", exs[i].product, exs[i].image, err)
		}
	}
	return out, nil
}

func (tr *trainer) key(ex example) embcache.Key {
	return embcache.ImageKey(tr.modelH, tr.prep, ex.sha)
}

// prefix is an example's projected queries [Q*E] from the cache, encoded again (and put
// back) if the cache lost it.
func (tr *trainer) prefix(ex example) ([]float32, error) {
	vec, ok, err := tr.cache.Get(tr.key(ex))
	if err != nil {
		return nil, fmt.Errorf("finetune: prefix cache: %w", err)
	}
	if ok && len(vec) == tr.m.Cfg.NumQueryTokens*tr.m.Cfg.Text.Hidden {
		return vec, nil
	}
	vecs, err := tr.encodeImages([]example{ex})
	if err != nil {
		return nil, err
	}
	return vecs[0], tr.cache.Put(tr.key(ex), vecs[0])
}

// encodeImages runs the frozen vision encoder, Q-Former and projection: one [Q*E]
// prefix per example.
func (tr *trainer) encodeImages(exs []example) ([][]float32, error) {
	px, err := tr.pixels(exs)
	if err != nil {
		return nil, err
	}
	c := tr.c
	var out [][]float32
	err = guard(func() error {
		mk := c.Mark()
		defer c.Release(mk)
		all := c.ToHost(tr.m.Encode(c, c.Upload(px, len(exs), 3, tr.size(), tr.size())))
		w := len(all) / len(exs)
		for i := range exs {
			out = append(out, all[i*w:(i+1)*w:(i+1)*w])
		}
		return nil
	})
	return out, err
}

// cachePrefixes encodes every image whose prefix the cache lacks, so that training
// runs the language model only.
func (tr *trainer) cachePrefixes(ctx context.Context) error {
	dir := tr.o.Cache
	if dir == "" {
		dir = filepath.Clean(tr.o.Out) + prefixCacheSuffix
	}
	var err error
	if tr.cache, err = embcache.Open(dir); err != nil {
		return fmt.Errorf("finetune: prefix cache: %w", err)
	}
	tr.sum.PrefixCache = filepath.Base(dir)
	var todo []example
	seen := map[embcache.Key]bool{}
	for _, set := range [][]example{tr.data.train, tr.data.val} {
		for _, ex := range set {
			k := tr.key(ex)
			if seen[k] {
				continue
			}
			seen[k] = true
			if _, ok, err := tr.cache.Get(k); err != nil {
				return fmt.Errorf("finetune: prefix cache: %w", err)
			} else if !ok {
				todo = append(todo, ex)
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	task := tr.o.Progress.Start("image prefixes", "images", len(todo))
	defer task.End()
	for lo := 0; lo < len(todo); lo += prefixBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		part := todo[lo:min(lo+prefixBatch, len(todo))]
		vecs, err := tr.encodeImages(part)
		if err != nil {
			return err
		}
		keys := make([]embcache.Key, len(part))
		for i, ex := range part {
			keys[i] = tr.key(ex)
		}
		if err := tr.cache.PutMany(keys, vecs); err != nil {
			return fmt.Errorf("finetune: prefix cache: %w", err)
		}
		task.Add(len(part))
	}
	return tr.cache.Sync()
}

// validate is the mean loss over every labelled token of the validation set, with the
// dropouts off.
func (tr *trainer) validate(step int) error {
	md, c := tr.md, tr.c
	md.Train = false
	defer func() { md.Train = true }()
	var sum float64
	var count int
	for lo := 0; lo < len(tr.data.val); lo += tr.o.Batch {
		exs := tr.data.val[lo:min(lo+tr.o.Batch, len(tr.data.val))]
		if err := guard(func() error {
			mk := c.Mark()
			defer c.Release(mk)
			x, bt, _, err := tr.inputs(exs, &lora.Seeds{}, false)
			if err != nil {
				return err
			}
			l, n, _ := md.Loss(c, x, bt, tr.m.Cfg.NumQueryTokens, &lora.Seeds{}, false, false)
			sum += l * float64(n)
			count += n
			return nil
		}); err != nil {
			return fmt.Errorf("finetune: validation at step %d: %w", step, err)
		}
	}
	v := sum / float64(max(count, 1))
	return tr.writeLog(LogLine{Step: step, Epoch: tr.epochAt(step), ValLoss: &v, LR: tr.o.Optim.Rate(step-1, tr.total)})
}

// guard runs fn, turning a device's out-of-memory panic into an error.
func guard(fn func() error) (err error) {
	defer native.Recover(&err)
	return fn()
}
