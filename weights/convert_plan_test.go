package weights

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummarizePlan(t *testing.T) {
	plan := []PlanItem{
		{Name: "a.weight", To: Q8_0, Merged: true},
		{Name: "b.weight", To: Q8_0},
		{Name: "c.weight", To: F32, Reason: "dims not multiples of 32"},
		{Name: "d.bias", To: F32, Reason: "bias"},
	}
	got := SummarizePlan(plan).String()
	want := "4 (F32 x2, Q8_0 x2), 1 with LoRA merged, 1 2-D weights kept F32 (dims not multiples of 32)"
	if got != want {
		t.Fatalf("summary\n got %q\nwant %q", got, want)
	}
}

func TestConfigForRefusesInvalidJSON(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "config.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &Source{}
	if _, err := ConfigFor(filepath.Join(dir, "model.safetensors"), src, bad); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("want a not-valid-JSON error, got %v", err)
	}
	if _, err := ConfigFor("x", src, filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("want an error naming the missing file, got %v", err)
	}
	if a := DetectArchitecture(src, []byte(`{"model_type":"blip-2"}`)); a != "blip-2" {
		t.Fatalf("architecture from config: %q", a)
	}
}
