package eval

import (
	"fmt"
	"strings"
	"testing"
)

func TestCountScripts(t *testing.T) {
	s := CountScripts([]string{
		"이 파란색 청바지는 면으로 만든 슬림핏 바지입니다.", // Hangul
		"나이키 GORE-TEX 방수 자켓입니다",        // Hangul majority, a Latin brand
		"A navy wool coat, 100% wool.", // Latin
		"Slim fit 청바지",                 // Latin majority
		"ジーンズ",                         // neither
		"12345 !!!",                    // no letters: not counted as non-Latin
	})
	if s.Texts != 6 || s.NonLatin != 3.0/6 || s.Hangul != 2.0/6 {
		t.Errorf("CountScripts = %+v", s)
	}
	if CountScripts(nil) != (Scripts{}) {
		t.Error("no texts")
	}
}

// A dataset whose texts are mostly Hangul is scored, with a warning on the callback and
// in both reports; a dataset of English texts gets none.
func TestRunWarnsAboutTextsInHangul(t *testing.T) {
	n := 0
	ko := goodProducts("k", 10, 2, func(id string) string {
		if n++; n <= 7 {
			return id + ": 부드러운 기모 안감의 슬림핏 청바지입니다"
		}
		return id + ": soft slim fit jeans"
	})
	en := goodProducts("e", 10, 2, func(id string) string { return id + ": soft slim fit jeans" })
	var warned []string
	cfg := Config{
		Datasets: []Dataset{{Name: "english", Manifest: writeDataset(t, t.TempDir(), en)}, {Name: "korean", Manifest: writeDataset(t, t.TempDir(), ko)}},
		Products: 10, Bootstrap: 20, Warn: func(w string) { warned = append(warned, w) },
	}
	rep := runEval(t, cfg, &fakeEmbedder{})
	if len(warned) != 1 || !strings.HasPrefix(warned[0], "dataset korean: 70% of its 10 texts are mostly not in Latin script (70% Hangul)") {
		t.Fatalf("warnings %q", warned)
	}
	if d := rep.Datasets[1]; d.Scripts.NonLatin != 0.7 || d.Scripts.Hangul != 0.7 || len(d.Warnings) != 1 || rep.Datasets[0].Warnings != nil || d.Used != 10 {
		t.Errorf("korean: %+v %q", d.Scripts, d.Warnings)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Markdown(), "## Warnings\n\n- **warning**: "+warned[0]) {
		t.Errorf("report warnings %q; markdown:\n%s", rep.Warnings, rep.Markdown())
	}
	if js := fmt.Sprint(rep.Datasets[0].Scripts); js != "{10 0 0}" {
		t.Errorf("english scripts %s", js)
	}
}
