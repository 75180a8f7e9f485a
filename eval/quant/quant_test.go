package quant

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"synth/eval"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) {
		t.Errorf("%s = %.10g, want %.10g (tolerance %g)", what, got, want, tol)
	}
}

func TestKLHandComputed(t *testing.T) {
	ls := func(x ...float32) []float64 { return LogSoftmax(nil, x) }
	// P = (1/2, 1/2), Q = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
	near(t, "KL(P||Q)", KL(ls(0, 0), ls(float32(math.Log(3)), 0)), 0.5*math.Log(4.0/3), 1e-7)
	// Reversed: 3/4 ln(3/2) + 1/4 ln(1/2).
	near(t, "KL(Q||P)", KL(ls(float32(math.Log(3)), 0), ls(0, 0)), 0.75*math.Log(1.5)+0.25*math.Log(0.5), 1e-7)
	near(t, "KL(P||P)", KL(ls(1, 2, 3), ls(1, 2, 3)), 0, 1e-15)
	// A shift of every logit is the same distribution.
	near(t, "KL(shifted)", KL(ls(1, 2, 3), ls(11, 12, 13)), 0, 1e-12)
	// A token P gives no mass adds nothing: P = (0, 1), Q = (1/2, 1/2): ln 2.
	near(t, "KL(P with a zero)", KL(ls(float32(math.Inf(-1)), 0), ls(0, 0)), math.Log(2), 1e-12)
	// Q gives no mass where P does: infinite.
	if kl := KL(ls(0, 0), ls(float32(math.Inf(-1)), 0)); !math.IsInf(kl, 1) {
		t.Errorf("KL to a zero probability = %g, want +Inf", kl)
	}
}

func TestNextTokenAgreement(t *testing.T) {
	var n NextToken
	n.Add([]float32{1, 2, 3}, []float32{1, 3, 2}) // argmax 2 vs 1
	n.Add([]float32{5, 1}, []float32{4, 1})       // both 0
	n.Add([]float32{2, 2}, []float32{2, 1})       // a tie picks the first: both 0
	if n.Positions != 3 {
		t.Fatalf("positions %d, want 3", n.Positions)
	}
	near(t, "top-1", n.Top1, 2.0/3, 1e-15)
	// Each position's KL by hand, from the softmax probabilities.
	kl := func(p, q []float64) float64 {
		var s float64
		for i := range p {
			s += p[i] * math.Log(p[i]/q[i])
		}
		return s
	}
	sm := func(x ...float64) []float64 {
		var z float64
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = math.Exp(v)
			z += out[i]
		}
		for i := range out {
			out[i] /= z
		}
		return out
	}
	k1 := kl(sm(1, 2, 3), sm(1, 3, 2))
	k2 := kl(sm(5, 1), sm(4, 1))
	k3 := kl(sm(2, 2), sm(2, 1))
	near(t, "KL mean", float64(n.KLMean), (k1+k2+k3)/3, 1e-12)
	near(t, "KL max", float64(n.KLMax), max(k1, k2, k3), 1e-12)
}

func TestChrFHandComputed(t *testing.T) {
	for _, c := range []struct {
		hyp, ref string
		want     float64
	}{
		{"abc", "abc", 100},
		{"a b c", "abc", 100}, // white space is not a character
		{"", "", 100},
		{"abc", "", 0},
		{"", "abc", 0},
		// 1-grams: 2 of 3 match both ways; 2-grams: ab matches of 2; 3-grams: none;
		// 4- to 6-grams: none on either side, left out. chrP = chrR = (2/3 + 1/2 + 0)/3.
		{"abc", "abd", 100 * 7.0 / 18},
		// 1-grams: hyp a x2, ref a x1: match 1, P 1/2, R 1; 2-grams: hyp aa, ref none:
		// P 0, R 0. chrP 1/4, chrR 1/2: F2 = 5 (1/4)(1/2) / (4/4 + 1/2) = 5/12.
		{"aa", "a", 100 * 5.0 / 12},
		{"Abc", "abc", -1}, // case counts: below 100
	} {
		got := ChrFScore([]string{c.hyp}, []string{c.ref})
		if c.want < 0 {
			if !(got < 100) {
				t.Errorf("chrF(%q, %q) = %g, want below 100", c.hyp, c.ref, got)
			}
			continue
		}
		near(t, "chrF("+c.hyp+", "+c.ref+")", got, c.want, 1e-9)
	}
	// A corpus sums the counts before dividing: 1-grams P 3/5, R 3/4; 2-grams P 1/3,
	// R 1/2; 3-grams 0, 0. chrP = (3/5 + 1/3)/3, chrR = (3/4 + 1/2)/3.
	p, r := (0.6+1.0/3)/3, (0.75+0.5)/3
	near(t, "corpus chrF", ChrFScore([]string{"abc", "aa"}, []string{"abd", "a"}), 100*5*p*r/(4*p+r), 1e-9)
	near(t, "corpus chrF literal", ChrFScore([]string{"abc", "aa"}, []string{"abd", "a"}), 39.01895206243033, 1e-9)
}

