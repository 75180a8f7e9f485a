package preprocess

import (
	"synth/weights"
)

// readSafetensors reads every tensor of a fixture file by name, through package weights.
// The data is copied, so the file can be closed before the test uses it.
func readSafetensors(path string) (map[string]weights.Tensor, error) {
	src, err := weights.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	out := map[string]weights.Tensor{}
	for _, t := range src.Tensors() {
		t.Data = append([]byte(nil), t.Data...)
		out[t.Name] = t
	}
	return out, nil
}
