package preprocess

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// pilImage is an image in one of PIL's modes, pixels interleaved by band.
type pilImage struct {
	mode  string // "L", "P", "RGB", "RGBA", "CMYK", "I"
	w, h  int
	bands int       // samples per pixel in pix (1, 3 or 4)
	pix   []uint8   // [h, w, bands] for the 8-bit modes
	i32   []int32   // [h, w] for mode I
	pal   [][3]byte // palette of mode P
}

// ErrEmpty is returned for an image without pixels.
var ErrEmpty = errors.New("preprocess: empty image")

// Mode names the PIL mode that img stands for (see the package documentation).
func Mode(img image.Image) string {
	switch m := img.(type) {
	case *image.Gray:
		return "L"
	case *image.Paletted:
		return "P"
	case *image.CMYK:
		return "CMYK"
	case *image.Gray16:
		return "I"
	case *image.YCbCr:
		return "RGB"
	case *image.RGBA:
		if m.Opaque() {
			return "RGB"
		}
	case *image.RGBA64:
		if m.Opaque() {
			return "RGB"
		}
	case *image.NRGBA, *image.NRGBA64:
		return "RGBA"
	default:
		if o, ok := img.(interface{ Opaque() bool }); ok && o.Opaque() {
			return "RGB"
		}
	}
	return "RGBA"
}

// fromImage copies img into PIL's layout for its mode.
func fromImage(img image.Image) (*pilImage, error) {
	if img == nil {
		return nil, errors.New("preprocess: nil image")
	}
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("%w (%dx%d)", ErrEmpty, w, h)
	}
	mode := Mode(img)
	p := &pilImage{mode: mode, w: w, h: h}
	switch m := img.(type) {
	case *image.Gray:
		p.bands = 1
		p.pix = make([]uint8, w*h)
		for y := 0; y < h; y++ {
			copy(p.pix[y*w:(y+1)*w], m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):])
		}
		return p, nil
	case *image.Paletted:
		p.bands = 1
		p.pix = make([]uint8, w*h)
		for y := 0; y < h; y++ {
			copy(p.pix[y*w:(y+1)*w], m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):])
		}
		p.pal = make([][3]byte, 256) // indices past the palette read as black, as in PIL
		for i, c := range m.Palette {
			if i == 256 {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			if nc, ok := c.(color.NRGBA); ok {
				n = nc // keep the colour of transparent entries: convert("RGB") ignores alpha
			}
			p.pal[i] = [3]byte{n.R, n.G, n.B}
		}
		return p, nil
	case *image.CMYK:
		p.bands = 4
		p.pix = make([]uint8, w*h*4)
		for y := 0; y < h; y++ {
			copy(p.pix[y*w*4:(y+1)*w*4], m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):])
		}
		return p, nil
	case *image.Gray16:
		p.bands = 1
		p.i32 = make([]int32, w*h)
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			for x := 0; x < w; x++ {
				p.i32[y*w+x] = int32(row[2*x])<<8 | int32(row[2*x+1])
			}
		}
		return p, nil
	case *image.NRGBA:
		p.bands = 4
		p.pix = make([]uint8, w*h*4)
		for y := 0; y < h; y++ {
			copy(p.pix[y*w*4:(y+1)*w*4], m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):])
		}
		return p, nil
	case *image.RGBA:
		if mode == "RGB" {
			p.bands = 3
			p.pix = make([]uint8, w*h*3)
			for y := 0; y < h; y++ {
				row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):][:4*w]
				dst := p.pix[y*w*3 : (y+1)*w*3]
				for x := 0; x < w; x++ {
					s, d := row[4*x:4*x+3:4*x+3], dst[3*x:3*x+3:3*x+3]
					d[0], d[1], d[2] = s[0], s[1], s[2]
				}
			}
			return p, nil
		}
	case *image.NRGBA64:
		p.bands = 4
		p.pix = make([]uint8, w*h*4)
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
			for x := 0; x < w*4; x++ {
				p.pix[y*w*4+x] = row[2*x] // high byte, as PIL's "RGBA;16B" unpacker
			}
		}
		return p, nil
	case *image.RGBA64:
		if mode == "RGB" {
			p.bands = 3
			p.pix = make([]uint8, w*h*3)
			for y := 0; y < h; y++ {
				row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):]
				for x := 0; x < w; x++ {
					for c := 0; c < 3; c++ {
						p.pix[(y*w+x)*3+c] = row[8*x+2*c]
					}
				}
			}
			return p, nil
		}
	}
	// Everything else through the generic colour model.
	if mode == "RGB" {
		p.bands = 3
		p.pix = make([]uint8, w*h*3)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.RGBAModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.RGBA)
				copy(p.pix[(y*w+x)*3:], []byte{c.R, c.G, c.B})
			}
		}
		return p, nil
	}
	p.mode, p.bands = "RGBA", 4
	p.pix = make([]uint8, w*h*4)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.NRGBA)
			copy(p.pix[(y*w+x)*4:], []byte{c.R, c.G, c.B, c.A})
		}
	}
	return p, nil
}

