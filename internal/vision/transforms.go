// This file holds the geometric transforms of the ImageNet protocols (crops, flips, the crop windows of
// random-resized-crop, scale augmentation, centre and ten-crop evaluation), conversion to normalised planar
// float32, and AlexNet-style PCA lighting.

package vision

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// ImageNetMean and ImageNetStd are the usual per-channel RGB statistics of ImageNet (0.485, 0.456, 0.406 and
// 0.229, 0.224, 0.225 on the 0..1 scale) on this package's 0..255 scale.
var (
	ImageNetMean = [3]float32{0.485 * 255, 0.456 * 255, 0.406 * 255}
	ImageNetStd  = [3]float32{0.229 * 255, 0.224 * 255, 0.225 * 255}
)

// In reports whether r is non-empty and lies inside a w x h image.
func (r Rect) In(w, h int) bool {
	return r.W > 0 && r.H > 0 && r.X >= 0 && r.Y >= 0 && r.X+r.W <= w && r.Y+r.H <= h
}

// Crop copies the window r of src into dst. r must lie inside src (Rect.In); anything else is a programming
// error and panics. dst must not be src.
func Crop(dst, src *Image, r Rect) {
	if !r.In(src.W, src.H) {
		panic(fmt.Sprintf("vision: crop %+v outside the %dx%d image", r, src.W, src.H))
	}
	dst.Resize(r.W, r.H)
	n := 3 * r.W
	for y := range r.H {
		o := ((r.Y+y)*src.W + r.X) * 3
		copy(dst.Pix[y*n:(y+1)*n], src.Pix[o:o+n])
	}
}

// HFlip mirrors img left to right in place.
func HFlip(img *Image) {
	n := 3 * img.W
	for y := range img.H {
		row := img.Pix[y*n : (y+1)*n]
		for i, j := 0, img.W-1; i < j; i, j = i+1, j-1 {
			a := row[3*i : 3*i+3 : 3*i+3]
			b := row[3*j : 3*j+3 : 3*j+3]
			a[0], b[0] = b[0], a[0]
			a[1], b[1] = b[1], a[1]
			a[2], b[2] = b[2], a[2]
		}
	}
}

// CenterCropRect is the size x size window in the middle of a w x h image, placed as torchvision's
// center_crop does: top = round((h - size) / 2), left likewise, with Python's round (half to even). A side
// shorter than size is cropped to its full length instead (torchvision would pad; resize first).
func CenterCropRect(w, h, size int) Rect {
	cw, ch := min(size, w), min(size, h)
	return Rect{
		X: int(math.RoundToEven(float64(w-cw) / 2)),
		Y: int(math.RoundToEven(float64(h-ch) / 2)),
		W: cw,
		H: ch,
	}
}

// TenCropRects are the five size x size windows of ten-crop evaluation in torchvision's five_crop order:
// top-left, top-right, bottom-left, bottom-right, centre. The other five crops are their mirror images.
// The image must be at least size x size.
func TenCropRects(w, h, size int) [5]Rect {
	return [5]Rect{
		{0, 0, size, size},
		{w - size, 0, size, size},
		{0, h - size, size, size},
		{w - size, h - size, size, size},
		CenterCropRect(w, h, size),
	}
}

