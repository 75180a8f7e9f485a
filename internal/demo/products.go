package demo

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"synth/dataset"
)

// garment is what one product is drawn and described from.
type garment struct {
	Category string // t-shirt, dress, trousers, skirt, jacket
	Color    named
	Accent   named
	Pattern  string // solid, stripes, dots, checks
	Material string
	Fit      string
	Detail   string
}

type named struct {
	Name string
	C    color.NRGBA
}

var (
	categories = []string{"t-shirt", "dress", "trousers", "skirt", "jacket"}
	colors     = []named{
		{"navy", color.NRGBA{28, 40, 84, 255}}, {"ivory", color.NRGBA{240, 234, 214, 255}},
		{"red", color.NRGBA{190, 30, 45, 255}}, {"sage green", color.NRGBA{150, 170, 130, 255}},
		{"black", color.NRGBA{25, 25, 25, 255}}, {"sky blue", color.NRGBA{120, 180, 230, 255}},
		{"mustard", color.NRGBA{210, 165, 40, 255}}, {"beige", color.NRGBA{205, 185, 150, 255}},
		{"pink", color.NRGBA{235, 150, 175, 255}}, {"charcoal", color.NRGBA{70, 72, 76, 255}},
	}
	patterns  = []string{"solid", "stripes", "dots", "checks"}
	materials = []string{"cotton", "linen", "wool blend", "denim", "viscose", "polyester"}
	fits      = []string{"slim fit", "relaxed fit", "oversized fit", "regular fit"}
	details   = []string{"side pockets", "a round neckline", "a button front", "an elastic waist", "a v-neck", "a belted waist"}
)

func drawGarment(r *rand.Rand) garment {
	g := garment{
		Category: categories[r.IntN(len(categories))],
		Color:    colors[r.IntN(len(colors))],
		Pattern:  patterns[r.IntN(len(patterns))],
		Material: materials[r.IntN(len(materials))],
		Fit:      fits[r.IntN(len(fits))],
		Detail:   details[r.IntN(len(details))],
	}
	for g.Accent = colors[r.IntN(len(colors))]; g.Accent.Name == g.Color.Name; g.Accent = colors[r.IntN(len(colors))] {
	}
	return g
}

func (g garment) patternWords() string {
	switch g.Pattern {
	case "stripes":
		return g.Accent.Name + " stripes"
	case "dots":
		return g.Accent.Name + " polka dots"
	case "checks":
		return g.Accent.Name + " checks"
	}
	return "a solid finish"
}

// Keywords is the keyword-list style of the foreign data ("blue jeans, cotton, slim fit").
func (g garment) Keywords() []string {
	kw := []string{g.Color.Name + " " + g.Category, g.Material, g.Fit, g.Detail}
	if g.Pattern != "solid" {
		kw = append(kw, g.Pattern)
	}
	return kw
}

// Description is a long sentence description in the style of the source data.
func (g garment) Description() string {
	return fmt.Sprintf("This %s %s is made of soft %s with %s. It has a %s that sits comfortably "+
		"and comes with %s, so it is easy to style every day. The %s colour pairs well with neutral "+
		"basics, and the fabric keeps its shape after washing.",
		g.Color.Name, g.Category, g.Material, g.patternWords(), g.Fit, g.Detail, g.Color.Name)
}

// Korean names of the garment attributes, for the Korean source descriptions that the
// demo's translate step turns into English.
var korean = map[string]string{
	"t-shirt": "티셔츠", "dress": "원피스", "trousers": "바지", "skirt": "치마", "jacket": "재킷",
	"navy": "네이비", "ivory": "아이보리", "red": "빨간색", "sage green": "세이지 그린", "black": "검정색",
	"sky blue": "하늘색", "mustard": "머스타드", "beige": "베이지", "pink": "분홍색", "charcoal": "차콜",
	"cotton": "면", "linen": "린넨", "wool blend": "울 혼방", "denim": "데님", "viscose": "비스코스", "polyester": "폴리에스터",
	"slim fit": "슬림핏", "relaxed fit": "릴랙스핏", "oversized fit": "오버핏", "regular fit": "레귤러핏",
	"side pockets": "사이드 포켓", "a round neckline": "라운드 넥", "a button front": "앞 단추 여밈",
	"an elastic waist": "밴딩 허리", "a v-neck": "브이넥", "a belted waist": "벨트 허리",
}

