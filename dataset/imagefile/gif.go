package imagefile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/gif"
)

// gifFrameInfo is what PIL takes from a GIF before its first image: the palette that
// frame uses (local, else global; raw RGB, before any transparency) and its transparent
// index.
type gifFrameInfo struct {
	palette     []byte // RGB triples; nil when the file has none
	transparent int    // -1 when none
}

// readGIFFrameInfo walks the blocks up to the first image descriptor. The Go decoder
// replaces the transparent palette entry by transparent black, but PIL's convert("RGB")
// shows that entry's stored colour, so we read the palette ourselves.
func readGIFFrameInfo(data []byte) (gifFrameInfo, error) {
	info := gifFrameInfo{transparent: -1}
	bad := fmt.Errorf("%w: gif: malformed header", ErrCorrupt)
	if len(data) < 13 {
		return info, bad
	}
	pos := 13
	var global []byte
	if flags := data[10]; flags&0x80 != 0 {
		n := 3 << ((flags & 7) + 1)
		if pos+n > len(data) {
			return info, bad
		}
		global = data[pos : pos+n]
		pos += n
	}
	for pos < len(data) {
		switch data[pos] {
		case 0x21: // extension: label, then sub-blocks
			if pos+2 > len(data) {
				return info, bad
			}
			label := data[pos+1]
			pos += 2
			first := true
			for pos < len(data) && data[pos] != 0 {
				n := int(data[pos])
				if pos+1+n > len(data) {
					return info, bad
				}
				if label == 0xF9 && first && n >= 4 { // graphic control extension
					if data[pos+1]&1 != 0 {
						info.transparent = int(data[pos+4])
					} else {
						info.transparent = -1
					}
				}
				first = false
				pos += 1 + n
			}
			pos++
		case 0x2C: // image descriptor
			if pos+10 > len(data) {
				return info, bad
			}
			flags := data[pos+9]
			info.palette = global
			if flags&0x80 != 0 {
				n := 3 << ((flags & 7) + 1)
				if pos+10+n > len(data) {
					return info, bad
				}
				info.palette = data[pos+10 : pos+10+n]
			}
			return info, nil
		default:
			return info, fmt.Errorf("%w: gif: no image before block %#x", ErrCorrupt, data[pos])
		}
	}
	return info, fmt.Errorf("%w: gif: no image", ErrCorrupt)
}

func decodeGIF(data []byte, lim Limits) (image.Image, error) {
	cfg, err := gif.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt(GIF, err)
	}
	if err := lim.check(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	info, err := readGIFFrameInfo(data)
	if err != nil {
		return nil, err
	}
	frame, err := gif.Decode(bytes.NewReader(data)) // the first frame only
	if err != nil {
		return nil, corrupt(GIF, err)
	}
	pf, ok := frame.(*image.Paletted)
	if !ok {
		return nil, fmt.Errorf("%w: gif: first frame is %T", ErrCorrupt, frame)
	}
	// PIL draws frame 0 on the logical screen, filled with the transparent index or 0.
	screen := image.Rect(0, 0, int(binary.LittleEndian.Uint16(data[6:8])), int(binary.LittleEndian.Uint16(data[8:10])))
	canvas := make([]uint8, screen.Dx()*screen.Dy())
	if info.transparent >= 0 {
		for i := range canvas {
			canvas[i] = uint8(info.transparent)
		}
	}
	fr := pf.Bounds().Intersect(screen)
	for y := fr.Min.Y; y < fr.Max.Y; y++ {
		copy(canvas[y*screen.Dx()+fr.Min.X:y*screen.Dx()+fr.Max.X], pf.Pix[pf.PixOffset(fr.Min.X, y):])
	}
	if info.palette == nil || identityGrey(info.palette) {
		return &image.Gray{Pix: canvas, Stride: screen.Dx(), Rect: screen}, nil
	}
	pal := make(color.Palette, len(info.palette)/3)
	for i := range pal {
		pal[i] = color.NRGBA{info.palette[3*i], info.palette[3*i+1], info.palette[3*i+2], 255}
	}
	return &image.Paletted{Pix: canvas, Stride: screen.Dx(), Rect: screen, Palette: pal}, nil
}

// identityGrey is PIL's test that a GIF palette is not needed: entry i is (i, i, i).
func identityGrey(p []byte) bool {
	for i := 0; i+2 < len(p); i += 3 {
		v := byte(i / 3)
		if p[i] != v || p[i+1] != v || p[i+2] != v {
			return false
		}
	}
	return true
}
