package cpu

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// Odd sizes on purpose: non-square inputs, strides that do not divide the extent, kernels 1/3/5/7, and
// channel counts that are multiples of nothing the GEMM blocks by.
var convCases = []convCase{
	{n: 2, cin: 3, h: 7, w: 5, cout: 4, k: 3, stride: 1, pad: 1},
	{n: 3, cin: 5, h: 9, w: 6, cout: 3, k: 3, stride: 2, pad: 1},
	{n: 1, cin: 3, h: 11, w: 13, cout: 5, k: 7, stride: 2, pad: 3},
	{n: 2, cin: 7, h: 5, w: 7, cout: 6, k: 1, stride: 1, pad: 0}, // pointwise: plain GEMM, no im2col
	{n: 3, cin: 5, h: 6, w: 5, cout: 7, k: 1, stride: 2, pad: 0}, // strided projection shortcut
	{n: 2, cin: 3, h: 8, w: 8, cout: 5, k: 3, stride: 2, pad: 0},
	{n: 1, cin: 2, h: 4, w: 3, cout: 3, k: 5, stride: 1, pad: 2},
	{n: 5, cin: 17, h: 6, w: 6, cout: 9, k: 3, stride: 1, pad: 1}, // more images than workers
	{n: 2, cin: 4, h: 7, w: 9, cout: 3, k: 3, stride: 1, pad: 0},  // unpadded: the transposed backward data pads by 2
	{n: 2, cin: 6, h: 9, w: 9, cout: 40, k: 3, stride: 1, pad: 1}, // wider than one register tile
	// Grouped: ResNeXt's 3x3 (stride 1 and 2), one image with more groups than workers, a grouped
	// pointwise and an unpadded one (transposed backward data per group), groups of one channel.
	{n: 2, cin: 8, h: 7, w: 6, cout: 8, k: 3, stride: 1, pad: 1, groups: 4},
	{n: 3, cin: 12, h: 9, w: 7, cout: 6, k: 3, stride: 2, pad: 1, groups: 3},
	{n: 1, cin: 16, h: 5, w: 5, cout: 24, k: 3, stride: 1, pad: 1, groups: 8},
	{n: 2, cin: 6, h: 4, w: 5, cout: 9, k: 1, stride: 1, pad: 0, groups: 3},
	{n: 2, cin: 4, h: 6, w: 6, cout: 4, k: 3, stride: 1, pad: 0, groups: 2},
	{n: 5, cin: 6, h: 5, w: 4, cout: 6, k: 3, stride: 1, pad: 1, groups: 6},
}

// convTestConfigs pairs each GEMM kernel with the worker counts to run it at.
func convTestConfigs() func(yield func(*gemmKernel, int) bool) {
	return func(yield func(*gemmKernel, int) bool) {
		for i := range gemmKernels {
			for _, workers := range []int{1, 3} {
				if !yield(&gemmKernels[i], workers) {
					return
				}
			}
		}
	}
}

func (c convCase) String() string {
	s := fmt.Sprintf("N%d_Cin%d_%dx%d_Cout%d_k%d_s%d_p%d", c.n, c.cin, c.h, c.w, c.cout, c.k, c.stride, c.pad)
	if c.groups > 1 {
		s += fmt.Sprintf("_g%d", c.groups)
	}
	return s
}

// Every kernel this machine runs, forced in turn: the convolutions pack their GEMM operands to the
// kernel's tile straight from the images.
func TestConvMatchesNaive(t *testing.T) {
	for kern, workers := range convTestConfigs() {
		d := NewWithWorkers(workers)
		d.useGemmKernel(kern)
		for i, c := range convCases {
			t.Run(fmt.Sprintf("%s/workers%d/%v", kern.name, workers, c), func(t *testing.T) {
				r := newRand(uint64(100 + i))
				p := c.params()
				xv := randSlice(r, c.n*c.cin*c.h*c.w)
				wv := randSlice(r, c.cout*c.wcin()*c.k*c.k)
				dyv := randSlice(r, c.n*c.cout*c.oh()*c.ow())
				x := tensor(t, d, xv, c.n, c.cin, c.h, c.w)
				w := tensor(t, d, wv, c.cout, c.wcin(), c.k, c.k)
				y := tensor(t, d, nil, c.n, c.cout, c.oh(), c.ow())
				dy := tensor(t, d, dyv, c.n, c.cout, c.oh(), c.ow())
				dw := tensor(t, d, nil, c.cout, c.wcin(), c.k, c.k)
				const abs, rel = 1e-4, 1e-4

				must(t, d.ConvForward(p, x, w, y))
				assertClose(t, "forward", values(t, y), naiveConvForward(c, xv, wv), abs, rel)

				// dx starts as garbage: without accumulate it must be overwritten.
				prior := randSlice(r, len(xv))
				dx := tensor(t, d, prior, c.n, c.cin, c.h, c.w)
				must(t, d.ConvBackwardData(p, dy, w, dx, false))
				wantDX := naiveConvBackwardData(c, dyv, wv)
				assertClose(t, "backward data", values(t, dx), wantDX, abs, rel)

				must(t, d.Upload(dx, prior))
				must(t, d.ConvBackwardData(p, dy, w, dx, true))
				for i := range wantDX {
					wantDX[i] += float64(prior[i])
				}
				assertClose(t, "backward data, accumulate", values(t, dx), wantDX, abs, rel)

				must(t, d.ConvBackwardFilter(p, x, dy, dw))
				assertClose(t, "backward filter", values(t, dw), naiveConvBackwardFilter(c, xv, dyv), abs, rel)
			})
		}
		d.Close()
	}
}

// Views with an offset into a larger buffer (WithBatch, parameter tables) must be honoured.
func TestConvOnOffsetViews(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	c := convCase{n: 2, cin: 3, h: 5, w: 4, cout: 2, k: 3, stride: 1, pad: 1}
	r := newRand(7)
	xv, wv := randSlice(r, c.n*c.cin*c.h*c.w), randSlice(r, c.cout*c.cin*9)
	big := tensor(t, d, nil, len(xv)+len(wv)+11)
	all, _ := Float32s(big)
	copy(all[5:], wv)
	copy(all[5+len(wv)+3:], xv)
	w := backend.Tensor{Shape: backend.Shape{c.cout, c.cin, 3, 3}, DType: backend.F32, Buf: big.Buf, Off: 5}
	x := backend.Tensor{Shape: backend.Shape{c.n, c.cin, c.h, c.w}, DType: backend.F32, Buf: big.Buf, Off: 5 + len(wv) + 3}
	y := tensor(t, d, nil, c.n, c.cout, c.oh(), c.ow())
	must(t, d.ConvForward(backend.ConvParams{Stride: 1, Pad: 1}, x, w, y))
	assertClose(t, "forward", values(t, y), naiveConvForward(c, xv, wv), 1e-4, 1e-4)

	// The first image alone through a smaller batch view.
	y1 := y.WithBatch(1)
	must(t, d.ConvForward(backend.ConvParams{Stride: 1, Pad: 1}, x.WithBatch(1), w, y1))
	c.n = 1
	assertClose(t, "forward, batch view", values(t, y1), naiveConvForward(c, xv, wv), 1e-4, 1e-4)
}
