package preprocess

import "math"

// precisionBits is PIL's PRECISION_BITS (32 - 8 - 2): fixed-point weights of the 8-bit
// resampler, leaving room for 8-bit samples and the sign.
const precisionBits = 32 - 8 - 2

// bicubic is PIL's bicubic_filter with a = -0.5 (support 2). Explicit float64
// conversions keep Go from fusing multiply-adds, so the rounding is C's.
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return float64(float64(float64((a+2)*x)-(a+3))*x*x) + 1
	}
	if x < 2 {
		return float64(float64(float64(float64(x-5)*x)+8)*x-4) * a
	}
	return 0
}

// coeffs are one axis's resampling weights: for output i the source range
// [bounds[2i], bounds[2i]+bounds[2i+1]) with weights k[i*ksize:].
type coeffs struct {
	ksize  int
	bounds []int
	k      []float64 // normalized, double
	fixed  []int32   // k in 22-bit fixed point (8-bit path)
}

// precomputeCoeffs is PIL's precompute_coeffs for the box [0, inSize) -> outSize.
func precomputeCoeffs(inSize, outSize int) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1.0)
	support := 2.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{ksize: ksize, bounds: make([]int, 2*outSize), k: make([]float64, outSize*ksize)}
	ss := 1.0 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		xmin := int(center - support + 0.5) // C's (int) truncates toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		k := c.k[xx*ksize : (xx+1)*ksize]
		ww := 0.0
		for x := 0; x < xmax; x++ {
			w := bicubic(float64(float64(x+xmin)-center+0.5) * ss)
			k[x] = w
			ww += w
		}
		if ww != 0 {
			for x := 0; x < xmax; x++ {
				k[x] /= ww
			}
		}
		c.bounds[2*xx], c.bounds[2*xx+1] = xmin, xmax
	}
	// normalize_coeffs_8bpc: round half away from zero by truncating w*2^22 +- 0.5.
	c.fixed = make([]int32, len(c.k))
	for i, w := range c.k {
		if w < 0 {
			c.fixed[i] = int32(-0.5 + w*(1<<precisionBits))
		} else {
			c.fixed[i] = int32(0.5 + w*(1<<precisionBits))
		}
	}
	return c
}

