// This file holds random erasing (Zhong et al. 2017) as torchvision's RandomErasing does it on a normalised
// image: a random box set to 0, the mean of the normalised data.

package vision

import (
	"math"
	"math/rand/v2"
)

// The box shape of torchvision's RandomErasing defaults, which its classification references use: an area of
// 2% to 33% of the image and a height-to-width ratio log-uniform in [0.3, 3.3].
const (
	erasingScaleMin, erasingScaleMax = 0.02, 0.33
	erasingRatioMin, erasingRatioMax = 0.3, 3.3
)

// ErasingRect draws the box of RandomErasing on an h x w image as torchvision does: up to 10 attempts, each
// drawing the area (a uniform fraction of the image) and the log of the height-to-width ratio, rounding
// the height sqrt(area * ratio) and width sqrt(area / ratio) half to even, and keeping the first box smaller
// than the image on both sides, at a uniform position (top, then left). ok is false when no attempt fits;
// torchvision then leaves the image as it is. The box may be empty on tiny images, as in torchvision.
func ErasingRect(h, w int, rng *rand.Rand) (r Rect, ok bool) {
	area := float64(h) * float64(w)
	logMin, logMax := math.Log(erasingRatioMin), math.Log(erasingRatioMax)
	for range 10 {
		erase := area * (erasingScaleMin + (erasingScaleMax-erasingScaleMin)*rng.Float64())
		ratio := math.Exp(logMin + (logMax-logMin)*rng.Float64())
		eh := int(math.RoundToEven(math.Sqrt(erase * ratio)))
		ew := int(math.RoundToEven(math.Sqrt(erase / ratio)))
		if eh < h && ew < w {
			y := rng.IntN(h - eh + 1)
			x := rng.IntN(w - ew + 1)
			return Rect{X: x, Y: y, W: ew, H: eh}, true
		}
	}
	return Rect{}, false
}

// Erase sets the box r of every channel of the planar image chw (c x h x w) to 0.
func Erase(chw []float32, c, h, w int, r Rect) {
	plane := h * w
	for ch := range c {
		for y := r.Y; y < r.Y+r.H; y++ {
			o := ch*plane + y*w + r.X
			clear(chw[o : o+r.W])
		}
	}
}

// RandomErasing is torchvision's RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) on the
// normalised planar image chw (c x h x w): with probability p (one draw, first) it erases the box
// ErasingRect draws, if any.
func RandomErasing(chw []float32, c, h, w int, p float64, rng *rand.Rand) {
	if !(rng.Float64() < p) {
		return
	}
	if r, ok := ErasingRect(h, w, rng); ok {
		Erase(chw, c, h, w, r)
	}
}
