// Package half converts between float32 and the 16-bit floats a device may keep activations in (bfloat16
// and IEEE 754 half), bit for bit as the GPU's conversions do (cuda_bf16.h, cuda_fp16.h): round to nearest
// even, half's subnormals kept, overflow to infinity, every NaN to the canonical 0x7fff. The tests of the
// CUDA backend round their inputs and references with it; interop widens 16-bit safetensors with it.
package half

import (
	"math"

	"resnet/internal/backend"
)

// canonicalNaN is what both conversions make of any NaN.
const canonicalNaN = 0x7fff

// FromBF16 widens a bfloat16 to float32 (exact).
func FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// ToBF16 rounds f to the nearest bfloat16, ties to even.
func ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return canonicalNaN
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// FromF16 widens an IEEE half to float32 (exact).
func FromF16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: man * 2^-24.
	v := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// ToF16 rounds f to the nearest IEEE half, ties to even; magnitudes past the largest half (65504, plus
// half an ulp) become infinity.
func ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	a := u & 0x7fffffff
	switch {
	case a > 0x7f800000:
		return canonicalNaN
	case a >= 0x477ff000: // >= 65520: rounds to infinity
		return sign | 0x7c00
	case a >= 0x38800000: // normal half: exponent >= -14
		// Rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits, ties to even; a carry
		// out of the mantissa moves into the exponent, which is what rounding up to the next binade means.
		r := a - 0x38000000
		r += 0xfff + (r>>13)&1
		return sign | uint16(r>>13)
	case a < 0x33000000: // below 2^-25: rounds to zero
		return sign
	}
	// Subnormal half: value = m * 2^-24, m = round(f * 2^24) with ties to even.
	exp := a >> 23
	man := a&0x7fffff | 0x800000 // 24-bit significand, value = man * 2^(exp-150)
	shift := 126 - exp           // from 2^(exp-150) units to 2^-24 units: divide by 2^(126-exp)
	m := man >> shift            // truncated
	rem := man & (1<<shift - 1)  // dropped bits
	halfway := uint32(1) << (shift - 1)
	if rem > halfway || (rem == halfway && m&1 == 1) {
		m++
	}
	return sign | uint16(m)
}

// Round is f rounded to dt and widened back: what storing f in a tensor of dt keeps.
func Round(dt backend.DType, f float32) float32 {
	switch dt {
	case backend.BF16:
		return FromBF16(ToBF16(f))
	case backend.F16:
		return FromF16(ToF16(f))
	}
	return f
}
