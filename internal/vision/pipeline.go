// This file holds the composed per-example transforms of the training and evaluation protocols: each goes
// from a decoded image to a normalised CHW float32 tensor in one resampling pass.

package vision

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Scratch holds the reusable buffers of the composed transforms. Give each loader worker its own; the zero
// value is ready to use.
type Scratch struct {
	rs   Resizer
	img  Image
	norm normTable
	mean [3]float32
	std  [3]float32
	ok   bool // norm holds mean and std
}

// table returns the normalisation table for mean and std, rebuilding it only when they change.
func (s *Scratch) table(mean, std [3]float32) (*normTable, error) {
	if s.ok && s.mean == mean && s.std == std {
		return &s.norm, nil
	}
	for c := range 3 {
		if m := float64(mean[c]); math.IsNaN(m) || math.IsInf(m, 0) {
			return nil, fmt.Errorf("vision: mean[%d] must be finite (got %v)", c, mean[c])
		}
		if sd := float64(std[c]); !(sd > 0) || math.IsInf(sd, 0) {
			return nil, fmt.Errorf("vision: std[%d] must be positive and finite (got %v); std is on the 0..255 scale", c, std[c])
		}
	}
	s.norm.fill(mean, std)
	s.mean, s.std, s.ok = mean, std, true
	return &s.norm, nil
}

// resampleToCHW writes the region keep of the resampling of src's window win to outW x outH into dst as
// normalised CHW, mirrored when flip is set.
func (s *Scratch) resampleToCHW(dst []float32, src *Image, win Rect, outW, outH int, keep Rect, flip bool, t *normTable) {
	z := &s.rs
	z.prepare(src, win, outW, outH, keep)
	plane := keep.W * keep.H
	for y := range keep.H {
		chwRowPacked(dst, plane, keep.W, y, z.verticalPass(y), flip, t)
	}
}

// resampleToPlanes is resampleToCHW into 8-bit planes, for augmentations that work on the 8-bit image.
func (s *Scratch) resampleToPlanes(dst *Planes, src *Image, win Rect, outW, outH int, keep Rect, flip bool) {
	z := &s.rs
	z.prepare(src, win, outW, outH, keep)
	dst.Resize(3, keep.H, keep.W)
	for y := range keep.H {
		planesRowPacked(dst, y, z.verticalPass(y), flip)
	}
}

// planesRowPacked writes a row of vertical-pass lane sums (Resizer) into row y of dst, rounding them,
// mirrored when flip is set.
func planesRowPacked(dst *Planes, y int, acc []uint64, flip bool) {
	w := dst.W
	plane := dst.H * w
	r := dst.Pix[y*w : (y+1)*w]
	g := dst.Pix[plane+y*w : plane+(y+1)*w]
	b := dst.Pix[2*plane+y*w : 2*plane+(y+1)*w]
	acc = acc[:w]
	for x := range r {
		a := acc[x]
		if flip {
			a = acc[w-1-x]
		}
		v := round8(a)
		r[x], g[x], b[x] = uint8(v), uint8(v>>laneBits), uint8(v>>(2*laneBits))
	}
}

func checkSource(src *Image, size int) error {
	if size <= 0 {
		return fmt.Errorf("vision: crop size must be > 0 (got %d)", size)
	}
	if src.W <= 0 || src.H <= 0 || len(src.Pix) < 3*src.W*src.H {
		return fmt.Errorf("vision: source image is empty or inconsistent (%dx%d, %d bytes)", src.W, src.H, len(src.Pix))
	}
	return nil
}

func checkCHW(dst []float32, src *Image, size int, crops int) error {
	if err := checkSource(src, size); err != nil {
		return err
	}
	if n := crops * 3 * size * size; len(dst) < n {
		return fmt.Errorf("vision: output holds %d values, %d needed for %d x 3x%dx%d", len(dst), n, crops, size, size)
	}
	return nil
}

// TrainRRC is the standard training transform of torchvision's ImageNet recipe: a RandomResizedCropRect
// window (scale 0.08-1, ratio 3/4-4/3) resampled straight to size x size (no intermediate resize of the
// whole image), mirrored when flip is set, normalised into dst (3 x size x size, CHW). The result equals
// Crop, ResizeBilinear, (HFlip,) ToCHW exactly. The caller draws flip, so that it can come from its own rng.
func TrainRRC(dst []float32, src *Image, rng *rand.Rand, size int, flip bool, mean, std [3]float32, s *Scratch) error {
	if err := checkCHW(dst, src, size, 1); err != nil {
		return err
	}
	t, err := s.table(mean, std)
	if err != nil {
		return err
	}
	r := RandomResizedCropRect(src.W, src.H, rng, 0.08, 1, 3.0/4, 4.0/3)
	s.resampleToCHW(dst, src, r, size, size, Rect{0, 0, size, size}, flip, t)
	return nil
}

// CropToCHW resamples the window r of src straight to size x size, mirrored when flip is set, normalised
// into dst (3 x size x size, CHW): the second half of TrainRRC, for callers that chose r themselves (for
// example on the full-size image before a reduced-scale decode).
func CropToCHW(dst []float32, src *Image, r Rect, size int, flip bool, mean, std [3]float32, s *Scratch) error {
	if err := checkCHW(dst, src, size, 1); err != nil {
		return err
	}
	if err := checkCrop(src, r); err != nil {
		return err
	}
	t, err := s.table(mean, std)
	if err != nil {
		return err
	}
	s.resampleToCHW(dst, src, r, size, size, Rect{0, 0, size, size}, flip, t)
	return nil
}

func checkCrop(src *Image, r Rect) error {
	if !r.In(src.W, src.H) {
		return fmt.Errorf("vision: crop %+v is outside the %dx%d image", r, src.W, src.H)
	}
	return nil
}

