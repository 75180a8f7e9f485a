package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/webp"

	"synth/dataset/turbojpeg"
)

// Limits bound what Decode accepts. Zero fields take the defaults.
type Limits struct {
	MaxWidth, MaxHeight int   // default 65535 each (JPEG's own ceiling)
	MaxPixels           int64 // default 89,478,485: PIL's MAX_IMAGE_PIXELS
	MaxFileBytes        int64 // default 256 MiB
}

// Defaults, with their sources.
const (
	DefaultMaxSide      = 65535            // the largest JPEG dimension
	DefaultMaxPixels    = 89_478_485       // PIL Image.MAX_IMAGE_PIXELS (1024*1024*1024 // 4 // 3)
	DefaultMaxFileBytes = int64(256) << 20 // far above any product photo
)

func (l Limits) withDefaults() Limits {
	if l.MaxWidth <= 0 {
		l.MaxWidth = DefaultMaxSide
	}
	if l.MaxHeight <= 0 {
		l.MaxHeight = DefaultMaxSide
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	return l
}

// Errors callers branch on.
var (
	// ErrNotRegular: a FIFO, device, socket or folder given as an image. Opening a FIFO
	// blocks until a writer comes; reading /dev/zero never ends.
	ErrNotRegular = errors.New("imagefile: not a regular file")
	ErrEmpty      = errors.New("imagefile: empty file")
	ErrFormat     = errors.New("imagefile: not a JPEG, PNG, GIF or WebP file")
	ErrTooBig     = errors.New("imagefile: image exceeds the limits")
	ErrCorrupt    = errors.New("imagefile: corrupt image data")
)

// Format names a file format by its signature.
type Format string

const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
	GIF  Format = "gif"
	WebP Format = "webp"
)

// Sniff returns the format of data from its first bytes.
func Sniff(data []byte) (Format, error) {
	switch {
	case len(data) == 0:
		return "", ErrEmpty
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, nil
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, nil
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return GIF, nil
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return WebP, nil
	}
	head := data[:min(len(data), 8)]
	return "", fmt.Errorf("%w (starts with % x)", ErrFormat, head)
}

// ReadFile reads an image file whole, after checking that it is a regular file of at most
// lim.MaxFileBytes: the one check every reader of image files (caption, embed, eval's
// cache keys) goes through before it reads. A FIFO or device is refused before it is
// opened, and again after (opened without blocking), in case the path changed between.
func ReadFile(path string, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("imagefile: %w", err)
	}
	if err := checkRegular(path, st, lim); err != nil {
		return nil, err
	}
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, fmt.Errorf("imagefile: %w", err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("imagefile: %w", err)
	}
	if err := checkRegular(path, st, lim); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, lim.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("imagefile: read %s: %w", path, err)
	}
	if int64(len(data)) > lim.MaxFileBytes {
		return nil, fmt.Errorf("imagefile: %s: %w: file grew past the limit of %d bytes while read", path, ErrTooBig, lim.MaxFileBytes)
	}
	return data, nil
}

func checkRegular(path string, st os.FileInfo, lim Limits) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("imagefile: %s: %w (%s)", path, ErrNotRegular, describeMode(st.Mode()))
	}
	if st.Size() > lim.MaxFileBytes {
		return fmt.Errorf("imagefile: %s: %w: file is %d bytes, limit %d", path, ErrTooBig, st.Size(), lim.MaxFileBytes)
	}
	return nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}

// Decode reads (ReadFile) and decodes the image file at path.
func Decode(path string, lim Limits) (image.Image, error) {
	data, err := ReadFile(path, lim)
	if err != nil {
		return nil, err
	}
	img, err := DecodeBytes(data, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// DecodeBytes decodes an image file held in memory.
func DecodeBytes(data []byte, lim Limits) (img image.Image, err error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooBig, len(data), lim.MaxFileBytes)
	}
	format, err := Sniff(data)
	if err != nil {
		return nil, err
	}
	// The pure-Go decoders are not ours; a malformed file must never take down a batch.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("%w: %s decoder failed: %v", ErrCorrupt, format, r)
		}
	}()
	switch format {
	case JPEG:
		return decodeJPEG(data, lim)
	case PNG:
		return decodePNG(data, lim)
	case GIF:
		return decodeGIF(data, lim)
	default:
		return decodeWebP(data, lim)
	}
}

func (l Limits) check(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: size %dx%d", ErrCorrupt, w, h)
	}
	if w > l.MaxWidth || h > l.MaxHeight || int64(w)*int64(h) > l.MaxPixels {
		return fmt.Errorf("%w: %dx%d (limits %dx%d, %d pixels)", ErrTooBig, w, h, l.MaxWidth, l.MaxHeight, l.MaxPixels)
	}
	return nil
}

func corrupt(format Format, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s truncated: %v", ErrCorrupt, format, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, format, err)
}

