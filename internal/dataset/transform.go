// This file holds the per-image transforms the loader applies: the CIFAR training augmentation (zero
// padding, random crop, horizontal flip) on uint8 CHW images, and per-channel normalisation to float32.

package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// CIFARPad is the zero padding, in pixels on each side, of the standard CIFAR augmentation.
const CIFARPad = 4

// CropFlip writes into dst (c*h*w, CHW) the h x w window at offset (offsetX, offsetY) of src zero-padded by
// pad pixels on every side, mirrored left-right when flip is set. Offsets run over [0, 2*pad]; (pad, pad)
// without flip is the identity. dst and src must not overlap.
func CropFlip(dst, src []uint8, c, h, w, pad, offsetX, offsetY int, flip bool) error {
	if n := c * h * w; len(src) != n || len(dst) != n {
		return fmt.Errorf("dataset: crop of a %dx%dx%d image needs %d-byte src and dst (got %d and %d)", c, h, w, n, len(src), len(dst))
	}
	if pad < 0 || offsetX < 0 || offsetX > 2*pad || offsetY < 0 || offsetY > 2*pad {
		return fmt.Errorf("dataset: crop offset (%d, %d) outside [0, %d] for padding %d", offsetX, offsetY, 2*pad, pad)
	}
	// Source column of destination column x is x+dx; rows likewise with dy.
	dx, dy := offsetX-pad, offsetY-pad
	// Destination columns [x0, x1) read real pixels; the rest read padding.
	x0, x1 := max(0, -dx), min(w, w-dx)
	for ch := range c {
		srcPlane := src[ch*h*w : (ch+1)*h*w]
		dstPlane := dst[ch*h*w : (ch+1)*h*w]
		for y := range h {
			row := dstPlane[y*w : (y+1)*w]
			sy := y + dy
			if sy < 0 || sy >= h {
				clear(row)
				continue
			}
			srcRow := srcPlane[sy*w : (sy+1)*w]
			if !flip {
				clear(row[:x0])
				copy(row[x0:x1], srcRow[x0+dx:x1+dx])
				clear(row[x1:])
				continue
			}
			// Flipped: destination column x shows the unflipped crop's column w-1-x.
			for x := range w {
				ux := w - 1 - x
				if ux < x0 || ux >= x1 {
					row[x] = 0
				} else {
					row[x] = srcRow[ux+dx]
				}
			}
		}
	}
	return nil
}

// RandomCropFlip is the CIFAR training augmentation: zero-pad by pad, take a uniformly random h x w crop
// and mirror it with probability 1/2. It draws, in order, the x offset, the y offset and the flip from rng,
// so a given rng state always yields the same augmentation.
func RandomCropFlip(dst, src []uint8, c, h, w, pad int, rng *rand.Rand) error {
	if pad < 0 {
		return fmt.Errorf("dataset: crop padding must be >= 0 (got %d)", pad)
	}
	offsetX := rng.IntN(2*pad + 1)
	offsetY := rng.IntN(2*pad + 1)
	flip := rng.IntN(2) == 1
	return CropFlip(dst, src, c, h, w, pad, offsetX, offsetY, flip)
}

// Validate reports whether n can normalise images with c channels: finite means and positive finite
// standard deviations for each of them.
func (n Normalization) Validate(c int) error {
	if c < 1 || c > len(n.Mean) {
		return fmt.Errorf("dataset: normalisation covers 1 to %d channels (got %d)", len(n.Mean), c)
	}
	for ch := range c {
		m, s := float64(n.Mean[ch]), float64(n.Std[ch])
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return fmt.Errorf("dataset: normalisation mean of channel %d is %v; it must be finite", ch, m)
		}
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("dataset: normalisation std of channel %d is %v; it must be > 0 and finite (unset? compute it with ComputeNormalization)", ch, s)
		}
	}
	return nil
}

// Normalize writes (src - mean) / std per channel into dst; src and dst are c*h*w, CHW.
func Normalize(dst []float32, src []uint8, c, h, w int, norm Normalization) error {
	if n := c * h * w; len(src) != n || len(dst) != n {
		return fmt.Errorf("dataset: normalising a %dx%dx%d image needs %d-element src and dst (got %d and %d)", c, h, w, n, len(src), len(dst))
	}
	table, err := newNormTable(norm, c)
	if err != nil {
		return err
	}
	table.apply(dst, src, h*w)
	return nil
}

// normTable holds, per channel, the normalised value of each of the 256 pixel levels, turning the
// per-pixel subtract and divide into one load. The loader builds it once.
type normTable struct {
	levels [3][256]float32
	c      int
}

func newNormTable(norm Normalization, c int) (*normTable, error) {
	if err := norm.Validate(c); err != nil {
		return nil, err
	}
	t := &normTable{c: c}
	for ch := range c {
		for v := range t.levels[ch] {
			t.levels[ch][v] = (float32(v) - norm.Mean[ch]) / norm.Std[ch]
		}
	}
	return t, nil
}

// apply normalises one CHW image with planes of plane pixels; the lengths are the caller's to check.
func (t *normTable) apply(dst []float32, src []uint8, plane int) {
	for ch := range t.c {
		levels := &t.levels[ch]
		out := dst[ch*plane : (ch+1)*plane]
		for i, v := range src[ch*plane : (ch+1)*plane] {
			out[i] = levels[v]
		}
	}
}

// ComputeNormalization measures the per-channel mean and (population) standard deviation, in the 0..255
// scale, over up to maxSamples examples of src spread evenly over its index range (all of them when
// maxSamples <= 0 or >= src.Len()). The subset depends only on src.Len() and maxSamples, so the result is
// reproducible.
func ComputeNormalization(src Source, maxSamples int) (Normalization, error) {
	var norm Normalization
	n := src.Len()
	if n <= 0 {
		return norm, fmt.Errorf("dataset: cannot compute normalisation of an empty source")
	}
	c, h, w := src.ImageShape()
	if c < 1 || c > len(norm.Mean) {
		return norm, fmt.Errorf("dataset: normalisation covers 1 to %d channels (source has %d)", len(norm.Mean), c)
	}
	samples := n
	if maxSamples > 0 && maxSamples < n {
		samples = maxSamples
	}
	plane := h * w
	img := make([]uint8, c*plane)
	// Integer sums are exact: 255^2 * 3072 * 2^31 examples still fits in a uint64.
	var sum, sumSq [3]uint64
	for k := range samples {
		i := int(int64(k) * int64(n) / int64(samples))
		if _, err := src.Get(i, img); err != nil {
			return norm, fmt.Errorf("dataset: computing normalisation: example %d: %w", i, err)
		}
		for ch := range c {
			var s, sq uint64
			for _, v := range img[ch*plane : (ch+1)*plane] {
				s += uint64(v)
				sq += uint64(v) * uint64(v)
			}
			sum[ch] += s
			sumSq[ch] += sq
		}
	}
	count := float64(samples) * float64(plane)
	for ch := range c {
		mean := float64(sum[ch]) / count
		variance := max(0, float64(sumSq[ch])/count-mean*mean)
		if variance == 0 {
			return norm, fmt.Errorf("dataset: channel %d is constant (%.0f) over %d examples; cannot normalise by a zero std", ch, mean, samples)
		}
		norm.Mean[ch] = float32(mean)
		norm.Std[ch] = float32(math.Sqrt(variance))
	}
	// Unused channels of a grey source keep a harmless identity entry.
	for ch := c; ch < len(norm.Mean); ch++ {
		norm.Std[ch] = 1
	}
	return norm, nil
}
