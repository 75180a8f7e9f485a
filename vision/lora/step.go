package lora

import (
	"fmt"
	"strings"

	"synth/native"
	"synth/vision/blip2"
	"synth/vision/nn"
	"synth/vision/opt"
)

// Dropouts are the training-mode dropout rates of the frozen model.
type Dropouts struct {
	OPT     float32 // after attention and after fc2 (OPTConfig.dropout)
	QFormer float32 // the Q-Former's hidden dropout (hidden_dropout_prob)
}

// Batch is one micro-batch of texts: each example's token ids (BOS + prompt + caption
// [+ EOS]) and how many of its leading tokens are never targets (1 + the prompt's).
type Batch struct {
	IDs    [][]int32
	NoLoss []int
}

// Model runs BLIP-2's training forward and backward passes with the adapter live.
type Model struct {
	BLIP2    *blip2.Model
	Adapter  *Adapter
	Dropouts Dropouts
	// Train turns the dropouts on; GradScale multiplies every gradient added to the
	// adapter's (1 / the micro-batches of a step, whose losses are averaged).
	Train     bool
	GradScale float32
	by        map[*nn.Linear]*Param // the adapted layers
}

// NewModel trains ad on m (whose Linears ad's parameters belong to).
func NewModel(m *blip2.Model, ad *Adapter, dr Dropouts) *Model {
	md := &Model{BLIP2: m, Adapter: ad, Dropouts: dr, GradScale: 1, by: map[*nn.Linear]*Param{}}
	for _, p := range ad.Params {
		md.by[p.lin] = p
	}
	return md
}

// QFormerTrains reports whether an adapted layer is outside the language model, so that
// image prefixes change with training (they cannot be cached).
func (md *Model) QFormerTrains() bool {
	for _, p := range md.Adapter.Params {
		if !strings.HasPrefix(p.Module, "language_model.") {
			return true
		}
	}
	return false
}

// linTape is what a Linear's backward needs: its input and, when adapted, the
// adapter's dropped input and its x A^T.
type linTape struct {
	lin  *nn.Linear
	p    *Param
	x    native.Tensor // the input
	xd   native.Tensor // the adapter's input after its dropout (x when none)
	t    native.Tensor // xd A^T [.., R]
	seed uint64
}

// Seeds give each dropout site of a pass its own mask seed, a function of Base (the
// pass's seed) and the site's order, so a rerun draws the same masks.
type Seeds struct {
	Base uint64
	n    uint64
}

// Next is the next site's seed.
func (s *Seeds) Next() uint64 { s.n++; return s.Base ^ (s.n * 0xd1342543de82ef95) }

// linear is Linear's training forward: y = x W^T + b + s (drop(x) A^T) B^T.
func (md *Model) linear(c *native.Ctx, lin *nn.Linear, x native.Tensor, sd *Seeds) (native.Tensor, linTape) {
	tp := linTape{lin: lin, p: md.by[lin], x: x}
	y := c.Linear(x, lin.W, lin.B, native.None, native.Tensor{})
	if tp.p == nil {
		return y, tp
	}
	tp.xd = x
	if d := md.Adapter.Config.Dropout; d > 0 && md.Train {
		rows, cols := x.Dims2()
		tp.xd = c.Alloc(rows, cols)
		c.Copy(tp.xd, x)
		tp.seed = sd.Next()
		c.DropoutInPlace(tp.xd, d, tp.seed)
	}
	tp.t = c.Linear(tp.xd, lin.LoRA.A, native.Tensor{}, native.None, native.Tensor{})
	c.AddScaledInPlace(y, c.Linear(tp.t, lin.LoRA.B, native.Tensor{}, native.None, native.Tensor{}), tp.p.Scale)
	return y, tp
}

// backward is dx = dy W (+ the adapter's path), adding the adapter's gradients to
// dA and dB of the step (on the host).
func (md *Model) backward(c *native.Ctx, tp linTape, dy native.Tensor) native.Tensor {
	dx := c.LinearBackward(dy, tp.lin.W)
	if tp.p == nil {
		return dx
	}
	u := md.gradsOnly(c, tp, dy)
	dxd := c.LinearBackward(u, tp.lin.LoRA.A) // (dy B) A [.., In]
	if tp.seed != 0 {
		c.DropoutInPlace(dxd, md.Adapter.Config.Dropout, tp.seed)
	}
	c.AddScaledInPlace(dx, dxd, tp.p.Scale)
	return dx
}