func TestRankAgreementHandComputed(t *testing.T) {
	a := []float64{1, 2, 3, 4, 5}
	b := []float64{5, 6, 7, 8, 7}
	if got, want := Ranks(b), []float64{1, 2, 3.5, 5, 3.5}; !slices.Equal(got, want) {
		t.Fatalf("Ranks(%v) = %v, want %v", b, got, want)
	}
	// Ranks of a 1..5, of b (1, 2, 3.5, 5, 3.5), both mean 3: sxy = 8, sxx = 10,
	// syy = 9.5: rho = 8 / sqrt(95).
	near(t, "Spearman", Spearman(a, b), 8/math.Sqrt(95), 1e-12)
	// 10 pairs: 8 concordant, 1 discordant (8 > 7), 1 tied in b: (8 - 1) / sqrt(10 * 9).
	near(t, "Kendall tau-b", KendallTauB(a, b), 7/math.Sqrt(90), 1e-12)
	rev := []float64{5, 4, 3, 2, 1}
	near(t, "Spearman reversed", Spearman(a, rev), -1, 1e-12)
	near(t, "Kendall reversed", KendallTauB(a, rev), -1, 1e-12)
	near(t, "Spearman monotone", Spearman(a, []float64{1, 10, 100, 1000, 10000}), 1, 1e-12)
	if v := Spearman(a, []float64{2, 2, 2, 2, 2}); !math.IsNaN(v) {
		t.Errorf("Spearman with a constant side = %g, want NaN", v)
	}
	if v := KendallTauB(a, []float64{2, 2, 2, 2, 2}); !math.IsNaN(v) {
		t.Errorf("Kendall with a constant side = %g, want NaN", v)
	}
}

func TestParetoFront(t *testing.T) {
	// size (lower better) against fidelity: (1, .5) (2, .9) (3, .8) dominated by (2, .9),
	// (4, 1).
	xs := []float64{4, 2, 3, 1}
	ys := []float64{1, 0.9, 0.8, 0.5}
	if got, want := ParetoFront(xs, ys, true), []int{3, 1, 0}; !slices.Equal(got, want) {
		t.Errorf("front (lower x) = %v, want %v", got, want)
	}
	// speed (higher better): (4, 1) beats everything.
	if got, want := ParetoFront(xs, ys, false), []int{0}; !slices.Equal(got, want) {
		t.Errorf("front (higher x) = %v, want %v", got, want)
	}
}

func TestReportFiles(t *testing.T) {
	ref := &eval.DatasetReport{AUC: 0.8}
	ref.Same.Mean, ref.Same.Var, ref.Diff.Mean, ref.Diff.Var = 0.3, 0.01, 0.1, 0.02
	lv := *ref
	lv.Same.Mean, lv.AUC = 0.31, 0.75
	ch := Table1Changes(ref, &lv)
	if len(ch) != 7 || ch[0].Name != "same: mean" || math.Abs(ch[0].Delta-0.01) > 1e-12 || math.Abs(ch[4].Delta+0.05) > 1e-12 || ch[1].Delta != 0 {
		t.Fatalf("Table1Changes = %+v", ch)
	}
	cost := func(mbytes int64, speed float64) *Cost {
		return &Cost{FileBytes: mbytes << 20, LoadSeconds: 0.1, Speed: speed, SpeedUnit: "images/s", Seconds: 1, PeakRSSBytes: 1 << 30}
	}
	r := &Report{Sample: "s.jsonl", Products: 3, Levels: []string{"f16", "q5_k"}, Device: "cpu", Threads: 2,
		Models: []Model{{
			Role: RoleEval, Name: "Long-CLIP", Path: "m.pt", Items: 3, ItemsAre: "products",
			Reference: Level{Level: "f32", Cost: cost(4, 10)},
			Levels: []Level{
				{Level: "f16", Cost: cost(2, 12), Stored: map[string]int{"f16": 4, "f32": 9},
					Embedding: &EmbeddingAgreement{All: CosineStats{Count: 9, Mean: 0.999, Min: 0.99}, Table1: ch, Spearman: Num(math.NaN()), KendallTauB: 0.5}},
				{Level: "q5_k", Skipped: "cannot write q5_k"},
			},
		}, {
			Role: RoleCaption, Name: "BLIP-2", Path: "blip", Items: 3, ItemsAre: "images",
			Reference: Level{Level: "f32", Cost: cost(8, 30)},
			Levels: []Level{{Level: "f16", Cost: cost(4, 33), NextToken: &NextToken{Positions: 10, KLMean: 0.001, KLMax: Num(math.Inf(1)), Top1: 0.9},
				Text: &TextAgreement{Items: 3, ExactMatch: 2.0 / 3, ChrF: 95}}},
		}},
	}
	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ReportMarkdown, ReportJSON, ParetoPNG(RoleEval), ParetoPNG(RoleCaption)} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	js, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("report.json does not read back: %v", err)
	}
	e := back.Models[0].Levels[0].Embedding
	if !math.IsNaN(float64(e.Spearman)) || e.KendallTauB != 0.5 || back.Models[0].Levels[1].Skipped == "" {
		t.Errorf("report.json round trip lost values: %+v", back.Models[0].Levels)
	}
	md, _ := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	for _, want := range []string{"## eval: Long-CLIP", "## caption: BLIP-2", "**q5_k**: cannot write q5_k", "| f16 | 10 |", "+0.010000", "pareto-eval.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}