// Glossary is the demo's translation glossary (Korean TAB English): the fashion terms of
// the Korean descriptions whose translation a store would fix.
func Glossary() string {
	var b strings.Builder
	b.WriteString("# synth demo glossary: Korean\tEnglish\n")
	for _, en := range append(append(append([]string{}, materials...), fits...), "dress", "jacket") {
		fmt.Fprintf(&b, "%s\t%s\n", korean[en], en)
	}
	return b.String()
}

// DescriptionKo is the product's description in Korean, with a length in centimetres
// and a fibre percentage: the numbers a faithful translation keeps.
func (g garment) DescriptionKo(length int) string {
	pattern := "무지 디자인입니다"
	switch g.Pattern {
	case "stripes":
		pattern = korean[g.Accent.Name] + " 스트라이프가 들어가 있습니다"
	case "dots":
		pattern = korean[g.Accent.Name] + " 도트 무늬가 있습니다"
	case "checks":
		pattern = korean[g.Accent.Name] + " 체크 무늬입니다"
	}
	cat, fit, detail := korean[g.Category], korean[g.Fit], korean[g.Detail]
	return fmt.Sprintf("부드러운 %s 소재의 %s %s%s, %s. %s%s 편안하게 떨어지며 %s%s 있어 매일 입기 좋습니다. "+
		"세탁 후에도 형태가 잘 유지됩니다. 총장 %dcm, %s 100%%.",
		korean[g.Material], korean[g.Color.Name], cat, josa(cat, "으로", "로"), pattern, fit, josa(fit, "으로", "로"),
		detail, josa(detail, "이", "가"), length, korean[g.Material])
}

// josa picks the form of a particle that follows word: after a final consonant
// (batchim) or after a vowel; 으로 after ㄹ is 로.
func josa(word, afterConsonant, afterVowel string) string {
	r, _ := utf8.DecodeLastRuneInString(word)
	if r < 0xAC00 || r > 0xD7A3 {
		return afterVowel
	}
	switch tail := (r - 0xAC00) % 28; {
	case tail == 0, tail == 8 && afterConsonant == "으로": // no final consonant; ㄹ takes 로
		return afterVowel
	}
	return afterConsonant
}

// silhouette is a polygon in unit coordinates (x right, y down, garment within 0..1).
func (g garment) silhouette() [][2]float64 {
	switch g.Category {
	case "t-shirt":
		return [][2]float64{{.3, .1}, {.42, .1}, {.5, .16}, {.58, .1}, {.7, .1}, {.95, .3}, {.85, .42}, {.75, .36}, {.75, .92}, {.25, .92}, {.25, .36}, {.15, .42}, {.05, .3}}
	case "dress":
		return [][2]float64{{.38, .05}, {.45, .05}, {.5, .12}, {.55, .05}, {.62, .05}, {.66, .35}, {.88, .95}, {.12, .95}, {.34, .35}}
	case "trousers":
		return [][2]float64{{.25, .05}, {.75, .05}, {.8, .95}, {.58, .95}, {.5, .35}, {.42, .95}, {.2, .95}}
	case "skirt":
		return [][2]float64{{.32, .15}, {.68, .15}, {.9, .85}, {.1, .85}}
	default: // jacket
		return [][2]float64{{.28, .08}, {.44, .08}, {.5, .3}, {.56, .08}, {.72, .08}, {.95, .35}, {.9, .9}, {.78, .9}, {.78, .45}, {.76, .95}, {.24, .95}, {.22, .45}, {.22, .9}, {.1, .9}, {.05, .35}}
	}
}

