// This file holds the pixel operations of the automatic augmentation policies (autoaugment.go) on 8-bit
// planar images: shears, translations and rotations with nearest-neighbour sampling and black fill, and the
// colour operations (brightness, saturation, contrast, sharpness, posterize, solarize, autocontrast,
// equalize, invert). Each computes what torchvision's v2 functional op computes on a uint8 tensor: the same
// float32 arithmetic in the same order, including the fused multiply-adds of PyTorch's vectorised CPU
// kernels, and the same truncation back to 8 bits, so that the outputs agree bit for bit
// (augment_golden_test.go checks them against torchvision).

package vision

import (
	"fmt"
	"math"
)

// Planes is an 8-bit image stored plane by plane (CHW: all of channel 0, then channel 1, ...), the layout
// of torchvision's uint8 image tensors, with 1 or 3 channels. Pix has at least C*H*W bytes.
type Planes struct {
	C, H, W int
	Pix     []uint8
}

// Resize makes p a c x h x w image, reusing its buffer when it is large enough. Contents are undefined.
func (p *Planes) Resize(c, h, w int) {
	p.C, p.H, p.W = c, h, w
	p.Pix = grow(p.Pix, c*h*w)
}

// plane is channel ch of p.
func (p *Planes) plane(ch int) []uint8 {
	n := p.H * p.W
	return p.Pix[ch*n : (ch+1)*n]
}

func (p *Planes) check() {
	if (p.C != 1 && p.C != 3) || p.H < 1 || p.W < 1 || len(p.Pix) < p.C*p.H*p.W {
		panic(fmt.Sprintf("vision: planar image %dx%dx%d with %d bytes (want 1 or 3 channels)", p.C, p.H, p.W, len(p.Pix)))
	}
}

// fma32 is a*b + c rounded once to float32: the fused multiply-add that PyTorch's vectorised CPU kernels use
// for add(x, y, alpha) and linspace. a*b is exact in float64, so their sum rounded to float64 and then to
// float32 is the single correct rounding except when the float64 sum lies exactly half-way between two
// float32s (nearTie) without the exact sum being there; roundOnce then decides the side. The hot loops
// below spell this out, so that the common case is inlined.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	if nearTie(s) {
		return roundOnce(p, float64(c), s)
	}
	return float32(s)
}

// nearTie reports whether float32(s) may round s differently from the exact value s was rounded from: s
// is half-way between two float32s (the 29 fraction bits under float32's 23 are 100...0), or in float32's
// subnormal range (below the biased float64 exponent 1023-126; the shift drops the sign).
func nearTie(s float64) bool {
	b := math.Float64bits(s)
	return b&(1<<29-1) == 1<<28 || b<<1 < (1023-126)<<53
}

