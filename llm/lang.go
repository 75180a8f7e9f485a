package llm

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultSystem is the instruction of the English rewrite prompt: what to write, in which
// style (the examples'), and to use only the given attributes.
const DefaultSystem = "You write product descriptions for a fashion store. " +
	"Given a product's keywords, and its category and title when they are known, write one long, " +
	"fluent description of the product in full sentences, in the same style, tone and length as " +
	"the example descriptions. Use only the attributes that are given: do not invent colours, " +
	"materials, patterns, sizes, brands or any other detail that is not listed. " +
	"Reply with the description only, without a heading, a list or a comment."

// DefaultSystemKo is the same instruction for descriptions written in Korean, in Korean:
// the paper's domain is Korean fashion, whose style guide is the long Korean description.
const DefaultSystemKo = "당신은 패션 쇼핑몰의 상품 설명을 쓰는 작가입니다. " +
	"상품의 키워드와, 알려진 경우 카테고리와 상품명이 주어지면, 예시 설명과 같은 문체, 어조, 길이로 " +
	"상품을 설명하는 길고 자연스러운 문장을 한국어로 쓰세요. 주어진 속성만 사용하고, 목록에 없는 " +
	"색상, 소재, 무늬, 사이즈, 브랜드나 그 밖의 어떤 세부 사항도 지어내지 마세요. " +
	"제목, 목록, 덧붙이는 말 없이 설명만 답하세요."

// RewriteLangs are the languages the rewrite prompt is written for.
var RewriteLangs = []string{"en", "ko"}

func rewriteLang(lang string) (string, error) {
	if lang == "" {
		return "en", nil
	}
	if !slices.Contains(RewriteLangs, lang) {
		return "", fmt.Errorf("llm: rewrite language %q: want one of %s", lang, strings.Join(RewriteLangs, ", "))
	}
	return lang, nil
}

// SystemPrompt is the built-in rewrite instruction for lang ("en" or "ko").
func SystemPrompt(lang string) string {
	if lang == "ko" {
		return DefaultSystemKo
	}
	return DefaultSystem
}

// turnLabels name the lines of a rewrite user turn.
var turnLabels = map[string]struct{ category, title, keywords string }{
	"en": {"Category", "Title", "Keywords"},
	"ko": {"카테고리", "상품명", "키워드"},
}

// DefaultExamples are built-in few-shot pairs for lang, used when the caller gives no
// style examples: a handful, the paper's setting. They show the style only; a run that
// means to follow a dataset's style takes its examples from it (ExamplesFrom).
func DefaultExamples(lang string) []Example {
	if lang == "ko" {
		return slices.Clone(examplesKo)
	}
	return slices.Clone(examplesEn)
}

var examplesEn = []Example{
	{Keywords: []string{"blue jeans", "cotton", "slim fit"}, Text: "These slim-fit blue jeans are cut from soft, breathable cotton denim, with a clean modern line from hip to ankle that pairs as easily with sneakers as with boots."},
	{Keywords: []string{"wool", "coat", "double breasted", "long length"}, Text: "This long double-breasted coat is tailored in warm wool, with a structured shoulder and a generous length that keeps out the cold on winter days in the city."},
	{Keywords: []string{"red", "linen", "midi dress", "puff sleeves", "v-neck"}, Text: "A red linen midi dress with soft puff sleeves and a flattering v-neck, light and airy for warm summer afternoons and easy to dress up for an evening out."},
	{Keywords: []string{"black", "leather", "ankle boots", "block heel", "side zip"}, Text: "These black leather ankle boots stand on a steady block heel and close with a side zip, a versatile pair that carries an outfit from the office to the weekend."},
	{Keywords: []string{"white", "cotton", "t-shirt", "crew neck", "relaxed fit"}, Text: "A white cotton t-shirt with a classic crew neck and a relaxed fit, soft against the skin and made to be worn on its own or layered under a jacket."},
	{Keywords: []string{"green", "silk", "scarf", "floral print"}, Text: "This green silk scarf is printed with a delicate floral pattern and has a smooth, fluid drape that adds a touch of colour to a coat or a plain blouse."},
}

var examplesKo = []Example{
	{Keywords: []string{"파란색 청바지", "면", "슬림핏"}, Text: "이 파란색 청바지는 부드럽고 통기성이 좋은 면 데님으로 만들어졌으며, 슬림핏으로 엉덩이부터 발목까지 깔끔하게 떨어지는 실루엣이 운동화와도 부츠와도 잘 어울립니다."},
	{Keywords: []string{"울", "코트", "더블 브레스티드", "롱 기장"}, Text: "따뜻한 울 소재로 재단한 롱 기장의 더블 브레스티드 코트로, 각이 잡힌 어깨 라인과 넉넉한 길이가 도시의 추운 겨울날에도 찬 바람을 든든하게 막아 줍니다."},
	{Keywords: []string{"블랙", "가죽", "앵클 부츠", "블록 힐", "사이드 지퍼"}, Text: "블랙 가죽 앵클 부츠는 안정감 있는 블록 힐에 사이드 지퍼로 편하게 신고 벗을 수 있어, 출근길부터 주말 나들이까지 어떤 차림에도 두루 어울리는 실용적인 한 켤레입니다."},
	{Keywords: []string{"아이보리", "기모", "맨투맨", "오버핏"}, Text: "아이보리 색상의 오버핏 맨투맨으로, 안쪽에 부드러운 기모를 더해 쌀쌀한 날에도 포근하게 입을 수 있고 청바지나 슬랙스와도 편하게 매치하기 좋습니다."},
}

// languages are the codes `synth translate` accepts, with the name the prompt uses and
// whether the language is written in Latin script (the faithfulness check then cannot
// ask for the source's Latin-script words to survive: they are its ordinary words).
var languages = map[string]struct {
	name  string
	latin bool
}{
	"ko": {"Korean", false}, "en": {"English", true}, "ja": {"Japanese", false}, "zh": {"Chinese", false},
	"fr": {"French", true}, "de": {"German", true}, "es": {"Spanish", true}, "it": {"Italian", true},
	"pt": {"Portuguese", true}, "vi": {"Vietnamese", true}, "id": {"Indonesian", true},
	"th": {"Thai", false}, "ru": {"Russian", false},
}

// LanguageName is the English name of a language code, or "" when the code is unknown.
func LanguageName(code string) string { return languages[code].name }

// LanguageCodes lists the codes LanguageName knows, sorted.
func LanguageCodes() []string {
	var out []string
	for c := range languages {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
