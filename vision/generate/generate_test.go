package generate

import (
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"synth/native"
)

// toyModel's logits are a deterministic function of a slot's whole sequence, so a beam
// that ends up with another beam's cache gives different logits than its own history.
type toyModel struct {
	vocab int
	seqs  [][]int32
	steps int
	batch []int // slots per Step
	out   []float32
	c     *native.Ctx
}

func newToy(t *testing.T, vocab, slots int) *toyModel {
	c := native.NewCtx(2)
	t.Cleanup(c.Close)
	return &toyModel{vocab: vocab, seqs: make([][]int32, slots), c: c}
}

func (m *toyModel) Vocab() int { return m.vocab }

func (m *toyModel) Ctx() *native.Ctx { return m.c }

// first uploads prompt logits as Run's first argument.
func (m *toyModel) first(logits ...[]float32) native.Tensor {
	var all []float32
	for _, l := range logits {
		all = append(all, l...)
	}
	return m.c.Upload(all, len(logits), m.vocab)
}

func (m *toyModel) logits(seq []int32) []float32 {
	h := fnv.New64a()
	for _, t := range seq {
		h.Write([]byte{byte(t), byte(t >> 8)})
	}
	r := rand.New(rand.NewPCG(h.Sum64(), 3))
	out := make([]float32, m.vocab)
	for i := range out {
		out[i] = float32(r.NormFloat64() * 2)
	}
	return out
}

// prefill sets slot s to the prompt and returns its next-token logits.
func (m *toyModel) prefill(s int, prompt []int32) []float32 {
	m.seqs[s] = append([]int32(nil), prompt...)
	return m.logits(m.seqs[s])
}

func (m *toyModel) Step(slots []int, ids []int32) native.Tensor {
	m.steps++
	m.batch = append(m.batch, len(slots))
	m.out = m.out[:0]
	for i, s := range slots {
		m.seqs[s] = append(m.seqs[s], ids[i])
		m.out = append(m.out, m.logits(m.seqs[s])...)
	}
	return m.c.Upload(m.out, len(slots), m.vocab)
}

// logSoftmax is log_softmax over a row in float64, into dst.
func logSoftmax(dst, x []float32) {
	mx := math.Inf(-1)
	for _, s := range x {
		mx = math.Max(mx, float64(s))
	}
	sum := 0.0
	for _, s := range x {
		sum += math.Exp(float64(s) - mx)
	}
	lse := mx + math.Log(sum)
	for i, s := range x {
		dst[i] = float32(float64(s) - lse)
	}
}

func (m *toyModel) CopySlot(dst, src int) {
	m.seqs[dst] = append([]int32(nil), m.seqs[src]...)
}

func TestGreedyFollowsArgmaxAndStopsAtEOS(t *testing.T) {
	m := newToy(t, 11, 4)
	p := Defaults(12, 3)
	var rows []Row
	var lg [][]float32
	prompts := [][]int32{{1}, {2, 5}, {7, 7, 7}, {4}}
	for i, pr := range prompts {
		rows = append(rows, Row{Slots: []int{i}})
		lg = append(lg, m.prefill(i, pr))
	}
	res, err := Run(m, p, rows, m.first(lg...))
	if err != nil {
		t.Fatal(err)
	}
	check := newToy(t, 11, 1)
	for i, pr := range prompts {
		seq := append([]int32(nil), pr...)
		var want []int32
		eos := false
		for len(want) < p.MaxNewTokens {
			tok := argmax(check.logits(seq))
			if tok == 3 {
				eos = true
				break
			}
			want = append(want, tok)
			seq = append(seq, tok)
		}
		if !slices.Equal(res[i].Tokens, want) || res[i].EOS != eos {
			t.Errorf("row %d: got %v eos=%v, want %v eos=%v", i, res[i].Tokens, res[i].EOS, want, eos)
		}
	}
	// finished rows leave the batch: step sizes never grow
	for i := 1; i < len(m.batch); i++ {
		if m.batch[i] > m.batch[i-1] {
			t.Errorf("step %d ran %d slots after %d", i, m.batch[i], m.batch[i-1])
		}
	}
}

