// Package half converts between float32 and the 16-bit floats a device may keep activations in (bfloat16
// and IEEE 754 half), bit for bit as the GPU's conversions do (cuda_bf16.h, cuda_fp16.h): round to nearest
// even, half's subnormals kept, overflow to infinity, every NaN to the canonical 0x7fff. It also packs
// float32 values in (N, C, H, W) order into a tensor's dtype and layout and back, which is how Upload and
// Download see every tensor as float32 NCHW.
package half

import (
	"encoding/binary"
	"fmt"
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

// Pack writes src, float32 values of a tensor of shape in (N, C, H, W) order, into dst as the tensor's
// dtype (f32, bf16 or f16, little-endian) in layout. dst must hold len(src)*dt.Size() bytes. Tensors of a
// rank other than 4 are NCHW.
func Pack(dst []byte, src []float32, shape backend.Shape, dt backend.DType, layout backend.Layout) error {
	if err := checkPack(len(dst), len(src), shape, dt, layout); err != nil {
		return err
	}
	put := putter(dt)
	forEach(shape, layout, func(i, j int) { put(dst, j, src[i]) })
	return nil
}

// Unpack is the inverse of Pack: dst gets the float32 values of the tensor in src in (N, C, H, W) order.
func Unpack(dst []float32, src []byte, shape backend.Shape, dt backend.DType, layout backend.Layout) error {
	if err := checkPack(len(src), len(dst), shape, dt, layout); err != nil {
		return err
	}
	get := getter(dt)
	forEach(shape, layout, func(i, j int) { dst[i] = get(src, j) })
	return nil
}

// forEach calls fn with the (N, C, H, W)-order index i of every element of a tensor of shape and the
// index j it has in layout.
func forEach(shape backend.Shape, layout backend.Layout, fn func(i, j int)) {
	if layout != backend.NHWC {
		for i := range shape.Numel() {
			fn(i, i)
		}
		return
	}
	n, c, hw := shape[0], shape[1], shape[2]*shape[3]
	i := 0
	for in := range n {
		for ic := range c {
			j := in*hw*c + ic
			for range hw {
				fn(i, j)
				i++
				j += c
			}
		}
	}
}

func checkPack(bytes, values int, shape backend.Shape, dt backend.DType, layout backend.Layout) error {
	switch {
	case !dt.Float():
		return fmt.Errorf("half: %v is not a floating-point dtype", dt)
	case values != shape.Numel():
		return fmt.Errorf("half: %d values for a tensor of shape %v", values, shape)
	case bytes != values*dt.Size():
		return fmt.Errorf("half: %d bytes for %d values of %v", bytes, values, dt)
	case layout == backend.NHWC && len(shape) != 4:
		return fmt.Errorf("half: NHWC tensor of shape %v; only 4-D tensors are channels-last", shape)
	}
	return nil
}

func putter(dt backend.DType) func(b []byte, i int, v float32) {
	switch dt {
	case backend.BF16:
		return func(b []byte, i int, v float32) { binary.LittleEndian.PutUint16(b[2*i:], ToBF16(v)) }
	case backend.F16:
		return func(b []byte, i int, v float32) { binary.LittleEndian.PutUint16(b[2*i:], ToF16(v)) }
	}
	return func(b []byte, i int, v float32) { binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v)) }
}

func getter(dt backend.DType) func(b []byte, i int) float32 {
	switch dt {
	case backend.BF16:
		return func(b []byte, i int) float32 { return FromBF16(binary.LittleEndian.Uint16(b[2*i:])) }
	case backend.F16:
		return func(b []byte, i int) float32 { return FromF16(binary.LittleEndian.Uint16(b[2*i:])) }
	}
	return func(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
}
