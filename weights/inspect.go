package weights

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Inspection is what a checkpoint holds, as `synth inspect` shows it (--json prints it;
// the field names are stable).
type Inspection struct {
	Path       string            `json:"path"`
	Format     string            `json:"format"`
	Files      []InspectedFile   `json:"files"`
	Config     json.RawMessage   `json:"config,omitempty"`
	Metadata   []InspectedMeta   `json:"metadata"`
	Tensors    []InspectedTensor `json:"tensors"`
	NumTensors int               `json:"num_tensors"`
	Params     int64             `json:"parameters"`
	Bytes      int64             `json:"tensor_bytes"`
	DTypes     map[string]int    `json:"dtypes"`
	Adapter    *InspectedAdapter `json:"adapter,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

type InspectedFile struct {
	Path    string `json:"path"`
	Bytes   int64  `json:"bytes"`
	Tensors int    `json:"tensors"`
}

type InspectedMeta struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"` // full value, or the first elements of a long array
	Len   int    `json:"len,omitempty"`   // arrays: element count
}

type InspectedTensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Bytes int    `json:"bytes"`
	File  string `json:"file,omitempty"` // sharded checkpoints only
}

type InspectedAdapter struct {
	R             int       `json:"r"`
	Alpha         float64   `json:"lora_alpha"`
	RSLoRA        bool      `json:"use_rslora"`
	TargetRegex   string    `json:"target_regex,omitempty"`
	TargetModules []string  `json:"target_modules,omitempty"`
	Modules       []string  `json:"modules"`
	Scales        []float64 `json:"scales"`
	Saved         []string  `json:"modules_to_save_tensors,omitempty"`
}

// MaxArrayShown: longer metadata arrays (vocabularies, merges) are summarised.
const MaxArrayShown = 16

// Inspect describes a checkpoint (folder, .safetensors, .pt/.bin, .gguf) or a PEFT
// adapter folder without loading its weights.
func Inspect(path string) (*Inspection, error) {
	r := &Inspection{Path: path, DTypes: map[string]int{}, Metadata: []InspectedMeta{}, Tensors: []InspectedTensor{}}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "adapter_config.json")); err == nil {
			// an adapter synth cannot load (DoRA, ...) is still worth inspecting
			if a, err := LoadAdapter(path); err != nil {
				r.Notes = append(r.Notes, "adapter: "+err.Error())
			} else {
				r.Adapter = describeAdapter(a)
				a.Close()
			}
		}
	}
	src, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	r.Format = string(src.Format())
	counts := map[string]int{}
	for _, t := range src.Tensors() {
		counts[src.FileOf(t.Name)]++
	}
	for _, f := range src.Files() {
		var size int64
		if st, err := os.Stat(f); err == nil {
			size = st.Size()
		}
		r.Files = append(r.Files, InspectedFile{Path: f, Bytes: size, Tensors: counts[f]})
	}
	if cfg := src.Config(); len(cfg) > 0 {
		if json.Valid(cfg) {
			r.Config = json.RawMessage(cfg)
		} else {
			r.Notes = append(r.Notes, "config.json is not valid JSON")
		}
	}
	for _, kv := range src.Metadata() {
		r.Metadata = append(r.Metadata, describeMeta(kv))
	}
	sharded := len(src.Files()) > 1
	longNames := 0
	for _, t := range src.Tensors() {
		it := InspectedTensor{Name: t.Name, DType: t.DType.String(), Shape: t.Shape, Bytes: len(t.Data)}
		if it.Shape == nil {
			it.Shape = []int{}
		}
		if sharded {
			it.File = filepath.Base(src.FileOf(t.Name))
		}
		r.Tensors = append(r.Tensors, it)
		r.Bytes += int64(len(t.Data))
		r.DTypes[t.DType.String()]++
		if len(t.Name) >= 64 {
			longNames++
		}
	}
	r.NumTensors = src.Len()
	r.Params = src.ParamCount()
	if src.Format() == FormatGGUF && longNames > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d tensor names are 64 bytes or longer: synth reads them, ggml's own GGUF reader does not", longNames))
	}
	return r, nil
}

func describeAdapter(a *Adapter) *InspectedAdapter {
	c := a.Config
	d := &InspectedAdapter{R: c.R, Alpha: c.LoraAlpha, RSLoRA: c.UseRSLoRA, TargetRegex: c.TargetRegex,
		TargetModules: c.TargetModules, Modules: a.Modules()}
	for _, m := range d.Modules {
		d.Scales = append(d.Scales, a.Lookup(m).Scale)
	}
	for k := range a.Saved {
		d.Saved = append(d.Saved, k)
	}
	sort.Strings(d.Saved)
	return d
}

func describeMeta(kv KV) InspectedMeta {
	m := InspectedMeta{Key: kv.Key, Type: fmt.Sprintf("%T", kv.Value), Value: kv.Value}
	switch v := kv.Value.(type) {
	case []string:
		m.Len = len(v)
		if len(v) > MaxArrayShown {
			m.Value = v[:MaxArrayShown]
		}
	case []int32:
		m.Len = len(v)
		if len(v) > MaxArrayShown {
			m.Value = v[:MaxArrayShown]
		}
	case []float32:
		m.Len = len(v)
		if len(v) > MaxArrayShown {
			m.Value = v[:MaxArrayShown]
		}
	default:
		if n := ArrayLen(kv.Value); n >= 0 {
			m.Len = n
		}
	}
	return m
}
