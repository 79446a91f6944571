// This file holds the built-in synthetic dataset: ten families of shapes and textures drawn on 32x32 RGB
// canvases, generated on demand so that nothing is stored on disk.

package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Synthetic image geometry: CIFAR-sized RGB.
const (
	syntheticChannels = 3
	syntheticSize     = 32
	syntheticPixels   = syntheticSize * syntheticSize
)

// Dataset splits accepted by NewSynthetic. Each split is a different stream of examples.
const (
	SplitTrain = "train"
	SplitVal   = "val"
	SplitTest  = "test"
)

// SyntheticClassNames names the synthetic classes; label i draws SyntheticClassNames[i].
var SyntheticClassNames = [...]string{
	"disc",         // filled circle
	"ring",         // annulus
	"square",       // square outline, any rotation
	"triangle",     // filled equilateral triangle, any rotation
	"plus",         // upright cross, tilted at most 15 degrees
	"stripes",      // three parallel bars, tilted at most 25 degrees
	"checkerboard", // 4x4 checker patch, any rotation
	"dot-ring",     // 5 to 7 dots on a circle
	"crescent",     // disc with an offset disc cut out
	"x-cross",      // diagonal cross: the plus turned 30..60 degrees
}

const syntheticClasses = len(SyntheticClassNames)

// Synthetic is a procedurally generated 10-class set of 32x32 RGB images. Example i is a pure function
// of (seed, split, i): Get renders it on demand, so any n costs no memory and train and test never share
// an example. Foreground, background and clutter colours come from one class-independent distribution and
// the shape's polarity against its background is random, so neither the mean colour nor a linear function
// of the pixels tells the classes apart; the shape does.
type Synthetic struct {
	n         int
	split     string
	streamKey uint64 // hash of (seed, split): the root of every per-example stream
}

// NewSynthetic returns n examples of the given split ("train", "val" or "test") for seed.
func NewSynthetic(seed int64, n int, split string) (*Synthetic, error) {
	if n <= 0 {
		return nil, fmt.Errorf("dataset: synthetic %s size must be > 0 (got %d)", split, n)
	}
	switch split {
	case SplitTrain, SplitVal, SplitTest:
	default:
		return nil, fmt.Errorf("dataset: synthetic split must be %q, %q or %q (got %q)", SplitTrain, SplitVal, SplitTest, split)
	}
	return &Synthetic{n: n, split: split, streamKey: mix64(uint64(seed) ^ mix64(hashString(split)))}, nil
}

// Len implements Source.
func (s *Synthetic) Len() int { return s.n }

// NumClasses implements Source.
func (s *Synthetic) NumClasses() int { return syntheticClasses }

// ImageShape implements Source.
func (s *Synthetic) ImageShape() (c, h, w int) {
	return syntheticChannels, syntheticSize, syntheticSize
}

// Split is the split this source draws from.
func (s *Synthetic) Split() string { return s.split }

// Get implements Source: it renders example i into dst (3*32*32 bytes, CHW). It allocates nothing and
// is safe for concurrent use.
func (s *Synthetic) Get(i int, dst []uint8) (int, error) {
	if i < 0 || i >= s.n {
		return 0, fmt.Errorf("dataset: synthetic %s index %d out of range [0, %d)", s.split, i, s.n)
	}
	if len(dst) != syntheticChannels*syntheticPixels {
		return 0, fmt.Errorf("dataset: synthetic %s example %d: destination holds %d bytes, want %d", s.split, i, len(dst), syntheticChannels*syntheticPixels)
	}
	label := s.Label(i)
	s.render(i, label, dst)
	return label, nil
}

// Label is the class of example i without rendering it. Labels are balanced: every block of ten
// consecutive indices holds each class once, in an order shuffled per block.
func (s *Synthetic) Label(i int) int {
	block, slot := i/syntheticClasses, i%syntheticClasses
	var r exampleRand
	r.seed(s.streamKey^0x6c61_6265_6c73, uint64(block)) // "labels": a stream apart from the images
	var perm [syntheticClasses]uint8
	for k := range perm {
		perm[k] = uint8(k)
	}
	for k := syntheticClasses - 1; k > 0; k-- {
		j := r.intN(k + 1)
		perm[k], perm[j] = perm[j], perm[k]
	}
	return int(perm[slot])
}

