package imagefile

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"testing"

	"synth/internal/fixtures"
)

// TestFixtureJPEGDecoding: libjpeg-turbo through our decoder gives exactly the pixels
// upstream's PIL decoded (decoded_rgb_u8), for every JPEG in the preprocess manifest.
func TestFixtureJPEGDecoding(t *testing.T) {
	dir := fixtures.Dir(t, "longclip/preprocess")
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Skipf("no manifest: %v", err)
	}
	var m struct {
		Tensors string `json:"tensors_file"`
		Images  []struct {
			File    string `json:"file"`
			Decoded string `json:"decoded_tensor"`
		} `json:"images"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	tensors, err := readSafetensorsU8(filepath.Join(dir, m.Tensors))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, im := range m.Images {
		if im.Decoded == "" {
			continue
		}
		n++
		want, ok := tensors[im.Decoded]
		if !ok {
			t.Fatalf("%s: tensor %s missing", im.File, im.Decoded)
		}
		img, err := Decode(filepath.Join(dir, im.File), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		rgba, ok := img.(*image.RGBA)
		if !ok || !rgba.Opaque() {
			t.Fatalf("%s: decoded as %T, want opaque *image.RGBA (PIL RGB)", im.File, img)
		}
		diff := 0
		for i := 0; i < len(want)/3; i++ {
			for c := 0; c < 3; c++ {
				if rgba.Pix[4*i+c] != want[3*i+c] {
					diff++
				}
			}
		}
		if len(want) != 3*len(rgba.Pix)/4 || diff > 0 {
			t.Errorf("%s: %d of %d samples differ from libjpeg-turbo under PIL", im.File, diff, len(want))
		}
	}
	if n == 0 {
		t.Skip("no JPEG in the manifest")
	}
}

// readSafetensorsU8 reads the U8 tensors of a safetensors file (a test helper).
func readSafetensorsU8(path string) (map[string][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		return nil, fmt.Errorf("%s: bad header length", path)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		return nil, err
	}
	data := raw[8+n:]
	out := map[string][]byte{}
	for name, msg := range hdr {
		var h struct {
			DType   string   `json:"dtype"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if name == "__metadata__" || json.Unmarshal(msg, &h) != nil || h.DType != "U8" {
			continue
		}
		if h.Offsets[0] < 0 || h.Offsets[1] < h.Offsets[0] || h.Offsets[1] > int64(len(data)) {
			return nil, fmt.Errorf("%s: %s: bad offsets", path, name)
		}
		out[name] = data[h.Offsets[0]:h.Offsets[1]]
	}
	return out, nil
}
