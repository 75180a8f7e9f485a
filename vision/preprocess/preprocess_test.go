package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"synth/weights"
	"testing"

	"synth/internal/fixtures"
)

type manifest struct {
	Mean    [3]float32 `json:"mean"`
	Std     [3]float32 `json:"std"`
	Tensors string     `json:"tensors_file"`
	Images  []struct {
		File    string `json:"file"`
		Format  string `json:"format"`
		Mode    string `json:"mode"`
		Width   int    `json:"width"`
		Height  int    `json:"height"`
		Decoded string `json:"decoded_tensor"`
		Outputs []struct {
			N         int    `json:"n_px"`
			RW        int    `json:"resized_width"`
			RH        int    `json:"resized_height"`
			Left      int    `json:"crop_left"`
			Top       int    `json:"crop_top"`
			PixelVals string `json:"pixel_values"`
			RGB       string `json:"rgb_u8"`
		} `json:"outputs"`
	} `json:"images"`
}

func loadManifest(t *testing.T) (string, manifest, map[string]weights.Tensor) {
	t.Helper()
	dir := fixtures.Dir(t, "longclip/preprocess")
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Skipf("no preprocess manifest: %v", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Images) == 0 {
		t.Fatal("manifest.json lists no images")
	}
	ts, err := readSafetensors(filepath.Join(dir, m.Tensors))
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, ts
}

// rgbImage wraps [h, w, 3] bytes as an opaque *image.RGBA (PIL mode RGB).
func rgbImage(pix []byte, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		copy(img.Pix[4*i:], pix[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img
}

// fixtureImage returns the input upstream resized: the stored libjpeg-turbo pixels for
// JPEG (decoders differ; dataset/turbojpeg is tested against them separately), the file
// decoded by image/png otherwise (its types are the PIL modes of these files).
func fixtureImage(t *testing.T, dir, file, decoded string, ts map[string]weights.Tensor) image.Image {
	t.Helper()
	if decoded != "" {
		d, ok := ts[decoded]
		if !ok || d.DType != weights.U8 || len(d.Shape) != 3 {
			t.Fatalf("%s: decoded tensor %s missing or malformed", file, decoded)
		}
		return rgbImage(d.Data, d.Shape[1], d.Shape[0])
	}
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return img
}

// TestFixtureParity: for every image and size in the manifest, the resized, cropped RGB
// pixels equal upstream's rgb_u8 exactly, and the normalised tensor equals pixel_values
// bit for bit (the README: steps 4-5 are exact in float32).
func TestFixtureParity(t *testing.T) {
	dir, m, ts := loadManifest(t)
	if m.Mean != Mean || m.Std != Std {
		t.Errorf("fixture mean/std %v %v differ from ours %v %v", m.Mean, m.Std, Mean, Std)
	}
	for _, im := range m.Images {
		img := fixtureImage(t, dir, im.File, im.Decoded, ts)
		if Mode(img) != im.Mode {
			t.Errorf("%s: read as mode %s, upstream %s", im.File, Mode(img), im.Mode)
		}
		for _, o := range im.Outputs {
			rw, rh := ResizedSize(im.Width, im.Height, o.N)
			if rw != o.RW || rh != o.RH || CropOffset(rw, o.N) != o.Left || CropOffset(rh, o.N) != o.Top {
				t.Errorf("%s n=%d: resize %dx%d crop (%d,%d), upstream %dx%d (%d,%d)", im.File, o.N,
					rw, rh, CropOffset(rw, o.N), CropOffset(rh, o.N), o.RW, o.RH, o.Left, o.Top)
			}
			got, err := ResizeCropRGB(img, o.N)
			if err != nil {
				t.Fatalf("%s n=%d: %v", im.File, o.N, err)
			}
			want := ts[o.RGB]
			if len(want.Data) != len(got) {
				t.Fatalf("%s n=%d: %d bytes, upstream %d", im.File, o.N, len(got), len(want.Data))
			}
			diff, maxd := 0, 0
			for i := range got {
				if d := int(got[i]) - int(want.Data[i]); d != 0 {
					diff++
					maxd = max(maxd, d, -d)
				}
			}
			if diff > 0 {
				t.Errorf("%s n=%d: %d of %d samples differ from rgb_u8 (max %d levels)", im.File, o.N, diff, len(got), maxd)
			}
			x, err := CLIP(img, o.N)
			if err != nil {
				t.Fatal(err)
			}
			pv := ts[o.PixelVals]
			if pv.DType != weights.F32 || len(pv.Data) != 4*len(x) {
				t.Fatalf("%s n=%d: pixel_values malformed", im.File, o.N)
			}
			bad := 0
			for i, v := range x {
				if math.Float32bits(v) != binary.LittleEndian.Uint32(pv.Data[4*i:]) {
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s n=%d: %d of %d pixel_values differ", im.File, o.N, bad, len(x))
			}
		}
	}
}

func TestBatchMatchesSingle(t *testing.T) {
	dir, m, ts := loadManifest(t)
	var imgs []image.Image
	for _, im := range m.Images {
		imgs = append(imgs, fixtureImage(t, dir, im.File, im.Decoded, ts))
	}
	imgs = append(imgs, nil) // an item that fails
	const n = 56
	out, errs := Batch(len(imgs), n, 3, func(i int) (image.Image, error) { return imgs[i], nil })
	per := 3 * n * n
	for i, img := range imgs {
		if img == nil {
			if errs[i] == nil {
				t.Errorf("item %d (nil image): no error", i)
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("item %d: %v", i, errs[i])
		}
		want, _ := CLIP(img, n)
		for k := range want {
			if out[i*per+k] != want[k] {
				t.Fatalf("item %d differs from CLIP at %d", i, k)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	if _, err := CLIP(image.NewRGBA(image.Rect(0, 0, 0, 5)), 8); err == nil {
		t.Error("empty image: no error")
	}
	if _, err := CLIP(image.NewGray(image.Rect(0, 0, 4, 4)), 0); err == nil {
		t.Error("n=0: no error")
	}
	// a sub-image (non-zero origin, shared stride) reads its own window
	g := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range g.Pix {
		g.Pix[i] = uint8(i)
	}
	sub := g.SubImage(image.Rect(2, 3, 6, 7)).(*image.Gray)
	rgb, err := ResizeCropRGB(sub, 4) // no resize: the window itself
	if err != nil || rgb[0] != uint8(3*8+2) || rgb[3*15] != uint8(6*8+5) {
		t.Errorf("sub-image: %v %v", err, rgb)
	}
}

// A 60000x1 image (a PNG of a few hundred bytes) would resize to 13,440,000x224 before
// the crop: a 9 GB allocation that killed embed and eval. It is an error for that item,
// while an aspect ratio within the bound still works, in Batch like in CLIP.
func TestExtremeAspectRatio(t *testing.T) {
	wide := image.NewGray(image.Rect(0, 0, 60000, 1))
	tall := image.NewRGBA(image.Rect(0, 0, 1, 60000))
	out, errs := Batch(3, 224, 2, func(i int) (image.Image, error) {
		return []image.Image{wide, tall, image.NewGray(image.Rect(0, 0, 300, 2))}[i], nil
	})
	for i := range 2 {
		if errs[i] == nil || !strings.Contains(errs[i].Error(), "aspect ratio") {
			t.Errorf("item %d: %v, want an aspect ratio error", i, errs[i])
		}
	}
	if errs[2] != nil || len(out) != 3*3*224*224 {
		t.Errorf("300x2 image (resized to 33600x224): %v", errs[2])
	}
}