// canvas is a float RGB image being composited, one plane per channel, in the 0..255 scale.
type canvas [syntheticChannels][syntheticPixels]float32

// render draws example i of class label into dst. Draw order: background with a brightness ramp, clutter,
// the class shape on top (so clutter never breaks the shape), then pixel noise.
func (s *Synthetic) render(i, label int, dst []uint8) {
	var r exampleRand
	r.seed(s.streamKey, uint64(i))
	var cv canvas

	fg, bg := r.contrastingColours()
	rampX, rampY := r.uniform(-24, 24), r.uniform(-24, 24)
	for y := range syntheticSize {
		fy := (float32(y) - 15.5) / 16
		for x := range syntheticSize {
			ramp := rampX*(float32(x)-15.5)/16 + rampY*fy
			p := y*syntheticSize + x
			for c := range syntheticChannels {
				cv[c][p] = bg[c] + ramp
			}
		}
	}

	for range 2 + r.intN(3) {
		cv.drawDistractor(&r)
	}

	cv.drawShape(label, fg, &r)

	// Gaussian pixel noise, eight samples per 64 random bits through a 256-level quantile table.
	sigma := r.uniform(3, 12)
	var noise [256]float32
	for k, z := range &gaussianQuantiles {
		noise[k] = z * sigma
	}
	for c := range syntheticChannels {
		plane := dst[c*syntheticPixels : (c+1)*syntheticPixels]
		src := &cv[c]
		for p := 0; p < syntheticPixels; p += 8 {
			u := r.next()
			for k := range 8 {
				plane[p+k] = quantize(src[p+k] + noise[uint8(u>>(8*k))])
			}
		}
	}
}

// gaussianQuantiles holds the standard normal quantiles at the midpoints of 256 equal-probability bins,
// so a random byte indexes a sample of N(0, 1) quantised to 256 levels.
var gaussianQuantiles = func() (q [256]float32) {
	for k := range q {
		q[k] = float32(math.Sqrt2 * math.Erfinv(2*(float64(k)+0.5)/256-1))
	}
	return q
}()

// drawDistractor paints one small class-independent stroke or blob at a random place in a random colour.
func (cv *canvas) drawDistractor(r *exampleRand) {
	col := r.colour()
	x0, y0 := r.uniform(0, syntheticSize), r.uniform(0, syntheticSize)
	if r.intN(2) == 0 {
		radius := r.uniform(1, 2)
		cv.fill(col, x0-radius-1, y0-radius-1, x0+radius+1, y0+radius+1, func(x, y float32) float32 {
			return hypot(x-x0, y-y0) - radius
		})
		return
	}
	length, angle, half := r.uniform(4, 8), r.uniform(0, 2*math.Pi), r.uniform(0.5, 0.9)
	x1 := x0 + length*float32(math.Cos(float64(angle)))
	y1 := y0 + length*float32(math.Sin(float64(angle)))
	cv.fill(col, min(x0, x1)-2, min(y0, y1)-2, max(x0, x1)+2, max(y0, y1)+2, func(x, y float32) float32 {
		return segmentDistance(x, y, x0, y0, x1, y1) - half
	})
}

// shapeParams holds the per-example parameters some shapes need beyond the pose.
type shapeParams struct {
	dots [7][2]float32 // dot-ring centres, local units
	nDot int
}

