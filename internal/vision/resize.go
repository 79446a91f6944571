// This file holds the resampler: bilinear interpolation with half-pixel centres that widens into an
// antialiasing triangle filter when downscaling, separable (horizontal pass, then vertical), in fixed point.

package vision

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// The resampler works on packed pixels: R, G and B in 21-bit lanes of one uint64 (bits 0, 21 and 42), so
// that one 64-bit multiply-add weighs all three channels. The weights of each output sample are non-negative
// fixed-point numbers with resizeBits fraction bits summing to exactly resizeOne, so a lane's sum is at most
// 255 * 2^13 + 2^12 < 2^21: lanes never carry into each other, and a constant image stays exactly constant.
// 13 bits put each weight within 1/16384 of its real value, a fraction of an 8-bit level on the result.
const (
	resizeBits = 13
	resizeOne  = 1 << resizeBits
	laneBits   = 21
	laneRound  = 1<<(resizeBits-1) | 1<<(resizeBits-1+laneBits) | 1<<(resizeBits-1+2*laneBits)
	laneMask8  = 0xFF | 0xFF<<laneBits | 0xFF<<(2*laneBits) // the low 8 bits of each lane
)

func pack(r, g, b uint8) uint64 { return uint64(r) | uint64(g)<<laneBits | uint64(b)<<(2*laneBits) }

// round8 turns a lane-wise weighted sum back into packed 8-bit lanes, rounding to nearest.
func round8(acc uint64) uint64 { return (acc + laneRound) >> resizeBits & laneMask8 }

// Resizer resamples RGB images. It keeps its coefficient tables and intermediate buffers between calls, so a
// worker that owns one allocates nothing per image once the buffers have grown. The zero value is ready to
// use; a Resizer must not be used by two goroutines at once.
//
// The filter is PIL's BILINEAR: output sample i of an n-sample axis resampled from m input samples sits at
// input coordinate (i + 0.5) * m/n, and its value is the triangle-weighted mean of the input samples whose
// centres lie within max(m/n, 1) of it. Upscaling this is ordinary bilinear interpolation
// (align_corners=false, edge samples repeated); downscaling the triangle widens with the factor, so every
// input pixel contributes (antialiasing). The horizontal pass rounds to 8 bits, as PIL does.
type Resizer struct {
	xs, ys axisTable
	src    []uint64 // one source row of the window, packed
	tmp    []uint64 // horizontal pass output, packed 8-bit lanes: source rows row0 .. row0+len(tmp)/outW
	acc    []uint64 // one output row of the vertical pass, lane sums before rounding
	row0   int      // first source row in tmp
	outW   int      // width of the kept output region
}

// axisTable holds the resampling coefficients of one axis for a run of output samples. Every output sample
// reads exactly taps consecutive input samples (shorter spans are padded with zero weights and shifted to
// stay inside the input), so the inner loops have a fixed trip count.
type axisTable struct {
	start []int32   // first input sample of each output sample, offset by build's in0
	w     []uint64  // taps weights per output sample, fixed point, summing to resizeOne
	taps  int       // input samples per output sample
	reach int       // one past the last input sample any output sample reads
	fw    []float64 // one output sample's float weights before quantisation
}

// span returns the first input sample lo of an inLen-sample axis that contributes to output sample i, and
// the normalised weights of samples lo, lo+1, ... (valid until the next call). scale is inLen / outLen.
func (a *axisTable) span(i int, scale float64, inLen int) (lo int, fw []float64) {
	fs := max(scale, 1) // filter scale: the triangle's radius in input samples
	c := (float64(i) + 0.5) * scale
	lo = max(int(math.Floor(c-fs+0.5)), 0)
	hi := min(int(math.Floor(c+fs+0.5)), inLen) // > lo because c < inLen and fs >= 1
	if cap(a.fw) < hi-lo {
		a.fw = make([]float64, hi-lo)
	}
	fw = a.fw[:hi-lo]
	sum := 0.0
	for j := range fw {
		fw[j] = max(1-math.Abs((float64(lo+j)+0.5-c)/fs), 0)
		sum += fw[j]
	}
	// Drop zero-weight samples at either end (the identity resize then reads one sample, not two).
	for len(fw) > 1 && fw[len(fw)-1] == 0 {
		fw = fw[:len(fw)-1]
	}
	for len(fw) > 1 && fw[0] == 0 {
		fw = fw[1:]
		lo++
	}
	if sum == 0 { // cannot happen (the sample under c is within 0.5 of it), but never divide by zero
		fw[0], sum = 1, 1
	}
	for j := range fw {
		fw[j] /= sum
	}
	return lo, fw
}