func TestBatchDoesNotChangeRows(t *testing.T) {
	for _, p := range []Params{
		Defaults(9, 0),
		{MaxNewTokens: 9, NumBeams: 3, LengthPenalty: 1, EOS: []int32{0}},
		{MaxNewTokens: 9, NumBeams: 2, LengthPenalty: 0.5, EarlyStopping: EarlyNever, EOS: []int32{0, 4}},
		{MaxNewTokens: 9, NumBeams: 1, DoSample: true, Temperature: 0.7, TopK: 5, TopP: 0.9, EOS: []int32{0}},
	} {
		prompts := [][]int32{{1, 2}, {3}, {5, 6, 7}}
		nb := p.NumBeams
		all := newToy(t, 8, nb*len(prompts))
		var rows []Row
		var lg [][]float32
		for i, pr := range prompts {
			s := make([]int, nb)
			for j := range s {
				s[j] = i*nb + j
			}
			rows = append(rows, Row{Slots: s, Seed: uint64(100 + i)})
			lg = append(lg, all.prefill(s[0], pr))
		}
		together, err := Run(all, p, rows, all.first(lg...))
		if err != nil {
			t.Fatal(err)
		}
		for i, pr := range prompts {
			one := newToy(t, 8, nb)
			s := make([]int, nb)
			for j := range s {
				s[j] = j
			}
			alone, err := Run(one, p, []Row{{Slots: s, Seed: uint64(100 + i)}}, one.first(one.prefill(0, pr)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(alone[0].Tokens, together[i].Tokens) || alone[0].Score != together[i].Score {
				t.Errorf("beams %d sample %v row %d: alone %v (%v), in a batch %v (%v)", nb, p.DoSample, i,
					alone[0].Tokens, alone[0].Score, together[i].Tokens, together[i].Score)
			}
		}
	}
}

// The score beam search reports must be the hypothesis' own log-probability under the
// model recomputed from its tokens: a beam that continued from another beam's cache
// (wrong reordering) would not match.
func TestBeamScoresMatchTheirTokens(t *testing.T) {
	for _, lp := range []float64{1, 0, 2} {
		m := newToy(t, 7, 4)
		p := Params{MaxNewTokens: 10, NumBeams: 4, LengthPenalty: lp, EOS: []int32{2}}
		prompt := []int32{1, 3}
		res, err := Run(m, p, []Row{{Slots: []int{0, 1, 2, 3}}}, m.first(m.prefill(0, prompt)))
		if err != nil {
			t.Fatal(err)
		}
		r := res[0]
		seq := append([]int32(nil), prompt...)
		sum := 0.0
		ls := make([]float32, 7)
		steps := append(append([]int32(nil), r.Tokens...), 2)
		if !r.EOS {
			steps = steps[:len(steps)-1]
		}
		var acc float32
		for _, tok := range steps {
			logSoftmax(ls, m.logits(seq))
			acc += ls[tok]
			seq = append(seq, tok)
		}
		sum = float64(acc)
		want := sum / math.Pow(float64(len(steps)), lp)
		if math.Abs(want-r.Score) > 1e-5*math.Abs(want) {
			t.Errorf("length penalty %v: score %v, tokens %v (eos %v) give %v", lp, r.Score, r.Tokens, r.EOS, want)
		}
	}
}

// With as many beams as there are sequences and no early stop, beam search is exhaustive.
func TestBeamSearchExhaustive(t *testing.T) {
	const v, n = 3, 3
	m := newToy(t, v, 27)
	p := Params{MaxNewTokens: n, NumBeams: 27, LengthPenalty: 0, EarlyStopping: EarlyNever, EOS: []int32{0}}
	slots := make([]int, 27)
	for i := range slots {
		slots[i] = i
	}
	res, err := Run(m, p, []Row{{Slots: slots}}, m.first(m.prefill(0, []int32{1})))
	if err != nil {
		t.Fatal(err)
	}
	// enumerate every sequence: it ends at the first EOS or after n tokens
	best, bestSeq := math.Inf(-1), []int32(nil)
	ls := make([]float32, v)
	var walk func(seq []int32, sum float32)
	walk = func(seq []int32, sum float32) {
		gen := seq[1:]
		if len(gen) == n {
			if float64(sum) > best {
				best, bestSeq = float64(sum), append([]int32(nil), gen...)
			}
			return
		}
		logSoftmax(ls, m.logits(seq))
		scores := append([]float32(nil), ls...)
		for tok := int32(0); tok < v; tok++ {
			s := sum + scores[tok]
			if tok == 0 {
				if float64(s) > best {
					best, bestSeq = float64(s), append([]int32(nil), gen...)
				}
				continue
			}
			walk(append(slices.Clip(seq), tok), s)
		}
	}
	walk([]int32{1}, 0)
	if !slices.Equal(res[0].Tokens, bestSeq) || math.Abs(res[0].Score-best) > 1e-5 {
		t.Errorf("beam search %v (%v), exhaustive best %v (%v)", res[0].Tokens, res[0].Score, bestSeq, best)
	}
}

// TestProcessors: the edits a step's processors make, applied on the device, for two
// rows of one logits tensor (so the flat indices of the second row are offset).
func TestProcessors(t *testing.T) {
	c := native.NewCtx(1)
	defer c.Close()
	apply := func(p Params, ctxs [][]int32, gen int, rows ...[]float32) []float32 {
		var e edits
		var all []float32
		for _, r := range rows {
			all = append(all, r...)
		}
		x := c.Upload(all, len(rows), len(rows[0]))
		for i, ctx := range ctxs {
			e.add(p, i*len(rows[0]), len(rows[0]), ctx, gen)
		}
		e.apply(c, x, p)
		return c.ToHost(x)
	}
	p := Params{RepetitionPenalty: 2}
	got := apply(p, [][]int32{{0, 1, 1}, {3}}, 0, []float32{2, -2, 1, 0.5}, []float32{2, -2, 1, 0.5})
	if !slices.Equal(got, []float32{1, -4, 1, 0.5, 2, -2, 1, 0.25}) {
		t.Errorf("repetition penalty: %v", got)
	}
	// n=2: after "5 6 ... 5", 6 is banned; n=3: after "5 6 7 5 6", 7 is banned
	if b := bannedNgramTokens([]int32{5, 6, 1, 5}, 2); !slices.Equal(b, []int32{6}) {
		t.Errorf("2-gram ban: %v", b)
	}
	if b := bannedNgramTokens([]int32{5, 6, 7, 5, 6}, 3); !slices.Equal(b, []int32{7}) {
		t.Errorf("3-gram ban: %v", b)
	}
	if b := bannedNgramTokens([]int32{5}, 3); b != nil {
		t.Errorf("short context: %v", b)
	}
	p = Params{NoRepeatNgramSize: 2}
	got = apply(p, [][]int32{{1, 2, 1}}, 0, []float32{0, 5, 5, 5})
	if !math.IsInf(float64(got[2]), -1) || got[1] != 5 {
		t.Errorf("2-gram ban applied: %v", got)
	}
	p = Params{MinNewTokens: 2, EOS: []int32{1, 3}}
	sc := apply(p, [][]int32{nil}, 1, []float32{0, 5, 0, 5})
	if !math.IsInf(float64(sc[1]), -1) || !math.IsInf(float64(sc[3]), -1) {
		t.Errorf("min new tokens: %v", sc)
	}
	sc = apply(p, [][]int32{nil}, 2, []float32{0, 5, 0, 5})
	if sc[1] != 5 {
		t.Errorf("min new tokens reached, EOS still masked: %v", sc)
	}
}

func TestSamplingWarpers(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var w sampler
	// top_k 1 is greedy
	for range 20 {
		s := []float32{0.1, 3, 2.9, -1}
		if tok := w.sample(s, Params{TopK: 1, TopP: 1, Temperature: 1}, r); tok != 1 {
			t.Fatalf("top-k 1 drew %d", tok)
		}
	}
	// top_p keeps the smallest set with mass >= p: probs ~ [0.64, 0.24, 0.09, 0.03]
	counts := map[int32]int{}
	for range 2000 {
		s := []float32{3, 2, 1, 0}
		counts[w.sample(s, Params{TopP: 0.85, Temperature: 1}, r)]++
	}
	if counts[2] > 0 || counts[3] > 0 || counts[0] == 0 || counts[1] == 0 {
		t.Errorf("top-p 0.85 drew %v", counts)
	}
	// a forbidden token is never drawn
	for range 200 {
		s := []float32{negInf, 0, 0}
		if w.sample(s, Params{TopP: 1, Temperature: 1}, r) == 0 {
			t.Fatal("drew a -inf token")
		}
	}
}

func TestSamplingIsSeeded(t *testing.T) {
	run := func(seed uint64) []int32 {
		m := newToy(t, 20, 1)
		p := Defaults(15)
		p.DoSample = true
		res, err := Run(m, p, []Row{{Slots: []int{0}, Seed: seed}}, m.first(m.prefill(0, []int32{1})))
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Tokens
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different tokens: %v %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same 15 tokens: %v", a)
	}
}

func TestValidate(t *testing.T) {
	m := newToy(t, 5, 2)
	lg := m.first(m.prefill(0, []int32{1}))
	bad := []Params{
		{MaxNewTokens: 0, NumBeams: 1},
		{MaxNewTokens: 5, NumBeams: 0},
		{MaxNewTokens: 5, NumBeams: 2, DoSample: true},
		{MaxNewTokens: 5, NumBeams: 1, TopP: 1.5},
		{MaxNewTokens: 5, NumBeams: 1, MinNewTokens: 6},
		{MaxNewTokens: 5, NumBeams: 1, EOS: []int32{9}},
	}
	for _, p := range bad {
		if _, err := Run(m, p, []Row{{Slots: []int{0}}}, lg); !errors.Is(err, ErrParams) {
			t.Errorf("%+v: err %v, want ErrParams", p, err)
		}
	}
	if _, err := Run(m, Defaults(3), []Row{{Slots: []int{0, 1}}}, lg); !errors.Is(err, ErrParams) {
		t.Errorf("2 slots for 1 beam: %v", err)
	}
	if _, err := Run(m, Defaults(3), []Row{{Slots: []int{0}}, {Slots: []int{1}}}, lg); !errors.Is(err, ErrParams) {
		t.Errorf("one row of logits for two rows: %v", err)
	}
}