// drawShape paints the class shape in colour fg at a random position, scale, rotation and mild aspect.
// Shapes are signed distance functions in a local frame where the shape spans about [-1, 1].
func (cv *canvas) drawShape(label int, fg [3]float32, r *exampleRand) {
	scale := r.uniform(7, 11.5) // pixels per local unit
	aspectX, aspectY := r.uniform(0.85, 1.15), r.uniform(0.85, 1.15)
	var angle float32
	switch label {
	case 4: // plus: stays upright-ish so it cannot become the x-cross
		angle = r.uniform(-math.Pi/12, math.Pi/12)
	case 9: // x-cross
		angle = math.Pi/4 + r.uniform(-math.Pi/12, math.Pi/12)
	case 5: // stripes: horizontal-ish
		angle = r.uniform(-math.Pi*25/180, math.Pi*25/180)
	default:
		angle = r.uniform(0, 2*math.Pi)
	}
	var sp shapeParams
	if label == 7 {
		sp.nDot = 5 + r.intN(3)
		phase := r.uniform(0, 2*math.Pi)
		for k := range sp.nDot {
			a := float64(phase) + 2*math.Pi*float64(k)/float64(sp.nDot)
			sp.dots[k] = [2]float32{0.72 * float32(math.Cos(a)), 0.72 * float32(math.Sin(a))}
		}
	}
	// Keep the shape's bounding circle (about 1.15 local units after aspect and rotation) inside.
	extent := 1.15 * scale
	margin := 0.8 * extent
	cx := r.uniform(margin, syntheticSize-margin)
	cy := r.uniform(margin, syntheticSize-margin)

	sin64, cos64 := math.Sincos(float64(angle))
	sinA, cosA := float32(sin64), float32(cos64)
	invX, invY := 1/(scale*aspectX), 1/(scale*aspectY)
	pxPerUnit := scale * min(aspectX, aspectY)
	cv.fill(fg, cx-extent-1, cy-extent-1, cx+extent+1, cy+extent+1, func(x, y float32) float32 {
		dx, dy := x-cx, y-cy
		u := (dx*cosA + dy*sinA) * invX
		v := (-dx*sinA + dy*cosA) * invY
		return shapeDistance(label, u, v, &sp) * pxPerUnit
	})
}

// shapeDistance is the signed distance, in local units, from (u, v) to the outline of class label's
// shape: negative inside.
func shapeDistance(label int, u, v float32, sp *shapeParams) float32 {
	switch label {
	case 0: // disc
		return hypot(u, v) - 0.95
	case 1: // ring
		return abs32(hypot(u, v)-0.78) - 0.2
	case 2: // square outline
		return abs32(boxDistance(u, v, 0.8, 0.8)) - 0.15
	case 3: // triangle
		return triangleDistance(u, v, 0.95)
	case 4, 9: // plus, x-cross (same shape, different pose range)
		return min(boxDistance(u, v, 1, 0.22), boxDistance(u, v, 0.22, 1))
	case 5: // stripes: three bars at v = -0.6, 0, 0.6
		k := float32(math.Round(float64(v / 0.6)))
		k = max(-1, min(1, k))
		return boxDistance(u, v-0.6*k, 1, 0.15)
	case 6: // checkerboard: 4x4 cells of 0.5, the even ones filled
		outer := boxDistance(u, v, 1, 1)
		a, b := (u+1)*2, (v+1)*2
		ia, ib := float32(math.Floor(float64(a))), float32(math.Floor(float64(b)))
		// Just outside the board a pixel takes the parity of the nearest cell, so an empty rim cell
		// leaves no anti-aliased trace of the board's outline.
		ia, ib = max(0, min(3, ia)), max(0, min(3, ib))
		fa, fb := a-ia, b-ib
		ca, cb := int(ia), int(ib)
		if (ca+cb)&1 == 0 {
			return max(outer, -0.5*min(fa, 1-fa, fb, 1-fb))
		}
		// An empty cell is only near the filled neighbours inside the board, never the board's rim.
		edge := float32(1)
		if ca > 0 {
			edge = min(edge, fa)
		}
		if ca < 3 {
			edge = min(edge, 1-fa)
		}
		if cb > 0 {
			edge = min(edge, fb)
		}
		if cb < 3 {
			edge = min(edge, 1-fb)
		}
		return max(outer, 0.5*edge)
	case 7: // dot ring
		d := float32(math.MaxFloat32)
		for k := range sp.nDot {
			d = min(d, hypot(u-sp.dots[k][0], v-sp.dots[k][1]))
		}
		return d - 0.2
	case 8: // crescent
		return max(hypot(u, v)-1, 0.85-hypot(u-0.5, v))
	}
	return float32(math.MaxFloat32)
}

