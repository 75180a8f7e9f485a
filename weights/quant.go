package weights

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Block codecs, bit-exact with ggml's reference quantizers (ggml-quants.c,
// quantize_row_*_ref, which ggml_quantize_chunk uses without an importance matrix) and
// its dequantizers (dequantize_row_*). Block layouts (little-endian, ggml-common.h):
//
//	Q8_0: d f16 | qs int8[32]                      value = qs*d
//	Q4_0: d f16 | qs [16] (low nibble: values 0..15, high nibble: 16..31)   value = (q-8)*d
//	Q4_1: d f16 | m f16 | qs [16]                  value = q*d + m
//	Q5_0: d f16 | qh u32 (bit j: 5th bit of value j) | qs [16]   value = (q-16)*d
//	Q5_1: d f16 | m f16 | qh u32 | qs [16]         value = q*d + m
//	Q2_K..Q6_K: 256-value super-blocks, decoded only (see dequantize*K).
//
// Every float32 product is written through an explicit float32 conversion so that the Go
// compiler cannot fuse it with an addition into an FMA (the Go spec allows fusing, an
// explicit conversion forbids it); the tests compare with the linked ggml bit for bit.

// Quantize encodes src as dtype d: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1.
// len(src) must be a multiple of d's block size; ggml quantizes row by row, which gives the
// same bytes as one flat call whenever the row length is a multiple of the block size (the
// GGUF writer checks that).
func Quantize(d DType, src []float32) ([]byte, error) {
	bs := d.BlockSize()
	if !d.Valid() || bs == 0 {
		return nil, fmt.Errorf("weights: quantize: invalid dtype %s", d)
	}
	if len(src)%bs != 0 {
		return nil, fmt.Errorf("weights: quantize %s: %d values is not a multiple of the block size %d", d, len(src), bs)
	}
	out := make([]byte, len(src)/bs*d.BlockBytes())
	if err := quantizeInto(d, src, out); err != nil {
		return nil, err
	}
	return out, nil
}