// clip8fixed is PIL's clip8: the accumulator shifted down (floor) and clamped to 0..255.
func clip8fixed(acc int32) uint8 {
	v := acc >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resample is PIL's ImagingResampleInner for the bicubic filter: horizontal pass first
// (only over the source rows the vertical pass reads), then vertical, each pass skipped
// when its axis keeps its size.
func (p *pilImage) resample(w, h int) *pilImage {
	needH, needV := w != p.w, h != p.h
	horiz := precomputeCoeffs(p.w, w)
	vert := precomputeCoeffs(p.h, h)
	src := p
	if needH {
		first := vert.bounds[0]
		last := vert.bounds[2*h-2] + vert.bounds[2*h-1]
		for i := 0; i < h; i++ {
			vert.bounds[2*i] -= first
		}
		src = p.horizontal(horiz, w, first, last)
	}
	if needV {
		src = src.vertical(vert, h)
	}
	return src
}

// horizontal resamples rows [first, last) of p to width w.
func (p *pilImage) horizontal(c coeffs, w, first, last int) *pilImage {
	rows := last - first
	q := &pilImage{mode: p.mode, w: w, h: rows, bands: p.bands, pal: p.pal}
	if p.i32 != nil {
		q.i32 = make([]int32, w*rows)
		for y := 0; y < rows; y++ {
			in := p.i32[(y+first)*p.w:]
			for xx := 0; xx < w; xx++ {
				xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
				k := c.k[xx*c.ksize:]
				ss := 0.0
				for x := 0; x < n; x++ {
					ss += float64(float64(in[xmin+x]) * k[x])
				}
				q.i32[y*w+xx] = roundUp(ss)
			}
		}
		return q
	}
	b := p.bands
	q.pix = make([]uint8, w*rows*b)
	const half = int32(1 << (precisionBits - 1))
	for y := 0; y < rows; y++ {
		in := p.pix[(y+first)*p.w*b : (y+first+1)*p.w*b]
		out := q.pix[y*w*b : (y+1)*w*b]
		for xx := 0; xx < w; xx++ {
			xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
			k := c.fixed[xx*c.ksize : xx*c.ksize+n]
			src := in[xmin*b : (xmin+n)*b]
			o := out[xx*b : xx*b+b]
			// All bands of a pixel in one pass over the taps; the sums are the same
			// integers in the same order as PIL's per-band loops.
			switch b {
			case 1:
				a := half
				for x, kv := range k {
					a += int32(src[x]) * kv
				}
				o[0] = clip8fixed(a)
			case 3:
				a0, a1, a2 := half, half, half
				for x, kv := range k {
					px := src[3*x : 3*x+3]
					a0 += int32(px[0]) * kv
					a1 += int32(px[1]) * kv
					a2 += int32(px[2]) * kv
				}
				o[0], o[1], o[2] = clip8fixed(a0), clip8fixed(a1), clip8fixed(a2)
			default:
				a0, a1, a2, a3 := half, half, half, half
				for x, kv := range k {
					px := src[4*x : 4*x+4]
					a0 += int32(px[0]) * kv
					a1 += int32(px[1]) * kv
					a2 += int32(px[2]) * kv
					a3 += int32(px[3]) * kv
				}
				o[0], o[1], o[2], o[3] = clip8fixed(a0), clip8fixed(a1), clip8fixed(a2), clip8fixed(a3)
			}
		}
	}
	return q
}

// vertical resamples p to height h.
func (p *pilImage) vertical(c coeffs, h int) *pilImage {
	w := p.w
	q := &pilImage{mode: p.mode, w: w, h: h, bands: p.bands, pal: p.pal}
	if p.i32 != nil {
		q.i32 = make([]int32, w*h)
		for yy := 0; yy < h; yy++ {
			ymin, n := c.bounds[2*yy], c.bounds[2*yy+1]
			k := c.k[yy*c.ksize:]
			for xx := 0; xx < w; xx++ {
				ss := 0.0
				for y := 0; y < n; y++ {
					ss += float64(float64(p.i32[(ymin+y)*w+xx]) * k[y])
				}
				q.i32[yy*w+xx] = roundUp(ss)
			}
		}
		return q
	}
	b := p.bands
	rowLen := w * b
	q.pix = make([]uint8, h*rowLen)
	acc := make([]int32, rowLen)
	for yy := 0; yy < h; yy++ {
		ymin, n := c.bounds[2*yy], c.bounds[2*yy+1]
		k := c.fixed[yy*c.ksize : yy*c.ksize+n]
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		// Row by row over the taps: each sample's sum is still taken in tap order.
		for y, kv := range k {
			row := p.pix[(ymin+y)*rowLen : (ymin+y+1)*rowLen]
			for i, v := range row {
				acc[i] += int32(v) * kv
			}
		}
		out := q.pix[yy*rowLen : (yy+1)*rowLen]
		for i, a := range acc {
			out[i] = clip8fixed(a)
		}
	}
	return q
}

// roundUp is PIL's ROUND_UP for the 32-bit integer path: half away from zero.
func roundUp(f float64) int32 {
	if f >= 0 {
		return int32(f + 0.5)
	}
	return int32(f - 0.5)
}

// nearest is PIL's ImagingScaleAffine (the resize path of modes P and 1): source
// coordinate for output i is int(s/2 + i*s), s = in/out, accumulated by addition.
func (p *pilImage) nearest(w, h int) *pilImage {
	xs := nearestIndex(p.w, w)
	ys := nearestIndex(p.h, h)
	b := p.bands
	q := &pilImage{mode: p.mode, w: w, h: h, bands: b, pal: p.pal, pix: make([]uint8, w*h*b)}
	for y, sy := range ys {
		for x, sx := range xs {
			copy(q.pix[(y*w+x)*b:(y*w+x+1)*b], p.pix[(sy*p.w+sx)*b:])
		}
	}
	return q
}

func nearestIndex(in, out int) []int {
	s := float64(in) / float64(out)
	pos := s * 0.5
	idx := make([]int, out)
	for i := range idx {
		// Positions stay inside [0, in) for a pure scale; clamp against rounding anyway.
		idx[i] = min(max(int(pos), 0), in-1)
		pos += s
	}
	return idx
}