// fill blends colour col over the canvas with the anti-aliased coverage of the region where dist < 0,
// visiting only pixels whose centres lie in the box [x0, x1] x [y0, y1]. dist takes pixel-centre
// coordinates and returns a signed distance in pixels.
func (cv *canvas) fill(col [3]float32, x0, y0, x1, y1 float32, dist func(x, y float32) float32) {
	ix0, iy0 := clampPixel(x0), clampPixel(y0)
	ix1, iy1 := clampPixel(x1), clampPixel(y1)
	for y := iy0; y <= iy1; y++ {
		for x := ix0; x <= ix1; x++ {
			cover := 0.5 - dist(float32(x)+0.5, float32(y)+0.5)
			if cover <= 0 {
				continue
			}
			cover = min(cover, 1)
			p := y*syntheticSize + x
			for c := range syntheticChannels {
				cv[c][p] += (col[c] - cv[c][p]) * cover
			}
		}
	}
}

func clampPixel(v float32) int {
	return max(0, min(syntheticSize-1, int(math.Floor(float64(v)))))
}

// boxDistance is the signed distance from (u, v) to an axis-aligned box of half sizes (hx, hy).
func boxDistance(u, v, hx, hy float32) float32 {
	qx, qy := abs32(u)-hx, abs32(v)-hy
	return hypot(max(qx, 0), max(qy, 0)) + min(max(qx, qy), 0)
}

// triangleDistance is the signed distance to an equilateral triangle with circumradius radius, centred
// on its centroid.
func triangleDistance(u, v, radius float32) float32 {
	const sqrt3 = 1.7320508
	half := radius * sqrt3 / 2 // half the side length
	px, py := abs32(u)-half, v+half/sqrt3
	if px+sqrt3*py > 0 {
		px, py = (px-sqrt3*py)/2, (-sqrt3*px-py)/2
	}
	px -= max(-2*half, min(0, px))
	d := hypot(px, py)
	if py < 0 {
		return d
	}
	return -d
}

// segmentDistance is the distance from (x, y) to the segment (x0, y0)-(x1, y1).
func segmentDistance(x, y, x0, y0, x1, y1 float32) float32 {
	dx, dy := x1-x0, y1-y0
	t := ((x-x0)*dx + (y-y0)*dy) / (dx*dx + dy*dy)
	t = max(0, min(1, t))
	return hypot(x-x0-t*dx, y-y0-t*dy)
}

func hypot(x, y float32) float32 { return float32(math.Sqrt(float64(x*x + y*y))) }

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

func quantize(v float32) uint8 {
	return uint8(max(0, min(255, v+0.5)))
}

// exampleRand is a per-example random stream. It wraps a PCG by value and draws directly from it, so a
// render allocates nothing (a *rand.Rand would move the generator to the heap behind an interface).
type exampleRand struct{ pcg rand.PCG }

func (r *exampleRand) seed(key, index uint64) { r.pcg.Seed(mix64(key), mix64(index^key<<1)) }

func (r *exampleRand) next() uint64 { return r.pcg.Uint64() }

// uniform is a float in [lo, hi).
func (r *exampleRand) uniform(lo, hi float32) float32 {
	return lo + (hi-lo)*float32(r.next()>>40)*(1.0/(1<<24))
}

// intN is an int in [0, n) for small n; the modulo bias is below 2^-50.
func (r *exampleRand) intN(n int) int { return int((r.next() >> 11) % uint64(n)) }

// colour is a uniformly random RGB colour: the single distribution for every foreground, background and
// distractor, whatever the class.
func (r *exampleRand) colour() [3]float32 {
	return [3]float32{r.uniform(12, 244), r.uniform(12, 244), r.uniform(12, 244)}
}

// contrastingColours draws a foreground and background pair far enough apart for the shape to be seen.
// The rejection test is symmetric in the pair, so which one is lighter carries no information.
func (r *exampleRand) contrastingColours() (fg, bg [3]float32) {
	for {
		fg, bg = r.colour(), r.colour()
		d0, d1, d2 := fg[0]-bg[0], fg[1]-bg[1], fg[2]-bg[2]
		if d0*d0+d1*d1+d2*d2 >= 120*120 {
			return fg, bg
		}
	}
}

// mix64 is the SplitMix64 finaliser: a bijective hash that spreads nearby inputs (consecutive seeds,
// indices, epochs) over unrelated streams.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashString is 64-bit FNV-1a.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
