package cpu

import (
	"fmt"
	"sync/atomic"
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
	// Rows of whole kernel tiles, written straight into the output (convJob.shiftedRows).
	{n: 2, cin: 5, h: 6, w: 32, cout: 16, k: 3, stride: 1, pad: 1},
	{n: 2, cin: 7, h: 5, w: 16, cout: 32, k: 3, stride: 1, pad: 1},
	// Weight gradients read in place (conv_filter.go): stride-1 3x3 with whole panels of output channels;
	// batch chunks of several images; per group.
	{n: 3, cin: 5, h: 8, w: 8, cout: 16, k: 3, stride: 1, pad: 1},
	{n: 2, cin: 3, h: 4, w: 6, cout: 32, k: 3, stride: 1, pad: 1},
	{n: 2, cin: 4, h: 6, w: 10, cout: 8, k: 3, stride: 1, pad: 0},
	{n: 2, cin: 8, h: 4, w: 4, cout: 32, k: 3, stride: 1, pad: 1, groups: 2},
	{n: 20, cin: 2, h: 4, w: 4, cout: 64, k: 3, stride: 1, pad: 1},
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

// Every 3x3 weight-gradient kernel this machine runs, forced in turn, against the naive gradient, and the
// shapes that must fall back to the GEMM path.
func TestFilterKernelsMatchNaive(t *testing.T) {
	saved := filterKernels
	defer func() { filterKernels = saved }()
	cases := []convCase{
		{n: 3, cin: 5, h: 8, w: 8, cout: 32, k: 3, stride: 1, pad: 1},
		{n: 2, cin: 3, h: 4, w: 6, cout: 32, k: 3, stride: 1, pad: 1},
		{n: 2, cin: 4, h: 6, w: 10, cout: 64, k: 3, stride: 1, pad: 0},
		{n: 2, cin: 8, h: 4, w: 4, cout: 64, k: 3, stride: 1, pad: 1, groups: 2},
		{n: 19, cin: 2, h: 4, w: 4, cout: 32, k: 3, stride: 1, pad: 1}, // chunks of two images
		{n: 2, cin: 3, h: 7, w: 7, cout: 32, k: 3, stride: 1, pad: 1},  // 49 positions: the portable packing
	}
	if len(saved) == 0 {
		t.Skip("no 3x3 weight-gradient kernel on this CPU")
	}
	avx2 := packLanesAVX2
	defer func() { packLanesAVX2 = avx2 }()
	for ki, k := range saved {
		filterKernels = []filterKernel{k}
		for _, workers := range []int{1, 3} {
			// The first kernel also runs with the portable panel packing.
			packLanesAVX2 = avx2 && !(ki == 0 && workers == 3)
			d := NewWithWorkers(workers)
			for i, c := range cases {
				t.Run(fmt.Sprintf("x%d/workers%d/avx2pack%v/%v", k.nr, workers, packLanesAVX2, c), func(t *testing.T) {
					g := newConvGeom(backend.ConvGeometry{N: c.n, Cin: c.cin, H: c.h, W: c.w, Cout: c.cout, KH: 3, KW: 3,
						Stride: 1, PadH: c.pad, PadW: c.pad, OH: c.oh(), OW: c.ow(), Groups: c.groups})
					if filterKernelFor(&g) == nil {
						t.Fatalf("the x%d kernel does not take %v", k.nr, c)
					}
					r := newRand(uint64(300 + i))
					xv := randSlice(r, c.n*c.cin*c.h*c.w)
					dyv := randSlice(r, c.n*c.cout*c.oh()*c.ow())
					x := tensor(t, d, xv, c.n, c.cin, c.h, c.w)
					dy := tensor(t, d, dyv, c.n, c.cout, c.oh(), c.ow())
					dw := tensor(t, d, randSlice(r, c.cout*c.wcin()*9), c.cout, c.wcin(), 3, 3)
					must(t, d.ConvBackwardFilter(c.params(), x, dy, dw))
					assertClose(t, "backward filter", values(t, dw), naiveConvBackwardFilter(c, xv, dyv), 1e-4, 1e-4)
				})
			}
			d.Close()
		}
	}
	filterKernels = saved
	for _, g := range []backend.ConvGeometry{
		{N: 1, Cin: 4, H: 8, W: 8, Cout: 16, KH: 3, KW: 3, Stride: 2, PadH: 1, PadW: 1, OH: 4, OW: 4},        // strided
		{N: 1, Cin: 4, H: 8, W: 8, Cout: 12, KH: 3, KW: 3, Stride: 1, PadH: 1, PadW: 1, OH: 8, OW: 8},        // 12 channels
		{N: 1, Cin: 4, H: 8, W: 8, Cout: 16, KH: 5, KW: 5, Stride: 1, PadH: 2, PadW: 2, OH: 8, OW: 8},        // 5x5
		{N: 1, Cin: 256, H: 14, W: 14, Cout: 256, KH: 3, KW: 3, Stride: 1, PadH: 1, PadW: 1, OH: 14, OW: 14}, // past filterTileMax
	} {
		if cg := newConvGeom(g); filterKernelFor(&cg) != nil {
			t.Errorf("%+v: the in-place weight gradient took a shape it cannot do", g)
		}
	}
}

// Small maps run on the narrower shifted kernel (gemmKernel.narrow): the same bits as the wide one, which
// sums every output in the same step order.
func TestNarrowShiftedKernelSameBits(t *testing.T) {
	wide := &gemmKernels[0]
	if wide.narrow == nil {
		t.Skip("no narrower shifted kernel on this CPU")
	}
	c := convCase{n: 3, cin: 24, h: 8, w: 8, cout: 48, k: 3, stride: 1, pad: 1}
	r := newRand(5)
	xv, wv := randSlice(r, c.n*c.cin*64), randSlice(r, c.cout*c.cin*9)
	dyv := randSlice(r, c.n*c.cout*64)
	run := func(narrow *gemmKernel) (y, dx []float32) {
		saved := wide.narrow
		wide.narrow = narrow
		defer func() { wide.narrow = saved }()
		d := NewWithWorkers(2)
		defer d.Close()
		x, w := tensor(t, d, xv, c.n, c.cin, 8, 8), tensor(t, d, wv, c.cout, c.cin, 3, 3)
		yt, dy := tensor(t, d, nil, c.n, c.cout, 8, 8), tensor(t, d, dyv, c.n, c.cout, 8, 8)
		dxt := tensor(t, d, nil, c.n, c.cin, 8, 8)
		must(t, d.ConvForward(c.params(), x, w, yt))
		must(t, d.ConvBackwardData(c.params(), dy, w, dxt, false))
		return values(t, yt), values(t, dxt)
	}
	counted := *wide.narrow
	var calls atomic.Int64
	kernel := wide.narrow.shifted
	counted.shifted = func(a, b []float32, offs shiftOffsets, c []float32, ldc int, add bool) {
		calls.Add(1)
		kernel(a, b, offs, c, ldc, add)
	}
	y1, dx1 := run(&counted)
	if calls.Load() == 0 {
		t.Fatal("the narrow kernel never ran")
	}
	y2, dx2 := run(nil)
	assertSameBits(t, "forward, narrow vs wide", y1, y2)
	assertSameBits(t, "backward data, narrow vs wide", dx1, dx2)
	assertClose(t, "forward", y1, naiveConvForward(c, xv, wv), 1e-4, 1e-4)
}

// Maps whose rows are whole kernel tiles write them straight into the output (convJob.shiftedRows), also
// when the call accumulates: the accumulated gradient is the prior values plus the written one, exactly
// where the weights are one block of steps (16 channels), to a rounding of each block's addition past it.
func TestShiftedRowsAccumulate(t *testing.T) {
	for _, c := range []convCase{
		{n: 2, cin: 16, h: 32, w: 32, cout: 16, k: 3, stride: 1, pad: 1},
		{n: 2, cin: 32, h: 16, w: 16, cout: 32, k: 3, stride: 1, pad: 1},
	} {
		d := NewWithWorkers(2)
		r := newRand(9)
		dy := tensor(t, d, randSlice(r, c.n*c.cout*c.h*c.w), c.n, c.cout, c.h, c.w)
		w := tensor(t, d, randSlice(r, c.cout*c.cin*9), c.cout, c.cin, 3, 3)
		prior := randSlice(r, c.n*c.cin*c.h*c.w)
		written := tensor(t, d, nil, c.n, c.cin, c.h, c.w)
		summed := tensor(t, d, prior, c.n, c.cin, c.h, c.w)
		must(t, d.ConvBackwardData(c.params(), dy, w, written, false))
		must(t, d.ConvBackwardData(c.params(), dy, w, summed, true))
		want := values(t, written)
		for i := range want {
			want[i] += prior[i]
		}
		got := values(t, summed)
		d.Close()
		// The backward data runs over dy's channels: one block of steps while they fit the kernel's.
		if c.cout*9 <= gemmKernels[0].kc {
			assertSameBits(t, fmt.Sprintf("%v: accumulated", c), got, want)
			continue
		}
		assertClose(t, fmt.Sprintf("%v: accumulated", c), got, want, 1e-6, 1e-6)
	}
}