// gradsOnly adds the adapter's gradients of dy to dA and dB (none for a layer without
// one) and returns dy B [.., R].
func (md *Model) gradsOnly(c *native.Ctx, tp linTape, dy native.Tensor) native.Tensor {
	if tp.p == nil {
		return native.Tensor{}
	}
	p, s := tp.p, tp.p.Scale*md.GradScale
	u := c.LinearBackward(dy, tp.lin.LoRA.B)           // dy B
	addScaled(p.GB, c.ToHost(c.MatMulTN(dy, tp.t)), s) // dB = s dy^T (xd A^T)
	addScaled(p.GA, c.ToHost(c.MatMulTN(u, tp.xd)), s) // dA = s (dy B)^T xd
	return u
}

func addScaled(dst, src []float32, s float32) {
	for i, v := range src {
		dst[i] += s * v
	}
}

// layerTape is one OPT decoder layer's forward, for its backward.
type layerTape struct {
	xin, h1      native.Tensor
	q, k, v      linTape
	qo, ko, vo   native.Tensor // the projections
	out          linTape
	xmid, h2     native.Tensor
	fc1, fc2     linTape
	fpre         native.Tensor // fc1's output before the activation
	drop1, drop2 uint64
	attn         native.AttnParams
}

// loss runs the language model's forward pass over one micro-batch, inputs x [B*(Q+T),
// E] (each example's Q prefix rows, then its T text rows, T the longest text), and
// returns HF's loss: the mean cross-entropy over the labelled targets (the text shifted
// by one; padding, the prefix and the first noLoss tokens are never targets), and how
// many targets there were. With backward it then adds md.GradScale times the gradient of
// that mean to every adapted layer's GA and GB, and, with wantPrefix, returns the
// gradient of the prefix rows [B*Q, E], scaled alike.
func (md *Model) Loss(c *native.Ctx, x native.Tensor, bt Batch, q int, sd *Seeds, backward, wantPrefix bool) (loss float64, labelled int, dPrefix native.Tensor) {
	lm := md.BLIP2.LM
	cfg := lm.Cfg
	b := len(bt.IDs)
	t := 0
	for _, r := range bt.IDs {
		t = max(t, len(r))
	}
	n := q + t
	// the attention mask (the prefix and the real tokens: right padding), positions,
	// and the targets of text positions 0..T-2
	keyMask := make([]bool, b*n)
	var pos, targets, pick []int32
	for i, r := range bt.IDs {
		row := keyMask[i*n : (i+1)*n]
		for j := range row {
			row[j] = j < q+len(r)
		}
		pos = opt.PositionIDs(pos, row, n, 0)
		for j := 0; j < t-1; j++ {
			pick = append(pick, int32(i*n+q+j))
			tg := int32(native.IgnoreIndex)
			if j+1 < len(r) && j+1 >= bt.NoLoss[i] {
				tg = r[j+1]
				labelled++
			}
			targets = append(targets, tg)
		}
	}
	// Two gradient buffers below every layer's tape: each layer's backward leaves its
	// result in one of them and releases its own tape and temporaries (the arena is a
	// stack and the backward pass runs the layers in reverse), so the pass holds the
	// tape plus one layer's temporaries, not a second tape's worth.
	var dhBuf [2]native.Tensor
	if backward {
		dhBuf[0], dhBuf[1] = c.Alloc(b*n, cfg.Hidden), c.Alloc(b*n, cfg.Hidden)
	}
	marks := make([]native.Mark, len(lm.Layers))
	h := c.Alloc(b*n, cfg.Hidden)
	if lm.ProjIn != nil {
		lm.ProjIn.ForwardInto(c, h, x, native.None, native.Tensor{})
	} else {
		c.Copy(h, x)
	}
	c.AddInPlace(h, c.GatherRows(lm.Positions, pos))
	attn := native.AttnParams{Heads: cfg.Heads, HeadDim: cfg.HeadDim(), Scale: nn.InvSqrt(cfg.HeadDim()), Causal: true, KeyMask: keyMask}
	tapes := make([]layerTape, len(lm.Layers))
	for i, ly := range lm.Layers {
		marks[i] = c.Mark()
		tp := &tapes[i]
		tp.attn = attn
		tp.xin = h
		tp.h1 = ly.Norm1.Forward(c, h)
		tp.qo, tp.q = md.linear(c, ly.Q, tp.h1, sd)
		tp.ko, tp.k = md.linear(c, ly.K, tp.h1, sd)
		tp.vo, tp.v = md.linear(c, ly.V, tp.h1, sd)
		a := c.Attention(tp.qo, tp.ko, tp.vo, b, attn)
		o, otp := md.linear(c, ly.Out, a, sd)
		tp.out = otp
		if md.Train && md.Dropouts.OPT > 0 {
			tp.drop1 = sd.Next()
			c.DropoutInPlace(o, md.Dropouts.OPT, tp.drop1)
		}
		tp.xmid = c.Add(h, o)
		tp.h2 = ly.Norm2.Forward(c, tp.xmid)
		tp.fpre, tp.fc1 = md.linear(c, ly.FC1, tp.h2, sd)
		f := c.Activation(tp.fpre, ly.Act)
		o2, f2 := md.linear(c, ly.FC2, f, sd)
		tp.fc2 = f2
		if md.Train && md.Dropouts.OPT > 0 {
			tp.drop2 = sd.Next()
			c.DropoutInPlace(o2, md.Dropouts.OPT, tp.drop2)
		}
		h = c.Add(tp.xmid, o2)
	}
	last := h
	hf := last
	if lm.Norm != nil {
		hf = lm.Norm.Forward(c, last)
	}
	var poTape linTape
	if lm.ProjOut != nil {
		hf, poTape = md.linear(c, lm.ProjOut, hf, sd)
	}
	hsel := c.GatherRows(hf, pick)
	logits := lm.Logits(c, hsel)
	loss, dl := c.CrossEntropy(logits, targets)
	if !backward || labelled == 0 {
		return loss, labelled, native.Tensor{}
	}

	// backward
	dsel := c.LinearBackward(dl, lm.Embed) // [rows picked, P]
	dh := c.Alloc(b*n, hf.Dim(-1))
	c.Zero(dh)
	for i := 0; i < b; i++ {
		c.Copy(dh.Rows(i*n+q, i*n+q+t-1), dsel.Rows(i*(t-1), (i+1)*(t-1)))
	}
	if lm.ProjOut != nil {
		dh = md.backward(c, poTape, dh)
	}
	if lm.Norm != nil {
		dh = c.LayerNormBackward(dh, last, lm.Norm.W, lm.Norm.Eps)
	}
	for i := len(lm.Layers) - 1; i >= 0; i-- {
		ly, tp := lm.Layers[i], &tapes[i]
		// x_out = x_mid + drop(fc2(act(fc1(LN2(x_mid)))))
		d := dupe(c, dh)
		if tp.drop2 != 0 {
			c.DropoutInPlace(d, md.Dropouts.OPT, tp.drop2)
		}
		d = md.backward(c, tp.fc2, d)
		d = c.ActivationBackward(d, tp.fpre, ly.Act)
		d = md.backward(c, tp.fc1, d)
		dmid := c.LayerNormBackward(d, tp.xmid, ly.Norm2.W, ly.Norm2.Eps)
		c.AddInPlace(dmid, dh)
		// x_mid = x_in + drop(out(attention(q, k, v of LN1(x_in))))
		d = dupe(c, dmid)
		if tp.drop1 != 0 {
			c.DropoutInPlace(d, md.Dropouts.OPT, tp.drop1)
		}
		d = md.backward(c, tp.out, d)
		dq, dk, dv := c.AttentionBackward(tp.qo, tp.ko, tp.vo, d, b, tp.attn)
		dh1 := md.backward(c, tp.q, dq)
		c.AddInPlace(dh1, md.backward(c, tp.k, dk))
		c.AddInPlace(dh1, md.backward(c, tp.v, dv))
		nd := c.LayerNormBackward(dh1, tp.xin, ly.Norm1.W, ly.Norm1.Eps)
		c.AddInPlace(nd, dmid)
		c.Copy(dhBuf[i%2], nd)
		c.Release(marks[i])
		dh = dhBuf[i%2]
	}
	if !wantPrefix {
		return loss, labelled, native.Tensor{}
	}
	dPrefix = c.Alloc(b*q, cfg.Hidden)
	for i := 0; i < b; i++ {
		c.Copy(dPrefix.Rows(i*q, (i+1)*q), dh.Rows(i*n, i*n+q))
	}
	return loss, labelled, dPrefix
}

// dupe is a copy of x in the arena (a gradient that a dropout will change, while x is
// still needed).
func dupe(c *native.Ctx, x native.Tensor) native.Tensor {
	y := c.Alloc(x.Shape()...)
	c.Copy(y, x)
	return y
}

// checkModel refuses what the training passes do not cover.
func CheckModel(m *blip2.Model) error {
	if m.LM.Cfg.ProjDim() != m.LM.Cfg.Hidden {
		return fmt.Errorf("finetune: OPT with word_embed_proj_dim %d != hidden_size %d is not supported", m.LM.Cfg.ProjDim(), m.LM.Cfg.Hidden)
	}
	return nil
}