// QuantizeParallel is Quantize split over up to threads goroutines (whole blocks each);
// the bytes are the same.
func QuantizeParallel(d DType, src []float32, threads int) ([]byte, error) {
	bs := d.BlockSize()
	const minChunk = 1 << 16 // values; below this a goroutine costs more than it saves
	if threads <= 1 || len(src) < 2*minChunk || !d.Valid() || len(src)%bs != 0 {
		return Quantize(d, src)
	}
	if _, err := Quantize(d, nil); err != nil {
		return nil, err // a type Quantize does not write
	}
	blocks := len(src) / bs
	per := max((blocks+threads-1)/threads, minChunk/bs)
	out := make([]byte, blocks*d.BlockBytes())
	errs := make(chan error, threads)
	n := 0
	for b0 := 0; b0 < blocks; b0 += per {
		b1 := min(b0+per, blocks)
		n++
		go func() {
			errs <- quantizeInto(d, src[b0*bs:b1*bs], out[b0*d.BlockBytes():b1*d.BlockBytes()])
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

// quantizeInto encodes src into out, which has exactly the right size.
func quantizeInto(d DType, src []float32, out []byte) error {
	switch d {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b < len(src)/32; b++ {
			quantizeQ8_0(src[32*b:32*b+32], out[34*b:34*b+34])
		}
	case Q4_0:
		for b := 0; b < len(src)/32; b++ {
			quantizeQ4_0(src[32*b:32*b+32], out[18*b:18*b+18])
		}
	case Q4_1:
		for b := 0; b < len(src)/32; b++ {
			quantizeQ4_1(src[32*b:32*b+32], out[20*b:20*b+20])
		}
	case Q5_0:
		for b := 0; b < len(src)/32; b++ {
			quantizeQ5_0(src[32*b:32*b+32], out[22*b:22*b+22])
		}
	case Q5_1:
		for b := 0; b < len(src)/32; b++ {
			quantizeQ5_1(src[32*b:32*b+32], out[24*b:24*b+24])
		}
	default:
		return fmt.Errorf("weights: quantize: %s is not a type synth writes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)", d)
	}
	return nil
}

// CanDequantize reports whether Dequantize supports d.
func CanDequantize(d DType) bool {
	switch d {
	case F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K:
		return true
	}
	return false
}

// Dequantize decodes n values of dtype d from data into a new float32 slice. Supported:
// F32, F16, BF16, F64 (rounded), Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
func Dequantize(d DType, data []byte, n int) ([]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("weights: dequantize %s: negative count %d", d, n)
	}
	if !CanDequantize(d) {
		return nil, fmt.Errorf("weights: dequantize: %w: no float32 conversion for %s", ErrDType, d)
	}
	size, err := d.ByteSize(int64(n))
	if err != nil {
		return nil, fmt.Errorf("weights: dequantize: %w", err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("weights: dequantize %s: %d bytes for %d values, want %d", d, len(data), n, size)
	}
	out := make([]float32, n)
	switch d {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
		}
	default:
		bs, bb := d.BlockSize(), d.BlockBytes()
		dec := blockDecoders[d]
		for b := 0; b < n/bs; b++ {
			dec(data[b*bb:(b+1)*bb], out[b*bs:(b+1)*bs])
		}
	}
	return out, nil
}

var blockDecoders = map[DType]func(blk []byte, y []float32){
	Q8_0: dequantizeQ8_0,
	Q4_0: dequantizeQ4_0,
	Q4_1: dequantizeQ4_1,
	Q5_0: dequantizeQ5_0,
	Q5_1: dequantizeQ5_1,
	Q2_K: dequantizeQ2_K,
	Q3_K: dequantizeQ3_K,
	Q4_K: dequantizeQ4_K,
	Q5_K: dequantizeQ5_K,
	Q6_K: dequantizeQ6_K,
}

func half(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

func putHalf(b []byte, f float32) { binary.LittleEndian.PutUint16(b, F32ToF16(f)) }

// absMax returns the value of largest magnitude (the first one on ties) and its magnitude.
func absMax(x []float32) (maxv, amax float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, maxv = a, v
		}
	}
	return maxv, amax
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func inv(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// truncInt converts like C's (int) cast of a float in range; NaN gives 0 instead of
// undefined behaviour (ggml's result for NaN input is unspecified).
func truncInt(f float32) int {
	if f != f {
		return 0
	}
	return int(f)
}

func quantizeQ8_0(x []float32, y []byte) {
	_, amax := absMax(x)
	d := amax / 127
	id := inv(d)
	putHalf(y[0:], d)
	for j, v := range x {
		// roundf: half away from zero, as math.Round
		y[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
	}
}

func quantizeQ4_0(x []float32, y []byte) {
	maxv, _ := absMax(x)
	d := maxv / -8
	id := inv(d)
	putHalf(y[0:], d)
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[j+16] * id)
		y[2+j] = byte(min(15, truncInt(x0+8.5))) | byte(min(15, truncInt(x1+8.5)))<<4
	}
}

func quantizeQ4_1(x []float32, y []byte) {
	lo, hi := minMax(x)
	d := (hi - lo) / 15
	id := inv(d)
	putHalf(y[0:], d)
	putHalf(y[2:], lo)
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - lo) * id)
		x1 := float32((x[j+16] - lo) * id)
		y[4+j] = byte(min(15, truncInt(x0+0.5))) | byte(min(15, truncInt(x1+0.5)))<<4
	}
}

func quantizeQ5_0(x []float32, y []byte) {
	maxv, _ := absMax(x)
	d := maxv / -16
	id := inv(d)
	putHalf(y[0:], d)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32(x[j] * id)
		x1 := float32(x[j+16] * id)
		q0 := uint32(min(31, truncInt(x0+16.5)))
		q1 := uint32(min(31, truncInt(x1+16.5)))
		y[6+j] = byte(q0&0xf) | byte(q1&0xf)<<4
		qh |= (q0 >> 4 & 1) << j
		qh |= (q1 >> 4 & 1) << (j + 16)
	}
	binary.LittleEndian.PutUint32(y[2:], qh)
}

