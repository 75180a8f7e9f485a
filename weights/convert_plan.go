package weights

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PlanSummary counts a conversion plan, for the one-line report after a conversion.
type PlanSummary struct {
	Tensors int
	Types   map[string]int // tensors per stored type ("Q8_0": 288)
	Merged  int            // tensors with a LoRA delta folded in
	KeptF32 int            // 2-D weights left F32 because their rows are not whole blocks
	KeptWhy string
}

// SummarizePlan counts plan by stored type, merges and weights kept F32.
func SummarizePlan(plan []PlanItem) PlanSummary {
	s := PlanSummary{Tensors: len(plan), Types: map[string]int{}}
	for _, it := range plan {
		s.Types[it.To.String()]++
		if it.Merged {
			s.Merged++
		}
		if strings.HasPrefix(it.Reason, "dims not multiples") {
			s.KeptF32++
			s.KeptWhy = it.Reason
		}
	}
	return s
}

// String is "N (F16 x2, Q8_0 x3), M with LoRA merged, K 2-D weights kept F32 (why)".
func (s PlanSummary) String() string {
	var parts []string
	for k, v := range s.Types {
		parts = append(parts, fmt.Sprintf("%s x%d", k, v))
	}
	sort.Strings(parts)
	out := fmt.Sprintf("%d (%s)", s.Tensors, strings.Join(parts, ", "))
	if s.Merged > 0 {
		out += fmt.Sprintf(", %d with LoRA merged", s.Merged)
	}
	if s.KeptF32 > 0 {
		out += fmt.Sprintf(", %d 2-D weights kept F32 (%s)", s.KeptF32, s.KeptWhy)
	}
	return out
}

// DataBytes is the size of every tensor's stored data in src.
func (s *Source) DataBytes() int64 {
	var n int64
	for _, t := range s.Tensors() {
		n += int64(len(t.Data))
	}
	return n
}

// ConfigFor finds the config.json to store with the checkpoint at path: override when
// given, else the one src carries (a folder's, a GGUF's), else a config.json beside a
// single weights file. nil when there is none; an invalid one is an error.
func ConfigFor(path string, src *Source, override string) ([]byte, error) {
	config := src.Config()
	if override != "" {
		b, err := os.ReadFile(override)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", override, err)
		}
		config = b
	} else if config == nil {
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "config.json")); err == nil {
				config = b
			}
		}
	}
	if config != nil && !json.Valid(config) {
		return nil, fmt.Errorf("the config.json for %s is not valid JSON", path)
	}
	return config, nil
}

// DetectArchitecture names the model for general.architecture: config.json's model_type
// when there is one (BLIP-2: "blip-2"), else Long-CLIP / CLIP recognised by their
// state-dict names (the released .pt files carry no config), else what a GGUF says.
func DetectArchitecture(src *Source, config []byte) string {
	var cfg struct {
		ModelType string `json:"model_type"`
	}
	if config != nil && json.Unmarshal(config, &cfg) == nil && cfg.ModelType != "" {
		return cfg.ModelType
	}
	switch {
	case src.Has("positional_embedding_res") && src.Has("visual.conv1.weight"):
		return "longclip"
	case src.Has("positional_embedding") && src.Has("visual.conv1.weight"):
		return "clip"
	}
	if a, ok := src.MetaString("general.architecture"); ok {
		return a
	}
	return "unknown"
}
