//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
)

// convCase is one convolution geometry: x (n, cin, h, w), w (cout, cin, k, k).
type convCase struct{ n, cin, h, w, cout, k, stride, pad int }

func (c convCase) oh() int { return backend.OutSize(c.h, c.k, c.stride, c.pad) }
func (c convCase) ow() int { return backend.OutSize(c.w, c.k, c.stride, c.pad) }

func (c convCase) String() string {
	return fmt.Sprintf("N%d_%dx%dx%d_to_%d_k%ds%dp%d", c.n, c.cin, c.h, c.w, c.cout, c.k, c.stride, c.pad)
}

// flops is 2*MACs of one pass (forward, backward-data and backward-filter cost the same).
func (c convCase) flops() float64 {
	return 2 * float64(c.n) * float64(c.cout) * float64(c.oh()*c.ow()) * float64(c.cin*c.k*c.k)
}

// convCases are the convolutions of the zoo: the CIFAR ResNets (batch 8), the ResNet-50 stem and
// bottlenecks (batch 2, v1.5 strides on the 3x3), and odd geometries no model uses.
var convCases = []convCase{
	// CIFAR: stem, the three stages, and the stride-2 transitions into stages 2 and 3.
	{8, 3, 32, 32, 16, 3, 1, 1},
	{8, 16, 32, 32, 16, 3, 1, 1},
	{8, 16, 32, 32, 32, 3, 2, 1},
	{8, 32, 16, 16, 32, 3, 1, 1},
	{8, 32, 16, 16, 64, 3, 2, 1},
	{8, 64, 8, 8, 64, 3, 1, 1},
	// ImageNet: the 7x7/2 stem, then each stage's 1x1 reduce, 3x3 (strided in the first block), 1x1
	// expand and strided 1x1 projection.
	{2, 3, 224, 224, 64, 7, 2, 3},
	{2, 64, 56, 56, 64, 1, 1, 0},
	{2, 64, 56, 56, 64, 3, 1, 1},
	{2, 64, 56, 56, 256, 1, 1, 0},
	{2, 256, 56, 56, 128, 1, 1, 0},
	{2, 128, 56, 56, 128, 3, 2, 1},
	{2, 256, 56, 56, 512, 1, 2, 0},
	{2, 512, 28, 28, 256, 1, 1, 0},
	{2, 256, 28, 28, 256, 3, 2, 1},
	{2, 256, 14, 14, 256, 3, 1, 1},
	{2, 1024, 14, 14, 2048, 1, 2, 0},
	{2, 512, 7, 7, 512, 3, 1, 1},
	{2, 512, 7, 7, 2048, 1, 1, 0},
	// Odd: non-square, strides that do not divide the extent, 5x5, channel counts no kernel tiles by.
	{3, 5, 9, 6, 3, 3, 2, 1},
	{1, 3, 11, 13, 5, 7, 2, 3},
	{5, 17, 6, 6, 9, 3, 1, 1},
	{3, 5, 6, 5, 7, 1, 2, 0},
	{2, 3, 8, 8, 5, 3, 2, 0},
	{1, 2, 4, 3, 3, 5, 1, 2},
}

// convTol: cuDNN picks its own algorithm (implicit GEMM, FFT, Winograd) and summation order, so results
// differ from the CPU's by rounding that grows with the size of the summed terms; relative to the output's
// RMS that is ~1e-7 for plain FP32 summation and ~1e-5 for FP32 Winograd. 1e-4*rms leaves room for those
// and still fails if TF32 tensor cores are on (10-bit mantissa: ~5e-4*rms), as they are only under
// RESNET_CUDA_TF32=1, which these tests do not allow; an indexing bug is off by O(rms).
var convTol = tolerance{abs: 1e-4, rel: 1e-3, rms: true}

// convOperands uploads x uniform in [-1, 1) and w uniform with variance 1/(3*fan_in), so outputs are O(1)
// whatever the fan-in, as with He initialisation.
func convOperands(r *rig, c convCase) (x, w twin) {
	x, _ = r.random(-1, 1, c.n, c.cin, c.h, c.w)
	s := float32(1 / math.Sqrt(float64(c.cin*c.k*c.k)))
	w, _ = r.random(-s, s, c.cout, c.cin, c.k, c.k)
	return x, w
}

func TestConvMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	for i, c := range convCases {
		t.Run(c.String(), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(100+i))
			x, w := convOperands(r, c)
			convDirections(r, c, x, w, convTol)
		})
	}
}

// convDirections runs the forward, backward data (overwriting and accumulating) and backward filter
// passes of case c with input x and weight w on both devices and compares each result within tl. The
// other activations are allocated in the GPU device's format; outputs start as garbage, so that without
// accumulate every element must be written.
func convDirections(r *rig, c convCase, x, w twin, tl tolerance) {
	groupedConvDirections(r, c, 1, x, w, tl)
}

