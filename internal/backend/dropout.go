package backend

// The dropout mask: a counter-based hash of (run seed, step, layer, element), so that every backend and
// every activation format draw the same mask, the backward pass draws the forward's again instead of
// storing it, and a resumed run draws the masks the uninterrupted one would have.

import "math"

// DropoutParams are a dropout layer's probability and the coordinates of its mask in a run.
type DropoutParams struct {
	P     float64 // probability of dropping an element, 0 <= P < 1
	Seed  uint64  // the run's seed
	Step  int64   // the training step the forward belongs to
	Layer int     // the dropout layer's index in the net, from 0
}

// DropoutMask is DropoutParams made ready for a kernel: element i of an (N, C, H, W) activation, i its
// index in the NCHW order whatever the layout, is kept when Keeps(i), and then scaled by Scale.
type DropoutMask struct {
	Key       uint64  // the stream of (Seed, Step, Layer)
	Threshold uint32  // round(P * 2^24): an element is dropped when its 24-bit draw is below it
	Scale     float32 // 1/(1-P) rounded to f32
}

// dropoutBits is the resolution of an element's draw: P is rounded to a multiple of 2^-24, so the kept
// fraction is 1-P within 2^-25.
const dropoutBits = 24

// golden is 2^64 divided by the golden ratio, SplitMix64's increment.
const golden = 0x9E3779B97F4A7C15

// mix64 is SplitMix64's finaliser (Steele, Lea and Flood 2014), a bijection of uint64 whose outputs pass
// BigCrush for consecutive inputs. kernels/dropout.cu has the same.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Mask computes the mask's key, threshold and scale.
func (p DropoutParams) Mask() DropoutMask {
	k := mix64(p.Seed + golden)
	k = mix64(k ^ uint64(p.Step) + golden)
	k = mix64(k ^ uint64(p.Layer) + golden)
	return DropoutMask{
		Key:       k,
		Threshold: uint32(math.Round(p.P * (1 << dropoutBits))),
		Scale:     float32(1 / (1 - p.P)),
	}
}

// Keeps reports whether element i (NCHW order) is kept: the top 24 bits of mix64(Key + (i+1)*golden), the
// i-th output of a SplitMix64 stream seeded with Key, are at least Threshold.
func (m DropoutMask) Keeps(i uint64) bool {
	return uint32(mix64(m.Key+(i+1)*golden)>>(64-dropoutBits)) >= m.Threshold
}

// DropoutGeometry is the geometry of a checked dropout: x and y (N, C, H, W) holding DType in Layout.
type DropoutGeometry struct {
	N, C, H, W int
	DType      DType
	Layout     Layout
}

// Len is the element count of x.
func (g DropoutGeometry) Len() int { return g.N * g.C * g.H * g.W }

// CheckDropoutForward checks the operands of Device.DropoutForward.
func CheckDropoutForward(p DropoutParams, x, y Tensor) (DropoutGeometry, error) {
	return checkDropout("DropoutForward", p, "x", x, "y", y)
}

// CheckDropoutBackward checks the operands of Device.DropoutBackward.
func CheckDropoutBackward(p DropoutParams, dy, dx Tensor) (DropoutGeometry, error) {
	return checkDropout("DropoutBackward", p, "dy", dy, "dx", dx)
}

func checkDropout(op string, p DropoutParams, inName string, in Tensor, outName string, out Tensor) (DropoutGeometry, error) {
	k := checker{op: op}
	if !(p.P >= 0 && p.P < 1) {
		k.failf("p must be >= 0 and < 1 (got %v)", p.P)
	}
	var g DropoutGeometry
	g.N, g.C, g.H, g.W = k.act4(inName, in)
	k.actShaped(outName, out, g.N, g.C, g.H, g.W)
	g.DType, g.Layout = in.DType, in.Layout
	return g, k.err
}
