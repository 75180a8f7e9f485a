package weights

import (
	"math"
	"sync"
)

// F16ToF32 converts an IEEE binary16 value (as bits) to float32. Every binary16 value is
// exactly representable in float32.
func F16ToF32(h uint16) float32 {
	f16Once.Do(initF16Table)
	return f16Table[h]
}

var (
	f16Once  sync.Once
	f16Table *[1 << 16]float32 // 256 KiB, made on first use
)

func initF16Table() {
	t := new([1 << 16]float32)
	for i := range t {
		t[i] = f16ToF32Slow(uint16(i))
	}
	f16Table = t
}

func f16ToF32Slow(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf, NaN (payload kept)
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: normalise the mantissa into float32's implicit-bit form
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// F32ToF16 rounds a float32 to binary16, to nearest with ties to even, like ggml's
// ggml_compute_fp32_to_fp16 (and F16C's vcvtps2ph): overflow gives infinity, values below
// half the smallest subnormal give (signed) zero, every NaN becomes the quiet NaN 0x7E00
// with the sign kept.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e >= 1 {
		h := sign | uint16(e)<<10 | uint16(mant>>13)
		rem := mant & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
			h++ // a carry out of the mantissa correctly bumps the exponent (up to inf)
		}
		return h
	}
	// binary16 subnormal (or zero): value / 2^-24 = m * 2^(exp-126)
	s := 126 - exp
	if s >= 25 {
		return sign
	}
	m := mant | 0x800000
	hm := m >> uint(s)
	rem := m & (1<<uint(s) - 1)
	half := uint32(1) << uint(s-1)
	if rem > half || (rem == half && hm&1 == 1) {
		hm++
	}
	return sign | uint16(hm)
}

// BF16ToF32 converts a bfloat16 value (as bits) to float32 (exact).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 rounds a float32 to bfloat16 to nearest with ties to even, like ggml's
// ggml_compute_fp32_to_bf16 (and torch's .to(torch.bfloat16)): NaNs stay NaN, made quiet.
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + (0x7fff + (u>>16)&1)) >> 16)
}