func quantizeQ5_1(x []float32, y []byte) {
	lo, hi := minMax(x)
	d := (hi - lo) / 31
	id := inv(d)
	putHalf(y[0:], d)
	putHalf(y[2:], lo)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := float32((x[j] - lo) * id)
		x1 := float32((x[j+16] - lo) * id)
		// ggml casts to uint8_t without clamping; values are 0..31 for finite input
		q0 := uint32(byte(truncInt(x0 + 0.5)))
		q1 := uint32(byte(truncInt(x1 + 0.5)))
		y[8+j] = byte(q0&0xf) | byte(q1&0xf)<<4
		qh |= (q0 >> 4 & 1) << j
		qh |= (q1 >> 4 & 1) << (j + 16)
	}
	binary.LittleEndian.PutUint32(y[4:], qh)
}

func dequantizeQ8_0(b []byte, y []float32) {
	d := half(b)
	for j := range 32 {
		y[j] = float32(int8(b[2+j])) * d
	}
}

func dequantizeQ4_0(b []byte, y []float32) {
	d := half(b)
	for j := range 16 {
		y[j] = float32(int(b[2+j]&0xf)-8) * d
		y[j+16] = float32(int(b[2+j]>>4)-8) * d
	}
}

// mulAdd is a*b + c. In every decoder below a*b is exact in float32 (an f16 scale, 11
// significant bits, times a small integer), so it does not matter whether ggml's C was
// compiled with FMA contraction: fused or not, the result is the same.
func mulAdd(a, b, c float32) float32 { return float32(a*b) + c }

func dequantizeQ4_1(b []byte, y []float32) {
	d, m := half(b), half(b[2:])
	for j := range 16 {
		y[j] = mulAdd(float32(b[4+j]&0xf), d, m)
		y[j+16] = mulAdd(float32(b[4+j]>>4), d, m)
	}
}