// render draws the garment on a w x h canvas; view varies scale, offset and background
// between the images of one product.
func (g garment) render(w, h int, view int, r *rand.Rand) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	bg := uint8(225 + r.IntN(25))
	tint := uint8(r.IntN(12))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = bg, bg-tint/2, bg-tint, 255
	}
	scale := 0.78 + 0.12*float64(view%3)/2 + 0.04*r.Float64()
	ox := (1-scale)/2 + 0.05*(r.Float64()-0.5)
	oy := (1-scale)/2 + 0.05*(r.Float64()-0.5)
	poly := g.silhouette()
	side := math.Min(float64(w), float64(h))
	px := (float64(w) - side) / 2
	py := (float64(h) - side) / 2
	pts := make([][2]float64, len(poly))
	for i, p := range poly {
		pts[i] = [2]float64{px + (ox+p[0]*scale)*side, py + (oy+p[1]*scale)*side}
	}
	period := 10 + r.IntN(8)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if !inside(pts, float64(x)+0.5, float64(y)+0.5) {
				continue
			}
			c := g.Color.C
			if g.patterned(x, y, period) {
				c = g.Accent.C
			}
			// soft vertical shading so the fabric is not flat
			shade := 0.85 + 0.15*math.Sin(float64(x)/float64(w)*math.Pi)
			img.SetNRGBA(x, y, color.NRGBA{uint8(float64(c.R) * shade), uint8(float64(c.G) * shade), uint8(float64(c.B) * shade), 255})
		}
	}
	return img
}

func (g garment) patterned(x, y, period int) bool {
	switch g.Pattern {
	case "stripes":
		return (y/(period/2))%2 == 0
	case "dots":
		cx, cy := x%period-period/2, y%period-period/2
		return cx*cx+cy*cy <= (period*period)/12
	case "checks":
		return ((x/period)+(y/period))%2 == 0
	}
	return false
}

// inside is the even-odd point-in-polygon test.
func inside(poly [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a[1] > y) != (b[1] > y) && x < (b[0]-a[0])*(y-a[1])/(b[1]-a[1])+a[0] {
			in = !in
		}
	}
	return in
}

// Sizes of the three product sets the demo draws.
type Sizes struct {
	Source, Unlabeled, Foreign, ImagesPerProduct int
}

// DefaultSizes keep `make demo` within its time budget on 2 cores.
var DefaultSizes = Sizes{Source: 24, Unlabeled: 12, Foreign: 12, ImagesPerProduct: 2}

// Data is where WriteData put the demo's manifests.
type Data struct {
	Source string // products with images and long descriptions (the reference set)
	// SourceKo is the same products described in Korean (the paper's source language),
	// and Glossary the terms for their translation (TSV).
	SourceKo  string
	Glossary  string
	Unlabeled string // products with images only (to caption)
	Foreign   string // products with images and keyword lists (to rewrite)
	Examples  string // few-shot style examples {keywords, text}
}