func decodeJPEG(data []byte, lim Limits) (image.Image, error) {
	h, err := turbojpeg.DecodeHeader(data)
	if err != nil {
		return nil, corrupt(JPEG, err)
	}
	if err := lim.check(h.Width, h.Height); err != nil {
		return nil, err
	}
	img, err := turbojpeg.Decode(data, lim.MaxPixels)
	if err != nil {
		return nil, corrupt(JPEG, err)
	}
	return img, nil
}

// pngHeader is the IHDR chunk, which the PNG specification requires first.
type pngHeader struct {
	w, h              int
	depth, colourType byte
}

func readPNGHeader(data []byte) (pngHeader, error) {
	if len(data) < 8+8+13 || string(data[12:16]) != "IHDR" || binary.BigEndian.Uint32(data[8:12]) != 13 {
		return pngHeader{}, fmt.Errorf("%w: png: no IHDR chunk", ErrCorrupt)
	}
	d := data[16:]
	w, h := binary.BigEndian.Uint32(d[0:4]), binary.BigEndian.Uint32(d[4:8])
	if w > 1<<31-1 || h > 1<<31-1 {
		return pngHeader{}, fmt.Errorf("%w: png: size %dx%d", ErrTooBig, w, h)
	}
	return pngHeader{w: int(w), h: int(h), depth: d[8], colourType: d[9]}, nil
}

func decodePNG(data []byte, lim Limits) (image.Image, error) {
	hdr, err := readPNGHeader(data)
	if err != nil {
		return nil, err
	}
	if err := lim.check(hdr.w, hdr.h); err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt(PNG, err)
	}
	return pngMode(img, hdr), nil
}

// pngMode turns image/png's result into the type of PIL's mode for the file's colour
// type: image/png applies a tRNS colour key as alpha, PIL does not; PIL keeps 16-bit
// grey as 32-bit integers and the other 16-bit types as their high byte.
func pngMode(img image.Image, hdr pngHeader) image.Image {
	switch hdr.colourType {
	case 0: // grey
		if hdr.depth == 16 {
			return toGray16(img)
		}
		g := toGray(img)
		if hdr.depth == 1 {
			return bilevel(g)
		}
		return g
	case 2: // RGB
		return toOpaqueRGBA(img)
	case 4, 6: // grey+alpha, RGBA
		if n, ok := img.(*image.NRGBA64); ok {
			return highBytes(n)
		}
	}
	return img
}

func toGray(img image.Image) *image.Gray {
	if g, ok := img.(*image.Gray); ok {
		return g
	}
	b := img.Bounds()
	g := image.NewGray(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			// the grey value itself, whatever alpha the colour key gave it
			g.Pix[g.PixOffset(x, y)] = nrgba(img.At(x, y)).R
		}
	}
	return g
}

func toGray16(img image.Image) *image.Gray16 {
	if g, ok := img.(*image.Gray16); ok {
		return g
	}
	b := img.Bounds()
	g := image.NewGray16(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			v := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64).R
			g.SetGray16(x, y, color.Gray16{Y: v})
		}
	}
	return g
}

// bilevel is PIL's mode "1" as a two-colour palette image (black, white): PIL resizes
// "1" with nearest neighbour, as it does palettes, and converts it to 0 or 255.
func bilevel(g *image.Gray) *image.Paletted {
	b := g.Bounds()
	p := image.NewPaletted(b, color.Palette{color.Gray{0}, color.Gray{255}})
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if g.Pix[g.PixOffset(x, y)] != 0 {
				p.Pix[p.PixOffset(x, y)] = 1
			}
		}
	}
	return p
}

func toOpaqueRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(b)
	switch m := img.(type) {
	case *image.RGBA:
		return m
	case *image.NRGBA: // 8-bit RGB with a colour key: the colour stays, alpha goes
		for i := 0; i < len(m.Pix); i += 4 {
			copy(out.Pix[i:i+3], m.Pix[i:i+3])
			out.Pix[i+3] = 255
		}
		return out
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64)
			o := out.PixOffset(x, y)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2], out.Pix[o+3] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8), 255
		}
	}
	return out
}

func highBytes(m *image.NRGBA64) *image.NRGBA {
	out := image.NewNRGBA(m.Bounds())
	for i := range out.Pix {
		out.Pix[i] = m.Pix[2*i]
	}
	return out
}

func nrgba(c color.Color) color.NRGBA {
	if n, ok := c.(color.NRGBA); ok {
		return n
	}
	return color.NRGBAModel.Convert(c).(color.NRGBA)
}

func decodeWebP(data []byte, lim Limits) (image.Image, error) {
	cfg, err := webp.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt(WebP, err)
	}
	if err := lim.check(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt(WebP, err)
	}
	switch img.(type) {
	case *image.YCbCr, *image.NRGBA:
		return img, nil
	}
	b := img.Bounds()
	out := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.SetNRGBA(x, y, nrgba(img.At(x, y)))
		}
	}
	return out, nil
}