// build computes the coefficients of output samples [o0, o0+n) of the resampling of input samples
// [in0, in0+inLen) to outLen samples.
func (a *axisTable) build(in0, inLen, outLen, o0, n int) {
	if in0 < 0 || inLen < 1 {
		panic(fmt.Sprintf("vision: resize axis of %d samples from %d", inLen, in0))
	}
	scale := float64(inLen) / float64(outLen)
	taps := 1
	for i := range n {
		_, fw := a.span(o0+i, scale, inLen)
		taps = max(taps, len(fw))
	}
	a.taps, a.reach = taps, 0
	a.start = grow(a.start, n)
	a.w = grow(a.w, n*taps)
	clear(a.w)
	for i := range n {
		lo, fw := a.span(o0+i, scale, inLen)
		s := min(lo, inLen-taps) // taps <= inLen, so s >= 0
		q := a.w[i*taps+lo-s : i*taps+lo-s+len(fw)]
		sum, big := uint64(0), 0
		for j, f := range fw {
			q[j] = uint64(math.Round(f * resizeOne))
			sum += q[j]
			if q[j] > q[big] {
				big = j
			}
		}
		q[big] += resizeOne - sum // make the weights sum to exactly one (wraps correctly when sum > one)
		a.start[i] = int32(in0 + s)
		a.reach = max(a.reach, in0+s+taps)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4) // headroom: images of slightly different sizes share one buffer
	}
	return s[:n]
}

// prepare builds the tables for output region keep of the resampling of src's window win to outW x outH,
// and runs the horizontal pass over the source rows that region needs.
func (z *Resizer) prepare(src *Image, win Rect, outW, outH int, keep Rect) {
	if !win.In(src.W, src.H) {
		panic(fmt.Sprintf("vision: resize window %+v outside the %dx%d source", win, src.W, src.H))
	}
	if outW <= 0 || outH <= 0 || !keep.In(outW, outH) {
		panic(fmt.Sprintf("vision: resize output region %+v outside the %dx%d output", keep, outW, outH))
	}
	// The horizontal table indexes the packed window row, so it starts at 0, not win.X.
	z.xs.build(0, win.W, outW, keep.X, keep.W)
	z.ys.build(win.Y, win.H, outH, keep.Y, keep.H)
	z.row0 = int(z.ys.start[0])
	rows := int(z.ys.start[keep.H-1]) + z.ys.taps - z.row0
	z.outW = keep.W
	z.src = grow(z.src, win.W)
	z.tmp = grow(z.tmp, rows*keep.W)
	z.acc = grow(z.acc, keep.W)
	for r := range rows {
		o := ((z.row0+r)*src.W + win.X) * 3
		packRow(z.src, src.Pix[o:o+3*win.W])
		horizontalPass(z.tmp[r*keep.W:(r+1)*keep.W], z.src, &z.xs)
	}
}

func packRow(dst []uint64, row []uint8) {
	row = row[:3*len(dst)]
	for i := range dst {
		p := row[3*i : 3*i+3 : 3*i+3]
		dst[i] = pack(p[0], p[1], p[2])
	}
}

// horizontalPass resamples one packed row.
func horizontalPass(out, in []uint64, xs *axisTable) {
	taps := xs.taps
	if taps == 1 { // every weight is one: a pure gather (crops that are not resized horizontally)
		for i, s := range xs.start {
			out[i] = in[s]
		}
		return
	}
	out = out[:len(xs.start)]
	n := len(out)
	if n == 0 {
		return
	}
	// build keeps every start in [0, reach-taps], so one check covers every read: the unrolled loops below
	// then read through unchecked pointers. Bounds checks per tap otherwise cost more than the
	// multiply-adds.
	if xs.reach > len(in) || len(xs.w) < n*taps {
		panic(fmt.Sprintf("vision: resize table reads %d samples of a %d-sample row", xs.reach, len(in)))
	}
	src, w := unsafe.Pointer(unsafe.SliceData(in)), unsafe.Pointer(unsafe.SliceData(xs.w))
	at := func(s int32) unsafe.Pointer { return unsafe.Add(src, uintptr(s)*8) }
	// The common tap counts are unrolled: the loop overhead otherwise costs as much as the arithmetic.
	switch taps {
	case 2:
		for i, s := range xs.start {
			p, q := (*[2]uint64)(at(s)), (*[2]uint64)(unsafe.Add(w, i*16))
			out[i] = round8(q[0]*p[0] + q[1]*p[1])
		}
	case 3:
		for i, s := range xs.start {
			p, q := (*[3]uint64)(at(s)), (*[3]uint64)(unsafe.Add(w, i*24))
			out[i] = round8(q[0]*p[0] + q[1]*p[1] + q[2]*p[2])
		}
	case 4:
		for i, s := range xs.start {
			p, q := (*[4]uint64)(at(s)), (*[4]uint64)(unsafe.Add(w, i*32))
			out[i] = round8(q[0]*p[0] + q[1]*p[1] + q[2]*p[2] + q[3]*p[3])
		}
	case 5:
		for i, s := range xs.start {
			p, q := (*[5]uint64)(at(s)), (*[5]uint64)(unsafe.Add(w, i*40))
			out[i] = round8(q[0]*p[0] + q[1]*p[1] + q[2]*p[2] + q[3]*p[3] + q[4]*p[4])
		}
	case 6:
		for i, s := range xs.start {
			p, q := (*[6]uint64)(at(s)), (*[6]uint64)(unsafe.Add(w, i*48))
			out[i] = round8(q[0]*p[0] + q[1]*p[1] + q[2]*p[2] + q[3]*p[3] + q[4]*p[4] + q[5]*p[5])
		}
	default:
		for i, s := range xs.start {
			p := in[s : int(s)+taps]
			w := xs.w[i*taps : (i+1)*taps]
			p = p[:len(w)]
			var acc uint64
			for k, wk := range w {
				acc += wk * p[k]
			}
			out[i] = round8(acc)
		}
	}
}