// RandomResizedCropRect draws the crop window of Inception-style random-resized-crop, as torchvision's
// RandomResizedCrop does: up to 10 attempts at a window whose area is a uniform fraction in
// [scaleMin, scaleMax] of the image and whose aspect ratio (width / height) is log-uniform in
// [ratioMin, ratioMax], placed uniformly at random; if none fits, the whole image cropped in the centre to
// the nearest ratio in range. The standard parameters are 0.08, 1, 3/4, 4/3. Each attempt draws, in order,
// the area fraction and the log ratio (Float64), then a successful one draws the top and left offsets (IntN),
// so a given rng state always yields the same window. w and h must be >= 1.
func RandomResizedCropRect(w, h int, rng *rand.Rand, scaleMin, scaleMax, ratioMin, ratioMax float64) Rect {
	area := float64(w) * float64(h)
	logMin, logMax := math.Log(ratioMin), math.Log(ratioMax)
	for range 10 {
		target := area * (scaleMin + (scaleMax-scaleMin)*rng.Float64())
		ratio := math.Exp(logMin + (logMax-logMin)*rng.Float64())
		cw := int(math.RoundToEven(math.Sqrt(target * ratio)))
		ch := int(math.RoundToEven(math.Sqrt(target / ratio)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			y := rng.IntN(h - ch + 1)
			x := rng.IntN(w - cw + 1)
			return Rect{x, y, cw, ch}
		}
	}
	cw, ch := w, h
	switch ratio := float64(w) / float64(h); {
	case ratio < ratioMin:
		ch = min(h, max(1, int(math.RoundToEven(float64(w)/ratioMin))))
	case ratio > ratioMax:
		cw = min(w, max(1, int(math.RoundToEven(float64(h)*ratioMax))))
	}
	return Rect{(w - cw) / 2, (h - ch) / 2, cw, ch}
}

// ScaleAugmentRect draws the scale augmentation of He et al. (2015), after Simonyan and Zisserman: the image
// is resized so that its shorter side is a uniform integer in [minSide, maxSide] (256 and 480 in the paper),
// to rw x rh (ShorterSideSize), and a size x size crop (224) is taken at a uniform position of the resized
// image. It returns the resize target and the crop in resized coordinates, so that Resizer.ResizeCrop can do
// both in one resampling pass. It draws the side, then the top and left offsets. size must be <= minSide.
func ScaleAugmentRect(w, h int, rng *rand.Rand, minSide, maxSide, size int) (rw, rh int, crop Rect) {
	side := minSide + rng.IntN(maxSide-minSide+1)
	rw, rh = ShorterSideSize(w, h, side)
	cw, ch := min(size, rw), min(size, rh)
	y := rng.IntN(rh - ch + 1)
	x := rng.IntN(rw - cw + 1)
	return rw, rh, Rect{x, y, cw, ch}
}

// normTable maps an 8-bit sample of each channel to (v - mean[c]) / std[c], computed in float32 exactly as
// written, so every path that normalises through a table gives bit-identical values.
type normTable [3][256]float32

func (t *normTable) fill(mean, std [3]float32) {
	for c := range 3 {
		for v := range 256 {
			t[c][v] = (float32(v) - mean[c]) / std[c]
		}
	}
}

// chwRow writes one interleaved RGB row into row y of the three w-wide planes of dst (plane = w x h),
// normalised through t, mirrored when flip is set.
func chwRow(dst []float32, plane, w, y int, row []uint8, flip bool, t *normTable) {
	r := dst[y*w : (y+1)*w]
	g := dst[plane+y*w : plane+(y+1)*w]
	b := dst[2*plane+y*w : 2*plane+(y+1)*w]
	row = row[:3*w]
	if !flip {
		for x := range r {
			p := row[3*x : 3*x+3 : 3*x+3]
			r[x], g[x], b[x] = t[0][p[0]], t[1][p[1]], t[2][p[2]]
		}
		return
	}
	for x := range r {
		j := w - 1 - x
		p := row[3*j : 3*j+3 : 3*j+3]
		r[x], g[x], b[x] = t[0][p[0]], t[1][p[1]], t[2][p[2]]
	}
}

// chwRowPacked is chwRow for a row of vertical-pass lane sums (Resizer), rounding them on the way.
func chwRowPacked(dst []float32, plane, w, y int, acc []uint64, flip bool, t *normTable) {
	r := dst[y*w : (y+1)*w]
	g := dst[plane+y*w : plane+(y+1)*w]
	b := dst[2*plane+y*w : 2*plane+(y+1)*w]
	acc = acc[:w]
	if !flip {
		for x := range r {
			v := round8(acc[x])
			r[x], g[x], b[x] = t[0][uint8(v)], t[1][uint8(v>>laneBits)], t[2][uint8(v>>(2*laneBits))]
		}
		return
	}
	for x := range r {
		v := round8(acc[w-1-x])
		r[x], g[x], b[x] = t[0][uint8(v)], t[1][uint8(v>>laneBits)], t[2][uint8(v>>(2*laneBits))]
	}
}

// windowToCHW writes the window r of img, mirrored when flip is set, into dst as normalised planar float32.
func windowToCHW(dst []float32, img *Image, r Rect, flip bool, t *normTable) {
	if !r.In(img.W, img.H) {
		panic(fmt.Sprintf("vision: window %+v outside the %dx%d image", r, img.W, img.H))
	}
	plane := r.W * r.H
	dst = dst[:3*plane]
	for y := range r.H {
		o := ((r.Y+y)*img.W + r.X) * 3
		chwRow(dst, plane, r.W, y, img.Pix[o:o+3*r.W], flip, t)
	}
}

// ToCHW converts img (interleaved 8-bit RGB, HWC) to planar float32 (CHW) in dst, which must hold
// 3 x W x H values: dst[c][y][x] = (v - mean[c]) / std[c] with mean and std on the 0..255 scale (e.g.
// ImageNetMean, ImageNetStd).
func ToCHW(dst []float32, img *Image, mean, std [3]float32) {
	var t normTable
	t.fill(mean, std)
	windowToCHW(dst, img, Rect{0, 0, img.W, img.H}, false, &t)
}

// ToCHWFlip is ToCHW of the mirror image (HFlip), in the same single pass.
func ToCHWFlip(dst []float32, img *Image, mean, std [3]float32) {
	var t normTable
	t.fill(mean, std)
	windowToCHW(dst, img, Rect{0, 0, img.W, img.H}, true, &t)
}

// The principal components of ImageNet's RGB pixel covariance, for pixel values in [0, 1], as used by
// AlexNet-style lighting noise (Krizhevsky et al. 2012; fb.resnet.torch). ImageNetEigvec's columns are the
// eigenvectors: column i, (ImageNetEigvec[0][i], ImageNetEigvec[1][i], ImageNetEigvec[2][i]), belongs to
// ImageNetEigval[i]. The first is close to equal R, G, B (brightness), the other two are colour axes.
var (
	ImageNetEigval = [3]float64{0.2175, 0.0188, 0.0045}
	ImageNetEigvec = [3][3]float64{
		{-0.5675, 0.7192, 0.4009},
		{-0.5808, -0.0045, -0.8140},
		{-0.5836, -0.6948, 0.4203},
	}
)

// LightingShift is the RGB offset, on the 0..255 scale, that PCA lighting adds to every pixel for the
// component weights alpha: 255 * sum_i alpha[i] * eigval[i] * eigvec_i.
func LightingShift(alpha [3]float64) [3]float64 {
	var s [3]float64
	for c := range 3 {
		for i := range 3 {
			s[c] += ImageNetEigvec[c][i] * alpha[i] * ImageNetEigval[i]
		}
		s[c] *= 255
	}
	return s
}

// PCALighting adds AlexNet-style lighting noise to a normalised planar image (ToCHW output, 3 x h x w):
// alpha_i ~ N(0, alphaStd^2) (alphaStd 0.1 in AlexNet and ResNet), drawn in order i = 0, 1, 2, and every
// pixel moves by LightingShift(alpha). The eigenvalues are for pixels in [0, 1], so the shift is scaled by
// 255 to the 0..255 scale and then divided by std, the same std the image was normalised with: channel c of
// chw gains LightingShift(alpha)[c] / std[c]. This equals adding the noise to the 0..1 image before
// normalising, as fb.resnet.torch does.
func PCALighting(chw []float32, h, w int, rng *rand.Rand, alphaStd float64, std [3]float32) {
	var alpha [3]float64
	for i := range alpha {
		alpha[i] = rng.NormFloat64() * alphaStd
	}
	addLighting(chw, h, w, alpha, std)
}

// addLighting adds the lighting shift of the component weights alpha to the normalised planar image chw.
func addLighting(chw []float32, h, w int, alpha [3]float64, std [3]float32) {
	shift := LightingShift(alpha)
	plane := h * w
	for c := range 3 {
		d := float32(shift[c]) / std[c]
		p := chw[c*plane : (c+1)*plane]
		for i := range p {
			p[i] += d
		}
	}
}
