package preprocess

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"os"
	"testing"
)

// TestPILModes: images of the modes the fixtures do not cover, built from the same
// pixels as Pillow 9.4's (testdata/modes.json, see dataset/imagefile/testdata/README.md),
// give PIL's Resize + CenterCrop + convert("RGB") exactly, reducing and enlarging.
func TestPILModes(t *testing.T) {
	raw, err := os.ReadFile("testdata/modes.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Name, Mode    string
			Width, Height int
			Pixels        string
			Outputs       []struct {
				N   int
				RGB string
			}
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range f.Cases {
		pix, _ := base64.StdEncoding.DecodeString(c.Pixels)
		img := goImage(t, c.Mode, c.Width, c.Height, pix)
		for _, o := range c.Outputs {
			want, _ := base64.StdEncoding.DecodeString(o.RGB)
			got, err := ResizeCropRGB(img, o.N)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				n := 0
				for i := range got {
					if got[i] != want[i] {
						n++
					}
				}
				t.Errorf("%s (%s) n=%d: %d of %d samples differ from PIL", c.Name, c.Mode, o.N, n, len(want))
			}
		}
	}
}

// goImage is the Go type that stands for PIL mode (see doc.go), holding PIL's array.
func goImage(t *testing.T, mode string, w, h int, pix []byte) image.Image {
	r := image.Rect(0, 0, w, h)
	switch mode {
	case "RGBA":
		return &image.NRGBA{Pix: pix, Stride: 4 * w, Rect: r}
	case "LA":
		m := image.NewNRGBA(r)
		for i := 0; i < w*h; i++ {
			m.Pix[4*i], m.Pix[4*i+1], m.Pix[4*i+2], m.Pix[4*i+3] = pix[2*i], pix[2*i], pix[2*i], pix[2*i+1]
		}
		return m
	case "CMYK":
		return &image.CMYK{Pix: pix, Stride: 4 * w, Rect: r}
	case "L":
		return &image.Gray{Pix: pix, Stride: w, Rect: r}
	case "1":
		return &image.Paletted{Pix: pix, Stride: w, Rect: r, Palette: color.Palette{color.Gray{0}, color.Gray{255}}}
	case "I":
		// PIL's I holds any int32; ours comes from 16-bit PNG, so the data stay in 0..65535.
		m := image.NewGray16(r)
		for i := 0; i < w*h; i++ {
			binary.BigEndian.PutUint16(m.Pix[2*i:], uint16(binary.LittleEndian.Uint32(pix[4*i:])))
		}
		return m
	}
	t.Fatalf("mode %s has no Go type", mode)
	return nil
}