// verticalPass leaves in z.acc the lane sums of output row i (counted from the top of the kept region).
func (z *Resizer) verticalPass(i int) []uint64 {
	taps := z.ys.taps
	first := int(z.ys.start[i]) - z.row0
	w := z.ys.w[i*taps : (i+1)*taps]
	n := z.outW
	acc := z.acc[:n]
	row := z.tmp[first*n : (first+1)*n]
	w0 := w[0]
	for x, v := range row {
		acc[x] = w0 * v
	}
	for k := 1; k < taps; k++ {
		wk := w[k]
		if wk == 0 {
			continue
		}
		row := z.tmp[(first+k)*n : (first+k+1)*n]
		acc := acc[:len(row)]
		for x, v := range row {
			acc[x] += wk * v
		}
	}
	return acc
}

// unpackRow rounds lane sums into interleaved 8-bit RGB.
func unpackRow(out []uint8, acc []uint64) {
	out = out[:3*len(acc)]
	for x, a := range acc {
		v := round8(a)
		o := out[3*x : 3*x+3 : 3*x+3]
		o[0], o[1], o[2] = uint8(v), uint8(v>>laneBits), uint8(v>>(2*laneBits))
	}
}

// resample writes into dst the region keep of the resampling of src's window win to outW x outH.
func (z *Resizer) resample(dst, src *Image, win Rect, outW, outH int, keep Rect) {
	z.prepare(src, win, outW, outH, keep)
	dst.Resize(keep.W, keep.H)
	n := 3 * keep.W
	for y := range keep.H {
		unpackRow(dst.Pix[y*n:(y+1)*n], z.verticalPass(y))
	}
}

// Resize resamples the whole of src to w x h into dst. dst must not be src.
func (z *Resizer) Resize(dst, src *Image, w, h int) {
	if w == src.W && h == src.H {
		dst.Resize(w, h)
		copy(dst.Pix, src.Pix[:3*w*h])
		return
	}
	z.resample(dst, src, Rect{0, 0, src.W, src.H}, w, h, Rect{0, 0, w, h})
}

// ResizeWindow crops src to win and resamples the crop to w x h, in one pass: pixels outside win are never
// read, so the result equals Crop followed by Resize exactly. This is the random-resized-crop step.
func (z *Resizer) ResizeWindow(dst, src *Image, win Rect, w, h int) {
	z.resample(dst, src, win, w, h, Rect{0, 0, w, h})
}

// ResizeCrop resamples src to w x h and keeps only the region crop of the result, computing nothing outside
// it; the result equals Resize followed by Crop exactly. This is the resize-then-crop of scale augmentation
// and of centre-crop evaluation.
func (z *Resizer) ResizeCrop(dst, src *Image, w, h int, crop Rect) {
	z.resample(dst, src, Rect{0, 0, src.W, src.H}, w, h, crop)
}

var resizerPool = sync.Pool{New: func() any { return new(Resizer) }}

// ResizeBilinear resamples src to w x h into dst with the antialiased bilinear filter described on Resizer,
// using a pooled Resizer. dst must not be src.
func ResizeBilinear(dst, src *Image, w, h int) {
	z := resizerPool.Get().(*Resizer)
	z.Resize(dst, src, w, h)
	resizerPool.Put(z)
}

// ShorterSideSize returns the size of a w x h image resized so that its shorter side is side, with the
// longer side truncated as torchvision's Resize(int) does: int(side * long / short).
func ShorterSideSize(w, h, side int) (rw, rh int) {
	if w <= h {
		return side, int(float64(side) * float64(h) / float64(w))
	}
	return int(float64(side) * float64(w) / float64(h)), side
}

// ResizeShorter resamples src so that its shorter side is side, keeping the aspect ratio (ShorterSideSize).
func ResizeShorter(dst, src *Image, side int) {
	w, h := ShorterSideSize(src.W, src.H, side)
	ResizeBilinear(dst, src, w, h)
}