// roundOnce is p + c rounded once to float32, where s is p + c rounded to float64: the rounding error,
// recovered exactly (Knuth's two-sum), is folded into the last bit of s (round to odd) before the float32
// rounding.
func roundOnce(p, c, s float64) float32 {
	t := s - p
	if e := (p - (s - t)) + (c - t); e != 0 {
		if bits := math.Float64bits(s); bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// to8 is PyTorch's clamp to [0, 255] followed by the float-to-uint8 conversion, which truncates.
func to8(v float32) uint8 {
	switch {
	case v >= 255:
		return 255
	case v > 0:
		return uint8(v)
	}
	return 0
}

// lut maps every sample of p through table.
func (p *Planes) lut(ch int, table *[256]uint8) {
	s := p.plane(ch)
	for i, v := range s {
		s[i] = table[v]
	}
}

// lutAll maps every sample of every channel through table.
func (p *Planes) lutAll(table *[256]uint8) {
	for ch := range p.C {
		p.lut(ch, table)
	}
}

// Brightness scales every sample by factor (v2.functional.adjust_brightness).
func Brightness(p *Planes, factor float64) {
	p.check()
	var t [256]uint8
	f := float32(factor)
	for v := range t {
		t[v] = to8(float32(v) * f)
	}
	p.lutAll(&t)
}

// blendTable is the 8-bit result of torchvision's _blend(v, other, ratio) for every v:
// v*ratio + other*(1-ratio), fused, clamped and truncated.
func blendTable(t *[256]uint8, other float32, ratio float64) {
	r, a := float32(ratio), float32(1-ratio)
	for v := range t {
		t[v] = to8(fma32(other, a, float32(v)*r))
	}
}

// gray is torchvision's grayscale level of one pixel before the cast: floor(0.2989 r + 0.587 g + 0.114 b)
// in float32, the two additions fused. With 8-bit r, g, b and these float32 weights every fused sum is
// exact in float64 (it spans at most 35 bits, from 2^8 down to 0.114's last bit, 2^-27), so one float32
// rounding of the float64 sum is the fused result.
func gray(r, g, b uint8) float32 {
	x := float32(r) * float32(0.2989)
	x = float32(float64(g)*float64(float32(0.587)) + float64(x))
	x = float32(float64(b)*float64(float32(0.114)) + float64(x))
	return float32(math.Floor(float64(x)))
}

// Saturation blends each pixel with its grayscale level: factor 0 is gray, 1 the image, above 1 more
// saturated (v2.functional.adjust_saturation). A one-channel image is left as it is. sc is scratch.
func Saturation(p *Planes, factor float64, sc *AugmentScratch) {
	p.check()
	if p.C == 1 {
		return
	}
	// The blend of level v with gray level l is v*factor + l*(1-factor), fused: both products are table
	// lookups (the second exact in float64), and only their sum is rounded per pixel.
	var mix, scaled [256]float64
	r, a := float32(factor), float64(float32(1-factor))
	for v := range mix {
		mix[v] = float64(v) * a
		scaled[v] = float64(float32(v) * r)
	}
	n := p.H * p.W
	sc.tmp.Resize(1, p.H, p.W)
	levels := sc.tmp.Pix[:n] // the gray levels are integers in [0, 254]
	R, G, B := p.plane(0), p.plane(1), p.plane(2)
	for i := range levels {
		levels[i] = uint8(gray(R[i], G[i], B[i]))
	}
	for ch := range 3 {
		c := p.plane(ch)
		for i, l := range levels {
			x, y := mix[l], scaled[c[i]]
			s := x + y
			o := float32(s)
			if nearTie(s) {
				o = roundOnce(x, y, s)
			}
			c[i] = to8(o)
		}
	}
}

// Contrast blends the image with the mean of its grayscale levels (v2.functional.adjust_contrast). The
// levels are integers, so their sum here is exact; PyTorch's float32 sum is too while it stays below 2^24
// (every image of up to 66052 pixels, 257 x 257, and most larger ones), beyond which its summation order
// may move the mean by a rounding.
func Contrast(p *Planes, factor float64) {
	p.check()
	var sum int64
	if p.C == 3 {
		R, G, B := p.plane(0), p.plane(1), p.plane(2)
		for i := range R {
			sum += int64(gray(R[i], G[i], B[i]))
		}
	} else {
		for _, v := range p.plane(0) {
			sum += int64(v)
		}
	}
	mean := float32(sum) / float32(p.H*p.W)
	var t [256]uint8
	blendTable(&t, mean, factor)
	p.lutAll(&t)
}

// Sharpness blends the image with a smoothed copy of it (a 3x3 kernel of ones with 5 in the middle, over
// 13), keeping the border pixels (v2.functional.adjust_sharpness). torchvision rounds the float32
// convolution; the exact value is an integer over 13, never half-way, so the integer rounding here is the
// same. sc is scratch.
func Sharpness(p *Planes, factor float64, sc *AugmentScratch) {
	p.check()
	h, w := p.H, p.W
	if h <= 2 || w <= 2 {
		return
	}
	a := float64(float32(1 - factor))
	sc.tmp.Resize(1, h, w)
	for ch := range p.C {
		in := p.plane(ch)
		out := sc.tmp.Pix[:h*w]
		copy(out, in)
		for y := 1; y < h-1; y++ {
			up, mid, down := in[(y-1)*w:y*w], in[y*w:(y+1)*w], in[(y+1)*w:(y+2)*w]
			for x := 1; x < w-1; x++ {
				k := int(up[x-1]) + int(up[x]) + int(up[x+1]) + int(mid[x-1]) + 5*int(mid[x]) + int(mid[x+1]) +
					int(down[x-1]) + int(down[x]) + int(down[x+1])
				v := int(mid[x])
				d := float64((2*k+13)/26-v) * a // (round(k / 13) - v) (1 - factor)
				s := d + float64(v)
				o := float32(s)
				if nearTie(s) {
					o = roundOnce(d, float64(v), s)
				}
				out[y*w+x] = to8(o)
			}
		}
		copy(in, out)
	}
}

// Posterize keeps the top bits bits of every sample (v2.functional.posterize); bits is in [0, 8].
func Posterize(p *Planes, bits int) {
	p.check()
	if bits >= 8 {
		return
	}
	mask := uint8(0xFF << (8 - max(bits, 0)))
	var t [256]uint8
	for v := range t {
		t[v] = uint8(v) & mask
	}
	p.lutAll(&t)
}

// Solarize inverts every sample at or above threshold (v2.functional.solarize). The comparison is in
// float32, as PyTorch promotes it.
func Solarize(p *Planes, threshold float64) {
	p.check()
	th := float32(threshold)
	var t [256]uint8
	for v := range t {
		t[v] = uint8(v)
		if float32(v) >= th {
			t[v] = 255 - uint8(v)
		}
	}
	p.lutAll(&t)
}

// Invert replaces every sample v by 255 - v (v2.functional.invert).
func Invert(p *Planes) {
	p.check()
	for i, v := range p.Pix[:p.C*p.H*p.W] {
		p.Pix[i] = 255 - v
	}
}

// AutoContrast stretches each channel linearly so that its darkest sample becomes 0 and its brightest 255
// (v2.functional.autocontrast); a constant channel is left as it is.
func AutoContrast(p *Planes) {
	p.check()
	for ch := range p.C {
		lo, hi := uint8(255), uint8(0)
		for _, v := range p.plane(ch) {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo == hi {
			continue
		}
		inv := float32(hi-lo) * float32(1.0/255)
		var t [256]uint8
		for v := range t {
			t[v] = to8((float32(v) - float32(lo)) / inv)
		}
		p.lut(ch, &t)
	}
}

// Equalize equalises the histogram of each channel with PIL's lookup table, as
// v2.functional.equalize does: with step = (pixels not at the channel's brightest level) / 255, level k
// maps to (pixels below k + step/2) / step; a channel whose step is 0 is left as it is.
func Equalize(p *Planes) {
	p.check()
	n := p.H * p.W
	for ch := range p.C {
		var hist [256]int
		s := p.plane(ch)
		top := 0
		for _, v := range s {
			hist[v]++
			top = max(top, int(v))
		}
		step := (n - hist[top]) / 255
		if step == 0 {
			continue
		}
		var t [256]uint8
		below := 0
		for k := 1; k < 256; k++ {
			below += hist[k-1]
			t[k] = uint8(min((below+step/2)/step, 255))
		}
		p.lut(ch, &t)
	}
}

// pyMod is Python's float modulo: the result takes the sign of m.
func pyMod(x, m float64) float64 {
	r := math.Mod(x, m)
	if r != 0 && (r < 0) != (m < 0) {
		r += m
	}
	if r == 0 {
		r = math.Copysign(0, m)
	}
	return r
}

// degToRad and radToDeg are CPython's math.radians and math.degrees factors, each the division of the
// float64 pi (variables, so that the division is done in float64 as CPython does, not exactly at compile
// time).
var (
	pi64     = math.Pi
	degToRad = pi64 / 180
	radToDeg = 180 / pi64
)

// inverseAffine is torchvision's _get_inverse_affine_matrix at scale 1: the 2x3 matrix that takes output
// pixel coordinates, relative to the image centre, to input ones, for a rotation by angle degrees and the
// shears (degrees) about center (relative to the image centre as well), then a translation. Every
// operation is in float64 in torchvision's order, so the float32 matrix the grid is built from is the same.
func inverseAffine(center [2]float64, angle float64, translate [2]float64, shear [2]float64) [6]float64 {
	rot := angle * degToRad
	sx, sy := shear[0]*degToRad, shear[1]*degToRad
	cx, cy := center[0], center[1]
	cosSy, tanSx := math.Cos(sy), math.Tan(sx)
	cxt, cyt := cx+translate[0], cy+translate[1]
	a := math.Cos(rot-sy) / cosSy
	b := -(float64(a*tanSx) + math.Sin(rot))
	c := math.Sin(rot-sy) / cosSy
	d := math.Cos(rot) - float64(c*tanSx)
	m := [6]float64{d, -b, 0, -c, a, 0}
	m[2] += cx - float64(m[0]*cxt) - float64(m[1]*cyt)
	m[5] += cy - float64(m[3]*cxt) - float64(m[4]*cyt)
	return m
}

// warp resamples p through the inverse affine matrix m (inverseAffine) with nearest-neighbour sampling and
// black outside the image, as v2.functional.affine and rotate do on tensors: torchvision's sampling grid in
// float32 (the base grid of pixel centres times the matrix over half the image size, accumulated with
// fused multiply-adds as the matrix product does), then grid_sample's unnormalisation
// (g + 1) * size/2 - 0.5 and rounding half to even. sc is scratch; the result is left in p.
func warp(p *Planes, m [6]float64, sc *AugmentScratch) {
	h, w := p.H, p.W
	hw, hh := float32(0.5*float64(w)), float32(0.5*float64(h))
	tx := [3]float32{float32(m[0]) / hw, float32(m[1]) / hw, float32(m[2]) / hw}
	ty := [3]float32{float32(m[3]) / hh, float32(m[4]) / hh, float32(m[5]) / hh}
	// The first product of each grid sum depends on the column only.
	sc.cols = grow(sc.cols, 2*w)
	colX, colY := sc.cols[:w], sc.cols[w:2*w]
	for x := range w {
		gx := float32(x) - float32(w-1)/2
		colX[x], colY[x] = float64(gx*tx[0]), float64(gx*ty[0])
	}
	// First the source of every output pixel (-1: outside), then a gather per channel.
	n := h * w
	sc.src = grow(sc.src, n)
	for y := range h {
		gy := float64(float32(y) - float32(h-1)/2)
		rowX, rowY := gy*float64(tx[1]), gy*float64(ty[1]) // exact
		src := sc.src[y*w : (y+1)*w]
		for x := range src {
			ix := nearest(rowX, colX[x], tx[2], w)
			iy := nearest(rowY, colY[x], ty[2], h)
			src[x] = -1
			if ix >= 0 && iy >= 0 {
				src[x] = int32(iy*w + ix)
			}
		}
	}
	sc.tmp.Resize(p.C, h, w)
	for ch := range p.C {
		in, out := p.plane(ch), sc.tmp.Pix[ch*n:(ch+1)*n]
		for o, s := range sc.src[:n] {
			out[o] = 0
			if s >= 0 {
				out[o] = in[s]
			}
		}
	}
	copy(p.Pix, sc.tmp.Pix[:p.C*n])
}

// nearest is the pixel grid_sample reads for one grid coordinate on an axis of size samples, or -1 outside:
// the coordinate is fused(row + col) + t in float32 (row, col: its products, exact in float64), unnormalised
// to (g + 1) * size/2 - 0.5 and rounded half to even.
func nearest(row, col float64, t float32, size int) int {
	s := row + col
	g := float32(s)
	if nearTie(s) {
		g = roundOnce(row, col, s)
	}
	g += t
	f := float32((g+1)*(float32(size)/2)) - 0.5
	if !(f > -2 && f < float32(size)+1) { // outside, NaN included
		return -1
	}
	// Adding and taking away 1.5 * 2^23 rounds a float32 below 2^22 to an integer, half to even.
	i := int((f + 0x1.8p23) - 0x1.8p23)
	if i < 0 || i >= size {
		return -1
	}
	return i
}

// ShearX shears p horizontally by the factor s (x' = x + s y about the top-left corner; torchvision's op
// takes atan(s) in degrees as its shear angle and gives back tan of it). sc is scratch.
func ShearX(p *Planes, s float64, sc *AugmentScratch) {
	p.check()
	center := [2]float64{-0.5 * float64(p.W), -0.5 * float64(p.H)}
	warp(p, inverseAffine(center, 0, [2]float64{}, [2]float64{math.Atan(s) * radToDeg, 0}), sc)
}

// ShearY is ShearX along the vertical axis.
func ShearY(p *Planes, s float64, sc *AugmentScratch) {
	p.check()
	center := [2]float64{-0.5 * float64(p.W), -0.5 * float64(p.H)}
	warp(p, inverseAffine(center, 0, [2]float64{}, [2]float64{0, math.Atan(s) * radToDeg}), sc)
}

// Translate moves p by (dx, dy) pixels, right and down for positive values. sc is scratch.
func Translate(p *Planes, dx, dy int, sc *AugmentScratch) {
	p.check()
	warp(p, inverseAffine([2]float64{}, 0, [2]float64{float64(dx), float64(dy)}, [2]float64{}), sc)
}

// Rotate turns p counter-clockwise by angle degrees about its centre, keeping its size
// (v2.functional.rotate): the angle is first taken modulo 360; 0, 180, and 90 or 270 on a square image are
// exact pixel moves, as in torchvision, and every other angle is a warp. sc is scratch.
func Rotate(p *Planes, angle float64, sc *AugmentScratch) {
	p.check()
	angle = pyMod(angle, 360)
	h, w := p.H, p.W
	square := h == w
	switch {
	case angle == 0:
		return
	case angle == 180, square && (angle == 90 || angle == 270):
		sc.tmp.Resize(p.C, h, w)
		n := h * w
		for ch := range p.C {
			src, dst := p.Pix[ch*n:(ch+1)*n], sc.tmp.Pix[ch*n:(ch+1)*n]
			for y := range h {
				for x := range w {
					var s int
					switch angle {
					case 180:
						s = (h-1-y)*w + (w - 1 - x)
					case 90: // out[y][x] = in[x][w-1-y]
						s = x*w + (w - 1 - y)
					default: // 270: out[y][x] = in[h-1-x][y]
						s = (h-1-x)*w + y
					}
					dst[y*w+x] = src[s]
				}
			}
		}
		copy(p.Pix, sc.tmp.Pix[:p.C*n])
		return
	}
	warp(p, inverseAffine([2]float64{}, -angle, [2]float64{}, [2]float64{}), sc)
}
