package demo

import (
	"path/filepath"
	"testing"

	"synth/vision/cliptok"
	"synth/vision/gpt2tok"
	"synth/weights"
)

func TestWriteBLIP2LoadsAsHFFolder(t *testing.T) {
	dir, lora := t.TempDir(), t.TempDir()
	if err := WriteBLIP2(dir, lora, DemoBLIP2, 3); err != nil {
		t.Fatal(err)
	}
	src, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if len(src.Config()) == 0 {
		t.Fatal("no config.json read from the folder")
	}
	tok, err := gpt2tok.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := src.Tensor("language_model.model.decoder.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("A navy cotton dress with side pockets.\n", true)
	if ids[0] != 2 {
		t.Fatalf("OPT encoding starts with %d, want BOS 2", ids[0])
	}
	for _, id := range ids {
		if int(id) >= emb.Shape[0] {
			t.Fatalf("token %d outside the %d-row embedding", id, emb.Shape[0])
		}
	}
	if len(ids) > 14 {
		t.Errorf("demo vocabulary did not learn the corpus words: %d tokens", len(ids))
	}
	ad, err := weights.LoadAdapter(lora)
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	if n := len(ad.Modules()); n != 2*DemoBLIP2.TextLayers+2*DemoBLIP2.QLayers {
		t.Fatalf("adapter wraps %d modules", n)
	}
	for _, m := range ad.Modules() {
		if !src.Has(m + ".weight") {
			t.Errorf("adapter module %s has no base weight", m)
		}
	}
}

func TestWriteLongCLIPLoadsAsTorchCheckpoint(t *testing.T) {
	dir := t.TempDir()
	pt, vocab := filepath.Join(dir, "LongCLIP-demo.pt"), filepath.Join(dir, "bpe.txt.gz")
	if err := WriteLongCLIP(pt, vocab, DemoLongCLIP, 5); err != nil {
		t.Fatal(err)
	}
	src, err := weights.Open(pt)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tok, err := cliptok.Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := src.Tensor("token_embedding.weight")
	if err != nil {
		t.Fatal(err)
	}
	if emb.Shape[0] != tok.VocabSize() {
		t.Fatalf("token_embedding has %d rows, tokenizer %d ids", emb.Shape[0], tok.VocabSize())
	}
	ids, _ := tok.Encode("This navy cotton dress", cliptok.Context)
	if len(ids) != 6 {
		t.Errorf("demo vocabulary: %d ids for four common words (want SOT + 4 + EOT)", len(ids))
	}
	pos, _ := src.Tensor("visual.positional_embedding")
	if g := 224 / DemoLongCLIP.Patch; pos.Shape[0] != g*g+1 {
		t.Fatalf("visual.positional_embedding %v", pos.Shape)
	}
}
