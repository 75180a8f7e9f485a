package turbojpeg

/*
#include <stdlib.h>
#include "decode.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// Sentinel errors callers branch on.
var (
	ErrTruncated   = errors.New("turbojpeg: truncated JPEG data")
	ErrUnsupported = errors.New("turbojpeg: unsupported JPEG (component count)")
	ErrTooLarge    = errors.New("turbojpeg: image larger than the limit")
)

// Header is what a JPEG's header says.
type Header struct {
	Width, Height int
	Components    int // 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK
	Progressive   bool
	Adobe         bool // an Adobe APP14 marker is present
}

const msgLen = 200

func status(code C.int, msg []byte) error {
	switch code {
	case C.SYNTH_JPEG_OK:
		return nil
	case C.SYNTH_JPEG_TRUNCATED:
		return ErrTruncated
	case C.SYNTH_JPEG_UNSUPPORTED:
		return ErrUnsupported
	case C.SYNTH_JPEG_BUFFER:
		return errors.New("turbojpeg: output buffer too small (header changed between reads)")
	}
	text := string(msg)
	for i, b := range msg {
		if b == 0 {
			text = string(msg[:i])
			break
		}
	}
	return fmt.Errorf("turbojpeg: %s", text)
}

func dataPtr(data []byte) (*C.uchar, C.size_t) {
	if len(data) == 0 {
		return nil, 0
	}
	return (*C.uchar)(unsafe.Pointer(&data[0])), C.size_t(len(data))
}

func toHeader(info *C.synth_jpeg_info) Header {
	return Header{
		Width: int(info.width), Height: int(info.height), Components: int(info.components),
		Progressive: info.progressive != 0, Adobe: info.adobe != 0,
	}
}

// DecodeHeader reads the header of a JPEG file held in data.
func DecodeHeader(data []byte) (Header, error) {
	if len(data) == 0 {
		return Header{}, ErrTruncated
	}
	var info C.synth_jpeg_info
	msg := make([]byte, msgLen)
	p, n := dataPtr(data)
	code := C.synth_jpeg_header(p, n, &info, (*C.char)(unsafe.Pointer(&msg[0])), msgLen)
	if err := status(code, msg); err != nil {
		return Header{}, err
	}
	return toHeader(&info), nil
}

// Decode decodes a JPEG file held in data. maxPixels (> 0) refuses larger images before
// any pixel memory is allocated; libjpeg's own working memory is bounded to match.
func Decode(data []byte, maxPixels int64) (image.Image, error) {
	h, err := DecodeHeader(data)
	if err != nil {
		return nil, err
	}
	if h.Width <= 0 || h.Height <= 0 {
		return nil, fmt.Errorf("turbojpeg: bad size %dx%d", h.Width, h.Height)
	}
	pixels := int64(h.Width) * int64(h.Height)
	if maxPixels > 0 && pixels > maxPixels {
		return nil, fmt.Errorf("%w: %dx%d = %d pixels, limit %d", ErrTooLarge, h.Width, h.Height, pixels, maxPixels)
	}
	rect := image.Rect(0, 0, h.Width, h.Height)
	var img image.Image
	var pix []byte
	switch h.Components {
	case 1:
		g := image.NewGray(rect)
		img, pix = g, g.Pix
	case 3:
		rgba := image.NewRGBA(rect)
		img, pix = rgba, rgba.Pix
	case 4:
		cmyk := image.NewCMYK(rect)
		img, pix = cmyk, cmyk.Pix
	default:
		return nil, ErrUnsupported
	}
	// Progressive files keep every coefficient: 2 bytes x components per pixel, plus
	// slack for libjpeg's small allocations.
	maxMem := C.long(0)
	if maxPixels > 0 {
		maxMem = C.long(maxPixels*int64(2*h.Components) + 64<<20)
	}
	var info C.synth_jpeg_info
	msg := make([]byte, msgLen)
	p, n := dataPtr(data)
	code := C.synth_jpeg_decode(p, n, (*C.uchar)(unsafe.Pointer(&pix[0])), C.size_t(len(pix)), maxMem,
		&info, (*C.char)(unsafe.Pointer(&msg[0])), msgLen)
	if err := status(code, msg); err != nil {
		return nil, err
	}
	if h.Components == 4 {
		// Adobe CMYK is stored inverted; PIL reads every 4-component JPEG as "CMYK;I".
		for i := range pix {
			pix[i] = 255 - pix[i]
		}
	}
	return img, nil
}