// CropToPlanes is CropToCHW without the normalisation: the 8-bit crop, as planes, for the augmentations
// that work on 8-bit images (AutoAugment.Apply); PlanesToCHW then normalises it. Both together equal
// CropToCHW exactly.
func CropToPlanes(dst *Planes, src *Image, r Rect, size int, flip bool, s *Scratch) error {
	if err := checkSource(src, size); err != nil {
		return err
	}
	if err := checkCrop(src, r); err != nil {
		return err
	}
	s.resampleToPlanes(dst, src, r, size, size, Rect{0, 0, size, size}, flip)
	return nil
}

// PlanesToCHW normalises the 3-channel planar image p into dst (3 x H x W, CHW): dst[c][y][x] =
// (v - mean[c]) / std[c], on the 0..255 scale, through the same table as the other transforms.
func PlanesToCHW(dst []float32, p *Planes, mean, std [3]float32, s *Scratch) error {
	n := p.H * p.W
	if p.C != 3 || n < 1 || len(p.Pix) < 3*n || len(dst) < 3*n {
		return fmt.Errorf("vision: normalising a %dx%dx%d planar image (%d bytes) into %d values", p.C, p.H, p.W, len(p.Pix), len(dst))
	}
	t, err := s.table(mean, std)
	if err != nil {
		return err
	}
	for c := range 3 {
		levels := &t[c]
		out := dst[c*n : (c+1)*n]
		for i, v := range p.Pix[c*n : (c+1)*n] {
			out[i] = levels[v]
		}
	}
	return nil
}

// TrainScaleAugment is the training transform of He et al. (2015): shorter side resized to a random integer
// in [minSide, maxSide] (256, 480), a random size x size crop (224) of it (ScaleAugmentRect), mirrored when
// flip is set, normalised into dst. Resize and crop are one resampling pass that computes only the crop.
func TrainScaleAugment(dst []float32, src *Image, rng *rand.Rand, minSide, maxSide, size int, flip bool, mean, std [3]float32, s *Scratch) error {
	if err := checkCHW(dst, src, size, 1); err != nil {
		return err
	}
	if err := checkScaleSides(minSide, maxSide, size); err != nil {
		return err
	}
	t, err := s.table(mean, std)
	if err != nil {
		return err
	}
	rw, rh, crop := ScaleAugmentRect(src.W, src.H, rng, minSide, maxSide, size)
	s.resampleToCHW(dst, src, Rect{0, 0, src.W, src.H}, rw, rh, crop, flip, t)
	return nil
}

func checkScaleSides(minSide, maxSide, size int) error {
	if minSide < size || maxSide < minSide {
		return fmt.Errorf("vision: scale augmentation needs crop <= min side <= max side (got %d, %d, %d)", size, minSide, maxSide)
	}
	return nil
}

// TrainScaleAugmentPlanes is TrainScaleAugment without the normalisation, into 8-bit planes (see
// CropToPlanes), with the same draws.
func TrainScaleAugmentPlanes(dst *Planes, src *Image, rng *rand.Rand, minSide, maxSide, size int, flip bool, s *Scratch) error {
	if err := checkSource(src, size); err != nil {
		return err
	}
	if err := checkScaleSides(minSide, maxSide, size); err != nil {
		return err
	}
	rw, rh, crop := ScaleAugmentRect(src.W, src.H, rng, minSide, maxSide, size)
	s.resampleToPlanes(dst, src, Rect{0, 0, src.W, src.H}, rw, rh, crop, flip)
	return nil
}

// EvalCenter is single-crop evaluation: shorter side resized to resize (256), the central crop x crop (224)
// taken (CenterCropRect), normalised into dst (3 x crop x crop). One resampling pass, equal to
// ResizeShorter then Crop.
func EvalCenter(dst []float32, src *Image, resize, crop int, mean, std [3]float32, s *Scratch) error {
	if err := checkCHW(dst, src, crop, 1); err != nil {
		return err
	}
	if resize < crop {
		return fmt.Errorf("vision: evaluation resize (%d) must be >= crop size (%d)", resize, crop)
	}
	t, err := s.table(mean, std)
	if err != nil {
		return err
	}
	rw, rh := ShorterSideSize(src.W, src.H, resize)
	s.resampleToCHW(dst, src, Rect{0, 0, src.W, src.H}, rw, rh, CenterCropRect(rw, rh, crop), false, t)
	return nil
}

// EvalTenCrop is ten-crop evaluation: shorter side resized to resize (256), then the five TenCropRects
// windows of crop x crop (224) followed by their five mirror images, written one after another into dst
// (10 x 3 x crop x crop). Crop 5+i is exactly crop i mirrored; torchvision instead takes the five crops of
// the mirrored image, which reorders them (its 6th is the mirror of the top-right crop) and can move the
// centre crop by one pixel when the margin is odd. Averaging the ten scores, the usual use, is unaffected
// by the order.
func EvalTenCrop(dst []float32, src *Image, resize, crop int, mean, std [3]float32, s *Scratch) error {
	if err := checkCHW(dst, src, crop, 10); err != nil {
		return err
	}
	if resize < crop {
		return fmt.Errorf("vision: evaluation resize (%d) must be >= crop size (%d)", resize, crop)
	}
	t, err := s.table(mean, std)
	if err != nil {
		return err
	}
	rw, rh := ShorterSideSize(src.W, src.H, resize)
	s.rs.Resize(&s.img, src, rw, rh)
	n := 3 * crop * crop
	for i, r := range TenCropRects(rw, rh, crop) {
		windowToCHW(dst[i*n:(i+1)*n], &s.img, r, false, t)
		windowToCHW(dst[(5+i)*n:(6+i)*n], &s.img, r, true, t)
	}
	return nil
}
