package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
)

// stTensor is one tensor of a safetensors file: dtype, shape and raw little-endian bytes.
type stTensor struct {
	DType string
	Shape []int
	Data  []byte
}

// readSafetensors is a minimal reader for tests: 8-byte header length, JSON header,
// data. The fixtures hold a few MB, so the whole file is read.
func readSafetensors(path string) (map[string]stTensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		return nil, fmt.Errorf("%s: header length %d past the end", path, n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	data := raw[8+n:]
	out := map[string]stTensor{}
	for name, msg := range hdr {
		if name == "__metadata__" {
			continue
		}
		var h struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &h); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		if h.Offsets[0] < 0 || h.Offsets[1] < h.Offsets[0] || h.Offsets[1] > int64(len(data)) {
			return nil, fmt.Errorf("%s: tensor %s: offsets %v out of range", path, name, h.Offsets)
		}
		out[name] = stTensor{h.DType, h.Shape, data[h.Offsets[0]:h.Offsets[1]]}
	}
	return out, nil
}