// groupedConvDirections is convDirections for a convolution in groups (w is (Cout, Cin/groups, k, k)).
func groupedConvDirections(r *rig, c convCase, groups int, x, w twin, tl tolerance) {
	r.t.Helper()
	p := backend.ConvParams{Stride: c.stride, Pad: c.pad, Groups: groups}
	y, _ := r.randomActivation(-9, 9, c.n, c.cout, c.oh(), c.ow())
	r.run("ConvForward", func(d backend.Device, s side) error { return d.ConvForward(p, x.on(s), w.on(s), y.on(s)) })
	r.expect("forward y", y, tl)

	dy, _ := r.randomActivation(-1, 1, c.n, c.cout, c.oh(), c.ow())
	dx, prior := r.randomActivation(-9, 9, c.n, c.cin, c.h, c.w)
	r.run("ConvBackwardData", func(d backend.Device, s side) error {
		return d.ConvBackwardData(p, dy.on(s), w.on(s), dx.on(s), false)
	})
	r.expect("backward data dx (accumulate false)", dx, tl)

	r.set(dx, prior)
	r.run("ConvBackwardData accumulate", func(d backend.Device, s side) error {
		return d.ConvBackwardData(p, dy.on(s), w.on(s), dx.on(s), true)
	})
	r.expect("backward data dx (accumulate true)", dx, tl)

	dw, _ := r.random(-9, 9, c.cout, c.cin/groups, c.k, c.k)
	r.run("ConvBackwardFilter", func(d backend.Device, s side) error {
		return d.ConvBackwardFilter(p, x.on(s), dy.on(s), dw.on(s))
	})
	r.expect("backward filter dw", dw, tl)
}

// A smaller batch viewed out of a larger allocation (Tensor.WithBatch, the last batch of an epoch) must
// read and write only its own samples.
func TestConvOnBatchViews(t *testing.T) {
	c := convCase{8, 16, 32, 32, 32, 3, 2, 1}
	r := newRig(t, backend.Options{}, 7)
	p := backend.ConvParams{Stride: c.stride, Pad: c.pad}
	x, w := convOperands(r, c)
	y, _ := r.random(-9, 9, c.n, c.cout, c.oh(), c.ow())
	dy, _ := r.random(-1, 1, c.n, c.cout, c.oh(), c.ow())
	dx, _ := r.random(-9, 9, c.n, c.cin, c.h, c.w)
	const nb = 3
	xs, ys, dys, dxs := x.withBatch(nb), y.withBatch(nb), dy.withBatch(nb), dx.withBatch(nb)
	r.run("ConvForward", func(d backend.Device, s side) error { return d.ConvForward(p, xs.on(s), w.on(s), ys.on(s)) })
	r.run("ConvBackwardData", func(d backend.Device, s side) error {
		return d.ConvBackwardData(p, dys.on(s), w.on(s), dxs.on(s), true)
	})
	r.expect("forward y, batch view", ys, convTol)
	r.expect("backward data dx, batch view", dxs, convTol)
	// The samples past the view must still hold the garbage they started with, on both devices.
	r.expect("forward y past the view", r.tail(y, nb), tolerance{})
	r.expect("backward data dx past the view", r.tail(dx, nb), tolerance{})
}

// Inception-ResNet's rectangular convolutions with their per-axis padding (1x7 pad (0, 3), 7x1 pad (3, 0),
// 1x3 and 3x1), and a strided one padded on one axis only, in every direction: cuDNN's descriptor (and
// the emulator) must take the two paddings apart.
func TestRectangularConvMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct {
		n, cin, h, w, cout, kh, kw int
		p                          backend.ConvParams
	}{
		{2, 6, 8, 7, 5, 1, 7, backend.ConvParams{Stride: 1, PadH: 0, PadW: 3}},
		{2, 6, 8, 7, 5, 7, 1, backend.ConvParams{Stride: 1, PadH: 3, PadW: 0}},
		{1, 4, 5, 6, 3, 1, 3, backend.ConvParams{Stride: 1, PadH: 0, PadW: 1}},
		{1, 4, 5, 6, 3, 3, 1, backend.ConvParams{Stride: 1, PadH: 1, PadW: 0}},
		{2, 3, 9, 8, 4, 3, 3, backend.ConvParams{Stride: 2, PadH: 1, PadW: 0}},
	}
	for i, c := range cases {
		ph, pw := c.p.Padding()
		oh, ow := backend.OutSize(c.h, c.kh, c.p.Stride, ph), backend.OutSize(c.w, c.kw, c.p.Stride, pw)
		t.Run(fmt.Sprintf("%dx%d_pad%d,%d_s%d", c.kh, c.kw, ph, pw, c.p.Stride), func(t *testing.T) {
			r := newRig(t, backend.Options{}, uint64(150+i))
			x, _ := r.random(-1, 1, c.n, c.cin, c.h, c.w)
			s := float32(1 / math.Sqrt(float64(c.cin*c.kh*c.kw)))
			w, _ := r.random(-s, s, c.cout, c.cin, c.kh, c.kw)
			y, _ := r.randomActivation(-9, 9, c.n, c.cout, oh, ow)
			r.run("ConvForward", func(d backend.Device, s side) error { return d.ConvForward(c.p, x.on(s), w.on(s), y.on(s)) })
			r.expect("forward y", y, convTol)
			dy, _ := r.randomActivation(-1, 1, c.n, c.cout, oh, ow)
			dx, _ := r.randomActivation(-9, 9, c.n, c.cin, c.h, c.w)
			r.run("ConvBackwardData", func(d backend.Device, s side) error {
				return d.ConvBackwardData(c.p, dy.on(s), w.on(s), dx.on(s), false)
			})
			r.expect("backward data dx", dx, convTol)
			dw, _ := r.random(-9, 9, c.cout, c.cin, c.kh, c.kw)
			r.run("ConvBackwardFilter", func(d backend.Device, s side) error {
				return d.ConvBackwardFilter(c.p, x.on(s), dy.on(s), dw.on(s))
			})
			r.expect("backward filter dw", dw, convTol)
		})
	}
}
