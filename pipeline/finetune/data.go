package finetune

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"

	"synth/dataset"
	"synth/dataset/imagefile"
	"synth/internal/seed"
	"synth/vision/gpt2tok"
)

// example is one image-text pair of the manifest.
type example struct {
	product, image string // the product's id; the image as the manifest names it
	path           string // the image file
	ids            []int32
	noLoss         int // leading tokens that are never targets: BOS and the prompt
	sha            [32]byte
}

// Text says how a caption becomes token ids.
type Text struct {
	Field  string // the product field the caption comes from (dataset.TextFields)
	Prompt string // an optional prompt before the caption, not in the loss
	NoEOS  bool   // no EOS after the caption
	MaxLen int    // at most this many tokens, BOS and prompt included (the rest cut)
}

// tokens is BOS + prompt + caption + EOS as synth caption's generation sees it: the
// prompt is encoded alone (that is how caption --prompt starts), and the caption after
// it with a separating space when the prompt does not end in one.
func (t Text) tokens(tok *gpt2tok.Tokenizer, caption string, eos int32) (ids []int32, noLoss int, cut bool) {
	ids = tok.Encode(t.Prompt, true)
	noLoss = max(len(ids), 1)
	text := caption
	if t.Prompt != "" && !strings.HasSuffix(t.Prompt, " ") {
		text = " " + caption
	}
	ids = append(ids, tok.Encode(text, false)...)
	if !t.NoEOS {
		ids = append(ids, eos)
	}
	if t.MaxLen > 0 && len(ids) > t.MaxLen {
		ids, cut = ids[:t.MaxLen], true
	}
	return ids, noLoss, cut
}

// corpus is the manifest's examples, split into training and validation sets by
// product.
type corpus struct {
	train, val []example
	products   int
	truncated  int // examples cut at MaxLen
	skipped    int // products without text or images
}

// readCorpus reads the manifest: one example per image of each product with text; a
// seeded fraction of the products (rounded) is held out for validation, so no product
// is in both sets.
func readCorpus(path string, t Text, tok *gpt2tok.Tokenizer, eos int32, valFraction float64, runSeed uint64) (*corpus, error) {
	m, err := dataset.ReadManifest(path)
	if err != nil {
		return nil, err
	}
	c := &corpus{}
	var byProduct [][]example
	for _, p := range m.Products {
		text, ok := p.Field(t.Field)
		if !ok {
			return nil, fmt.Errorf("finetune: --text-field %q: want one of %s", t.Field, strings.Join(dataset.TextFields, ", "))
		}
		text = strings.TrimSpace(text)
		if text == "" || len(p.Images) == 0 {
			c.skipped++
			continue
		}
		ids, noLoss, cut := t.tokens(tok, text, eos)
		if len(ids) <= noLoss {
			return nil, fmt.Errorf("finetune: %s: product %q: --max-length %d leaves no caption token after the prompt", path, p.ID, t.MaxLen)
		}
		var exs []example
		for _, img := range p.Images {
			exs = append(exs, example{product: p.ID, image: img, path: m.ImagePath(img), ids: ids, noLoss: noLoss})
			if cut {
				c.truncated++
			}
		}
		byProduct = append(byProduct, exs)
	}
	c.products = len(byProduct)
	if c.products == 0 {
		return nil, fmt.Errorf("finetune: %s: no product has both images and a %q text", path, t.Field)
	}
	nVal := int(math.Round(valFraction * float64(c.products)))
	if nVal >= c.products {
		return nil, fmt.Errorf("finetune: --val-fraction %g leaves no product of %d to train on", valFraction, c.products)
	}
	if valFraction > 0 && nVal == 0 {
		slog.Warn("finetune: --val-fraction of so few products holds out none: no validation loss", "val_fraction", valFraction, "products", c.products)
	}
	order := rand.New(rand.NewPCG(seed.Item(runSeed, "val-split"), 0)).Perm(c.products)
	for i, j := range order {
		if i < nVal {
			c.val = append(c.val, byProduct[j]...)
		}
	}
	// training examples keep the manifest's order (the epochs shuffle them)
	isVal := make([]bool, c.products)
	for _, j := range order[:nVal] {
		isVal[j] = true
	}
	for j, exs := range byProduct {
		if !isVal[j] {
			c.train = append(c.train, exs...)
		}
	}
	return c, nil
}

// hashImages reads every image file once for its SHA-256 (the prefix cache's key), and
// fails on a file that cannot be read.
func hashImages(exs []example, lim imagefile.Limits, progress func(done int)) error {
	seen := map[string][32]byte{}
	for i := range exs {
		e := &exs[i]
		if s, ok := seen[e.path]; ok {
			e.sha = s
			continue
		}
		b, err := imagefile.ReadFile(e.path, lim)
		if err != nil {
			return fmt.Errorf("finetune: product %q image %s: %w", e.product, e.image, err)
		}
		e.sha = sha256.Sum256(b)
		seen[e.path] = e.sha
		if progress != nil {
			progress(i + 1)
		}
	}
	return nil
}

// epochOrder is the order of the training examples in an epoch: a permutation that
// depends on the run's seed and the epoch only, so a resumed run sees the same data.
func epochOrder(n int, runSeed uint64, epoch int) []int {
	return rand.New(rand.NewPCG(seed.Item(runSeed, "epoch", fmt.Sprint(epoch)), 0)).Perm(n)
}