// WriteData draws the product sets into dir (images under dir/img) and writes their
// manifests. It is deterministic for a seed.
func WriteData(dir string, sizes Sizes, seed uint64) (Data, error) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	imgDir := filepath.Join(dir, "img")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return Data{}, fmt.Errorf("demo: %w", err)
	}
	d := Data{
		Source:    filepath.Join(dir, "source.jsonl"),
		SourceKo:  filepath.Join(dir, "source_ko.jsonl"),
		Glossary:  filepath.Join(dir, "glossary.tsv"),
		Unlabeled: filepath.Join(dir, "unlabeled.jsonl"),
		Foreign:   filepath.Join(dir, "foreign.jsonl"),
		Examples:  filepath.Join(dir, "style_examples.jsonl"),
	}
	sets := []struct {
		path, prefix string
		n            int
		text, kw     bool
	}{
		{d.Source, "src", sizes.Source, true, false},
		{d.Unlabeled, "unl", sizes.Unlabeled, false, false},
		{d.Foreign, "for", sizes.Foreign, false, true},
	}
	var koLines []any
	for _, set := range sets {
		var lines []any
		for i := 0; i < set.n; i++ {
			p, g, err := drawProduct(r, imgDir, fmt.Sprintf("%s%03d", set.prefix, i), sizes.ImagesPerProduct, set.text, set.kw)
			if err != nil {
				return Data{}, err
			}
			if set.text {
				ko := p
				ko.Text, ko.Category, ko.Lang = g.DescriptionKo(60+(7*i)%50), korean[g.Category], "ko"
				koLines = append(koLines, ko)
			}
			lines = append(lines, p)
		}
		if err := writeJSONL(set.path, lines); err != nil {
			return Data{}, err
		}
	}
	if err := writeJSONL(d.SourceKo, koLines); err != nil {
		return Data{}, err
	}
	if err := os.WriteFile(d.Glossary, []byte(Glossary()), 0o644); err != nil {
		return Data{}, fmt.Errorf("demo: %w", err)
	}
	var ex []any
	for i := 0; i < 4; i++ {
		g := drawGarment(r)
		ex = append(ex, map[string]any{"keywords": g.Keywords(), "text": g.Description()})
	}
	if err := writeJSONL(d.Examples, ex); err != nil {
		return Data{}, err
	}
	return d, nil
}

// drawProduct draws one garment and its product: images rendered into imgDir (every
// second one a JPEG), the English description when text is set, keywords and a title
// when kw is.
func drawProduct(r *rand.Rand, imgDir, id string, images int, text, kw bool) (dataset.Product, garment, error) {
	g := drawGarment(r)
	p := dataset.Product{ID: id, Category: g.Category, Lang: "en"}
	for v := 0; v < images; v++ {
		w, h := 224+32*r.IntN(4), 256+32*r.IntN(4)
		rel, err := saveImage(imgDir, fmt.Sprintf("%s_%d", id, v), g.render(w, h, v, r), v%2 == 0)
		if err != nil {
			return p, g, err
		}
		p.Images = append(p.Images, "img/"+rel)
	}
	if text {
		p.Text = g.Description()
	}
	if kw {
		p.Keywords = g.Keywords()
		p.Title = titleCase(g.Color.Name + " " + g.Category)
	}
	return p, g, nil
}

// WriteSample draws n products that have everything every model reads (images, an
// English description, keywords and a title) into dir (images under dir/img) and writes
// their manifest, sample.jsonl, whose path it returns: the sample of a quantization
// benchmark of all three models. It is deterministic for a seed.
func WriteSample(dir string, n, imagesPerProduct int, seed uint64) (string, error) {
	r := rand.New(rand.NewPCG(seed, 0x5a3e))
	imgDir := filepath.Join(dir, "img")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	var lines []any
	for i := 0; i < n; i++ {
		p, _, err := drawProduct(r, imgDir, fmt.Sprintf("smp%03d", i), imagesPerProduct, true, true)
		if err != nil {
			return "", err
		}
		lines = append(lines, p)
	}
	path := filepath.Join(dir, "sample.jsonl")
	return path, writeJSONL(path, lines)
}

func saveImage(dir, name string, img image.Image, asJPEG bool) (string, error) {
	file := name + ".png"
	if asJPEG {
		file = name + ".jpg"
	}
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	if asJPEG {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 90})
	} else {
		err = png.Encode(f, img)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("demo: write %s: %w", file, err)
	}
	return file, nil
}

// titleCase capitalises each space-separated ASCII word.
func titleCase(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

func writeJSONL(path string, recs []any) error {
	var b strings.Builder
	for _, r := range recs {
		js, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
