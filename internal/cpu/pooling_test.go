package cpu

import (
	"math"

	"fmt"
	"testing"

	"resnet/internal/backend"
)

func TestMaxPoolMatchesNaive(t *testing.T) {
	cases := []poolCase{
		{n: 2, c: 3, h: 7, w: 9, k: 3, stride: 2, pad: 1}, // the ResNet stem pool on an odd input
		{n: 1, c: 2, h: 8, w: 6, k: 2, stride: 2, pad: 0},
		{n: 2, c: 3, h: 6, w: 5, k: 3, stride: 1, pad: 1}, // overlapping windows accumulate in dx
		{n: 1, c: 1, h: 5, w: 5, k: 1, stride: 1, pad: 0},
		{n: 3, c: 5, h: 4, w: 7, k: 4, stride: 3, pad: 2},
	}
	for _, workers := range []int{1, 3} {
		d := NewWithWorkers(workers)
		for i, c := range cases {
			t.Run(fmt.Sprintf("workers%d/%+v", workers, c), func(t *testing.T) {
				r := newRand(uint64(400 + i))
				xv := randSlice(r, c.n*c.c*c.h*c.w)
				for j := range xv {
					xv[j] = float32(int(xv[j]*4)) / 4 // coarse values: many ties
				}
				dyv := randSlice(r, c.n*c.c*c.oh()*c.ow())
				p := backend.PoolParams{Kernel: c.k, Stride: c.stride, Pad: c.pad}
				x := tensor(t, d, xv, c.n, c.c, c.h, c.w)
				y := tensor(t, d, nil, c.n, c.c, c.oh(), c.ow())
				dx := tensor(t, d, randSlice(r, len(xv)), c.n, c.c, c.h, c.w)
				must(t, d.MaxPoolForward(p, x, y))
				want, arg := naiveMaxPool(c, xv)
				assertClose(t, "forward", values(t, y), want, 0, 0)
				must(t, d.MaxPoolBackward(p, x, y, tensor(t, d, dyv, c.n, c.c, c.oh(), c.ow()), dx))
				wantDX := make([]float64, len(xv))
				for o, a := range arg {
					wantDX[a] += float64(dyv[o])
				}
				assertClose(t, "backward", values(t, dx), wantDX, 1e-6, 1e-6)
			})
		}
		d.Close()
	}
}

// On a tie the gradient goes to the first maximum in row-major window order, never split.
func TestMaxPoolTieGoesToFirst(t *testing.T) {
	d := NewWithWorkers(1)
	p := backend.PoolParams{Kernel: 2, Stride: 2}
	x := tensor(t, d, []float32{
		1, 5, 5, 2,
		5, 3, 5, 5,
	}, 1, 1, 2, 4)
	y := tensor(t, d, nil, 1, 1, 1, 2)
	dx := tensor(t, d, nil, 1, 1, 2, 4)
	must(t, d.MaxPoolForward(p, x, y))
	must(t, d.MaxPoolBackward(p, x, y, tensor(t, d, []float32{10, 20}, 1, 1, 1, 2), dx))
	assertClose(t, "y", values(t, y), []float64{5, 5}, 0, 0)
	assertClose(t, "dx", values(t, dx), []float64{0, 10, 20, 0, 0, 0, 0, 0}, 0, 0)
}

func TestGlobalAvgPoolMatchesNaive(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	r := newRand(5)
	n, c, h, w := 3, 5, 7, 3
	xv := randSlice(r, n*c*h*w)
	x := tensor(t, d, xv, n, c, h, w)
	for _, yshape := range [][]int{{n, c}, {n, c, 1, 1}} {
		y := tensor(t, d, nil, yshape...)
		must(t, d.GlobalAvgPoolForward(x, y))
		want := make([]float64, n*c)
		for pl := range want {
			for i := 0; i < h*w; i++ {
				want[pl] += float64(xv[pl*h*w+i]) / float64(h*w)
			}
		}
		assertClose(t, "forward", values(t, y), want, 1e-7, 1e-6)

		dyv := randSlice(r, n*c)
		dx := tensor(t, d, nil, n, c, h, w)
		must(t, d.GlobalAvgPoolBackward(tensor(t, d, dyv, yshape...), dx))
		wantDX := make([]float64, len(xv))
		for i := range wantDX {
			wantDX[i] = float64(dyv[i/(h*w)]) / float64(h*w)
		}
		assertClose(t, "backward", values(t, dx), wantDX, 1e-7, 1e-6)
	}
}

// Signed zeros are equal (the first holds the window), infinities order as numbers, and a window with a
// NaN takes its last NaN, as PyTorch's max pooling does: the forward's bits and the backward's argmax.
func TestMaxPoolZerosInfinitiesAndNaNs(t *testing.T) {
	negZero, inf, nan := float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.NaN())
	nan2 := math.Float32frombits(math.Float32bits(nan) | 1<<31) // a NaN with the sign bit set
	d := NewWithWorkers(1)
	p := backend.PoolParams{Kernel: 2, Stride: 2}
	x := tensor(t, d, []float32{
		negZero, 0, -inf, -3, 1, nan2, 2, 7,
		0, negZero, -inf, -inf, nan, 9, inf, -1,
	}, 1, 1, 2, 8)
	y := tensor(t, d, nil, 1, 1, 1, 4)
	dx := tensor(t, d, nil, 1, 1, 2, 8)
	must(t, d.MaxPoolForward(p, x, y))
	must(t, d.MaxPoolBackward(p, x, y, tensor(t, d, []float32{10, 20, 30, 40}, 1, 1, 1, 4), dx))
	got := values(t, y)
	want := []uint32{math.Float32bits(negZero), math.Float32bits(-3), math.Float32bits(nan), math.Float32bits(inf)}
	for i, w := range want {
		if math.Float32bits(got[i]) != w {
			t.Errorf("y[%d] = %v (bits %#x), want bits %#x", i, got[i], math.Float32bits(got[i]), w)
		}
	}
	assertClose(t, "dx", values(t, dx), []float64{10, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 30, 0, 40, 0}, 0, 0)
}