// muldiv255 is PIL's MULDIV255: a*b/255 rounded, in integers.
func muldiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clip8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// premultiply is PIL's RGBA -> RGBa (rgbA2rgba).
func premultiply(pix []uint8) {
	for i := 0; i+3 < len(pix); i += 4 {
		a := int(pix[i+3])
		for c := 0; c < 3; c++ {
			pix[i+c] = uint8(muldiv255(int(pix[i+c]), a))
		}
	}
}

// unpremultiply is PIL's RGBa -> RGBA (rgba2rgbA): unchanged for alpha 0 and 255.
func unpremultiply(pix []uint8) {
	for i := 0; i+3 < len(pix); i += 4 {
		a := int(pix[i+3])
		if a == 0 || a == 255 {
			continue
		}
		for c := 0; c < 3; c++ {
			pix[i+c] = clip8(255 * int(pix[i+c]) / a)
		}
	}
}

// toRGB is PIL's convert("RGB") for p's mode, into dst [h, w, 3].
func (p *pilImage) toRGB(dst []uint8) {
	n := p.w * p.h
	switch p.mode {
	case "L":
		for i := 0; i < n; i++ {
			v := p.pix[i]
			dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
		}
	case "P":
		for i := 0; i < n; i++ {
			c := p.pal[p.pix[i]]
			dst[3*i], dst[3*i+1], dst[3*i+2] = c[0], c[1], c[2]
		}
	case "RGB":
		copy(dst, p.pix[:3*n])
	case "RGBA": // alpha dropped, not composited
		for i := 0; i < n; i++ {
			copy(dst[3*i:3*i+3], p.pix[4*i:4*i+3])
		}
	case "CMYK": // PIL 9.4 cmyk2rgb
		for i := 0; i < n; i++ {
			nk := 255 - int(p.pix[4*i+3])
			for c := 0; c < 3; c++ {
				dst[3*i+c] = clip8(nk - muldiv255(int(p.pix[4*i+c]), nk))
			}
		}
	case "I": // i2rgb clips
		for i := 0; i < n; i++ {
			v := clip8(int(max(min(p.i32[i], 255), 0)))
			dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
		}
	default:
		panic("preprocess: unknown mode " + p.mode)
	}
}

// crop returns the [top, top+n) x [left, left+n) window of p.
func (p *pilImage) crop(left, top, n int) *pilImage {
	q := &pilImage{mode: p.mode, w: n, h: n, bands: p.bands, pal: p.pal}
	if p.i32 != nil {
		q.i32 = make([]int32, n*n)
		for y := 0; y < n; y++ {
			copy(q.i32[y*n:(y+1)*n], p.i32[(top+y)*p.w+left:])
		}
		return q
	}
	b := p.bands
	q.pix = make([]uint8, n*n*b)
	for y := 0; y < n; y++ {
		copy(q.pix[y*n*b:(y+1)*n*b], p.pix[((top+y)*p.w+left)*b:])
	}
	return q
}