func dequantizeQ5_0(b []byte, y []float32) {
	d := half(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	for j := range 16 {
		h0 := int(qh>>j) << 4 & 0x10
		h1 := int(qh>>(j+12)) & 0x10
		y[j] = float32(int(b[6+j]&0xf)|h0-16) * d
		y[j+16] = float32(int(b[6+j]>>4)|h1-16) * d
	}
}

func dequantizeQ5_1(b []byte, y []float32) {
	d, m := half(b), half(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	for j := range 16 {
		h0 := int(qh>>j) << 4 & 0x10
		h1 := int(qh>>(j+12)) & 0x10
		y[j] = mulAdd(float32(int(b[8+j]&0xf)|h0), d, m)
		y[j+16] = mulAdd(float32(int(b[8+j]>>4)|h1), d, m)
	}
}

// K-quants: 256-value super-blocks (QK_K = 256).

// scaleMinK4 unpacks the j-th 6-bit scale and min of Q4_K/Q5_K's 12-byte scales field.
func scaleMinK4(j int, q []byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// Q2_K: scales[16] | qs[64] | d f16 | dmin f16
func dequantizeQ2_K(b []byte, y []float32) {
	scales, qs := b[0:16], b[16:80]
	d, dmin := half(b[80:]), half(b[82:])
	is, o := 0, 0
	for n := 0; n < 256; n += 128 {
		q := qs[n/4 : n/4+32]
		for shift := uint(0); shift < 8; shift += 2 {
			for half := 0; half < 2; half++ {
				sc := scales[is]
				is++
				dl, ml := float32(d*float32(sc&0xf)), float32(dmin*float32(sc>>4))
				for l := range 16 {
					y[o] = mulAdd(dl, float32((q[l+16*half]>>shift)&3), -ml)
					o++
				}
			}
		}
	}
}

// Q3_K: hmask[32] | qs[64] | scales[12] (16 6-bit scales) | d f16
func dequantizeQ3_K(b []byte, y []float32) {
	hm, qs, raw := b[0:32], b[32:96], b[96:108]
	dAll := half(b[108:])
	var aux [4]uint32
	for i := range 3 {
		aux[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	tmp := aux[2]
	aux[2] = (aux[0]>>4)&kmask2 | ((tmp>>4)&kmask1)<<4
	aux[3] = (aux[1]>>4)&kmask2 | ((tmp>>6)&kmask1)<<4
	aux[0] = aux[0]&kmask2 | (tmp&kmask1)<<4
	aux[1] = aux[1]&kmask2 | ((tmp>>2)&kmask1)<<4
	var scales [16]int8
	for i := range 16 {
		scales[i] = int8(aux[i/4] >> (8 * (i % 4)))
	}
	is, o := 0, 0
	m := byte(1)
	for n := 0; n < 256; n += 128 {
		q := qs[n/4 : n/4+32]
		for shift := uint(0); shift < 8; shift += 2 {
			for half := 0; half < 2; half++ {
				dl := float32(dAll * float32(int(scales[is])-32))
				is++
				for l := range 16 {
					v := int((q[l+16*half] >> shift) & 3)
					if hm[l+16*half]&m == 0 {
						v -= 4
					}
					y[o] = float32(dl * float32(v))
					o++
				}
			}
			m <<= 1
		}
	}
}

// Q4_K: d f16 | dmin f16 | scales[12] | qs[128]
func dequantizeQ4_K(b []byte, y []float32) {
	d, dmin := half(b), half(b[2:])
	scales, qs := b[4:16], b[16:144]
	o := 0
	for j, is := 0, 0; j < 256; j, is = j+64, is+2 {
		q := qs[j/2 : j/2+32]
		sc, m := scaleMinK4(is, scales)
		d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
		for l := range 32 {
			y[o+l] = mulAdd(d1, float32(q[l]&0xf), -m1)
			y[o+32+l] = mulAdd(d2, float32(q[l]>>4), -m2)
		}
		o += 64
	}
}

// Q5_K: d f16 | dmin f16 | scales[12] | qh[32] | qs[128]
func dequantizeQ5_K(b []byte, y []float32) {
	d, dmin := half(b), half(b[2:])
	scales, qh, qs := b[4:16], b[16:48], b[48:176]
	o := 0
	u1, u2 := byte(1), byte(2)
	for j, is := 0, 0; j < 256; j, is = j+64, is+2 {
		ql := qs[j/2 : j/2+32]
		sc, m := scaleMinK4(is, scales)
		d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
		for l := range 32 {
			v1, v2 := int(ql[l]&0xf), int(ql[l]>>4)
			if qh[l]&u1 != 0 {
				v1 += 16
			}
			if qh[l]&u2 != 0 {
				v2 += 16
			}
			y[o+l] = mulAdd(d1, float32(v1), -m1)
			y[o+32+l] = mulAdd(d2, float32(v2), -m2)
		}
		o += 64
		u1 <<= 2
		u2 <<= 2
	}
}

// Q6_K: ql[128] | qh[64] | scales int8[16] | d f16
func dequantizeQ6_K(b []byte, y []float32) {
	d := half(b[208:])
	for n := 0; n < 2; n++ {
		ql, qh, sc := b[64*n:64*n+64], b[128+32*n:128+32*n+32], b[192+8*n:192+8*n+8]
		yy := y[128*n:]
		for l := range 32 {
			is := l / 16
			q1 := int(ql[l]&0xf|(qh[l]>>0&3)<<4) - 32
			q2 := int(ql[l+32]&0xf|(qh[l]>>2&3)<<4) - 32
			q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			yy[l] = float32(float32(d*float32(int8(sc[is]))) * float32(q1))
			yy[l+32] = float32(float32(d*float32(int8(sc[is+2]))) * float32(q2))
			yy[l+64] = float32(float32(d*float32(int8(sc[is+4]))) * float32(q3))
			yy[l+96] = float32(float32(d*float32(int8(sc[is+6]))) * float32(q4))
		}
	}
}
