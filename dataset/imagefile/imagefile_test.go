package imagefile

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

type expectedFile struct {
	File    string `json:"file"`
	Mode    string `json:"mode"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Pixels  string `json:"pixels"`
	Palette string `json:"palette"`
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPILParity decodes every file of testdata/expected.json and compares type and
// pixels with what Pillow 9.4 decodes (see testdata/README.md).
func TestPILParity(t *testing.T) {
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp struct{ Files []expectedFile }
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Files) == 0 {
		t.Fatal("no expected files")
	}
	for _, e := range exp.Files {
		img, err := Decode(filepath.Join("testdata", e.File), Limits{})
		if err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != e.Width || b.Dy() != e.Height {
			t.Errorf("%s: %v, PIL %dx%d", e.File, b, e.Width, e.Height)
			continue
		}
		want := unb64(t, e.Pixels)
		got, ok := pilArray(img, e.Mode)
		if !ok {
			t.Errorf("%s: PIL mode %s decoded as %T", e.File, e.Mode, img)
			continue
		}
		if !bytes.Equal(got, want) {
			n := 0
			for i := range got {
				if i < len(want) && got[i] != want[i] {
					n++
				}
			}
			t.Errorf("%s (%s): %d of %d bytes differ from PIL", e.File, e.Mode, n, len(want))
		}
		if e.Mode == "P" {
			pal := unb64(t, e.Palette)
			p := img.(*image.Paletted)
			for i, c := range p.Palette {
				if 3*i+2 >= len(pal) {
					break
				}
				r, g, b := nrgba(c).R, nrgba(c).G, nrgba(c).B
				if r != pal[3*i] || g != pal[3*i+1] || b != pal[3*i+2] {
					t.Errorf("%s: palette entry %d = %d,%d,%d, PIL %v", e.File, i, r, g, b, pal[3*i:3*i+3])
					break
				}
			}
		}
	}
}

// pilArray lays img out as numpy.asarray of the PIL image of mode would: [h, w(, bands)].
func pilArray(img image.Image, mode string) ([]byte, bool) {
	b := img.Bounds()
	var out []byte
	switch mode {
	case "RGB":
		m, ok := img.(*image.RGBA)
		if !ok || !m.Opaque() {
			return nil, false
		}
		for i := 0; i < len(m.Pix); i += 4 {
			out = append(out, m.Pix[i:i+3]...)
		}
	case "RGBA":
		m, ok := img.(*image.NRGBA)
		if !ok {
			return nil, false
		}
		out = m.Pix
	case "LA":
		m, ok := img.(*image.NRGBA)
		if !ok {
			return nil, false
		}
		for i := 0; i < len(m.Pix); i += 4 {
			if m.Pix[i] != m.Pix[i+1] || m.Pix[i] != m.Pix[i+2] {
				return nil, false
			}
			out = append(out, m.Pix[i], m.Pix[i+3])
		}
	case "L":
		m, ok := img.(*image.Gray)
		if !ok {
			return nil, false
		}
		out = m.Pix
	case "P", "1":
		m, ok := img.(*image.Paletted)
		if !ok || (mode == "1" && len(m.Palette) != 2) {
			return nil, false
		}
		out = m.Pix
	case "CMYK":
		m, ok := img.(*image.CMYK)
		if !ok {
			return nil, false
		}
		out = m.Pix
	case "I":
		m, ok := img.(*image.Gray16)
		if !ok {
			return nil, false
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				out = binary.LittleEndian.AppendUint32(out, uint32(m.Gray16At(x, y).Y))
			}
		}
	default:
		return nil, false
	}
	return out, true
}

// pngChunk builds one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

func hugePNGHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, pngChunk("IEND", nil)...)
}

// TestBrokenFiles: each broken file gives its own error, never a panic, and the huge
// header is refused before memory is allocated for it.
func TestBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	jpg, err := os.ReadFile("testdata/rgb420_progressive.jpg")
	if err != nil {
		t.Fatal(err)
	}
	pngData, err := os.ReadFile("testdata/la.png")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]struct {
		data []byte
		want error
	}{
		"truncated.jpg":   {jpg[:len(jpg)/2], ErrCorrupt},
		"header-only.jpg": {jpg[:20], ErrCorrupt},
		"empty.png":       {nil, ErrEmpty},
		"text.jpg":        {[]byte("this is not an image\n"), ErrFormat},
		"huge.png":        {hugePNGHeader(20000, 20000), ErrTooBig},
		"wide.png":        {hugePNGHeader(1<<31-1, 1), ErrTooBig},
		"truncated.png":   {pngData[:len(pngData)-30], ErrCorrupt},
		"garbage.gif":     {[]byte("GIF89a\x10\x00\x10\x00\xff\x00\x00junk"), ErrCorrupt},
		"garbage.webp":    {[]byte("RIFF\x10\x00\x00\x00WEBPVP8 junkjunk"), ErrCorrupt},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(dir, name), f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for name, f := range files {
		img, err := Decode(filepath.Join(dir, name), Limits{})
		if err == nil {
			t.Errorf("%s: decoded %T without error", name, img)
			continue
		}
		if !errors.Is(err, f.want) {
			t.Errorf("%s: error %q, want %v", name, err, f.want)
		}
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	runtime.ReadMemStats(&after)
	// 20000x20000 RGB would be 1.6 GB; everything above together allocates a few MB.
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
		t.Errorf("decoding the broken files allocated %d MB", grown>>20)
	}
	if _, err := Decode(filepath.Join(dir, "absent.png"), Limits{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLimits(t *testing.T) {
	path := "testdata/rgb444.jpg" // 23x17
	if _, err := Decode(path, Limits{MaxWidth: 22}); !errors.Is(err, ErrTooBig) {
		t.Errorf("MaxWidth 22: %v", err)
	}
	if _, err := Decode(path, Limits{MaxPixels: 23*17 - 1}); !errors.Is(err, ErrTooBig) {
		t.Errorf("MaxPixels: %v", err)
	}
	if _, err := Decode(path, Limits{MaxFileBytes: 100}); !errors.Is(err, ErrTooBig) {
		t.Errorf("MaxFileBytes: %v", err)
	}
	if _, err := Decode(path, Limits{MaxWidth: 23, MaxHeight: 17, MaxPixels: 23 * 17}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func FuzzDecodeBytes(f *testing.F) {
	for _, name := range []string{"rgb444.jpg", "la.png", "palette.gif", "rgba_lossless.webp", "gray16.png"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeBytes(data, Limits{MaxPixels: 1 << 20})
		if err == nil && img.Bounds().Empty() {
			t.Errorf("decoded an empty image without error")
		}
	})
}

// Every reader of image files checks before reading: a FIFO would block in open, a
// device would be read without end, a huge file would be read whole.
func TestReadFileRefusesNonRegularAndHuge(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	huge := filepath.Join(dir, "huge.png")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, DefaultMaxFileBytes+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want error
	}{
		{fifo, ErrNotRegular}, {"/dev/zero", ErrNotRegular}, {dir, ErrNotRegular}, {huge, ErrTooBig},
	}
	for _, c := range cases {
		errc := make(chan error, 1)
		go func() { _, err := Decode(c.path, Limits{}); errc <- err }()
		select {
		case err := <-errc:
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.path, err, c.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Decode still blocked after 30 s", c.path)
		}
	}
	ok := filepath.Join(dir, "ok.bin")
	os.WriteFile(ok, []byte("12345"), 0o644)
	if b, err := ReadFile(ok, Limits{}); err != nil || string(b) != "12345" {
		t.Errorf("regular file: %q, %v", b, err)
	}
	if _, err := ReadFile(ok, Limits{MaxFileBytes: 4}); !errors.Is(err, ErrTooBig) {
		t.Errorf("5 bytes with a 4-byte limit: %v", err)
	}
}
