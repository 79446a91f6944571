package cpu

// The ops of DenseNet and Inception-ResNet on the CPU reference: windowed average pooling (PyTorch's
// avg_pool2d with count_include_pad either way), channel copies and the scaled residual sum, by value
// and by finite differences (see gradcheck_test.go for the method and the tolerances).

import (
	"strings"
	"testing"

	"resnet/internal/backend"
)

// Values PyTorch gives: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) on 1..9 divides the corner
// window's 4 values by 4 and an edge window's 6 by 6; with the default count_include_pad=True every window
// divides by 9. A 2x2/2 pool averages disjoint quads.
func TestAvgPoolWindowValues(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	x := tensor(t, d, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1, 1, 3, 3)
	y := tensor(t, d, nil, 1, 1, 3, 3)
	must(t, d.AvgPoolForward(backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true}, x, y))
	assertClose(t, "count_include_pad=False", values(t, y),
		[]float64{12.0 / 4, 21.0 / 6, 16.0 / 4, 27.0 / 6, 45.0 / 9, 33.0 / 6, 24.0 / 4, 39.0 / 6, 28.0 / 4}, 0, 1e-7)
	must(t, d.AvgPoolForward(backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1}, x, y))
	assertClose(t, "count_include_pad=True", values(t, y),
		[]float64{12.0 / 9, 21.0 / 9, 16.0 / 9, 27.0 / 9, 45.0 / 9, 33.0 / 9, 24.0 / 9, 39.0 / 9, 28.0 / 9}, 0, 1e-7)

	x4 := tensor(t, d, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1, 1, 4, 4)
	y2 := tensor(t, d, nil, 1, 1, 2, 2)
	must(t, d.AvgPoolForward(backend.PoolParams{Kernel: 2, Stride: 2}, x4, y2))
	assertClose(t, "2x2/2", values(t, y2), []float64{3.5, 5.5, 11.5, 13.5}, 0, 0)

	// Max pooling has no divisor to exclude padding from.
	if err := d.MaxPoolForward(backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true}, x, y); err == nil ||
		!strings.Contains(err.Error(), "ExcludePad") {
		t.Errorf("MaxPoolForward with ExcludePad: %v", err)
	}
}

func TestAvgPoolWindowGradient(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	for i, p := range []backend.PoolParams{
		{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true},
		{Kernel: 3, Stride: 2, Pad: 1},
		{Kernel: 2, Stride: 2},
	} {
		r := newRand(uint64(40 + i))
		n, c, h, w := 2, 3, 5, 6
		oh, ow := backend.OutSize(h, p.Kernel, p.Stride, p.Pad), backend.OutSize(w, p.Kernel, p.Stride, p.Pad)
		x := tensor(t, d, randSlice(r, n*c*h*w), n, c, h, w)
		y := tensor(t, d, nil, n, c, oh, ow)
		rv := randSlice(r, n*c*oh*ow)
		yv, _ := Float32s(y)
		loss := func() float64 {
			must(t, d.AvgPoolForward(p, x, y))
			return dot64(yv, rv)
		}
		prior := randSlice(r, n*c*h*w)
		dx := tensor(t, d, prior, n, c, h, w)
		dy := tensor(t, d, rv, n, c, oh, ow)
		must(t, d.AvgPoolBackward(p, dy, dx, false))
		fd := fdGrad(t, x, 0.05, loss, nil)
		assertGrad(t, "avgpool dx", values(t, dx), fd, 1e-3, 1e-3)
		// Accumulating adds the same gradient onto what dx held.
		must(t, d.Upload(dx, prior))
		must(t, d.AvgPoolBackward(p, dy, dx, true))
		for j := range fd {
			fd[j] += float64(prior[j])
		}
		assertGrad(t, "avgpool dx accumulated", values(t, dx), fd, 1e-3, 1e-3)
	}
}

func TestCopyChannels(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	// src (2, 3, 1, 2): sample n channel c holds 100n + 10c + {0, 1}.
	var sv []float32
	for n := range 2 {
		for c := range 3 {
			sv = append(sv, float32(100*n+10*c), float32(100*n+10*c+1))
		}
	}
	src := tensor(t, d, sv, 2, 3, 1, 2)
	dst := tensor(t, d, nil, 2, 4, 1, 2)
	must(t, d.CopyChannels(backend.ChannelCopyParams{SrcOffset: 1, DstOffset: 2, Channels: 2}, src, dst))
	want := []float64{0, 0, 0, 0, 10, 11, 20, 21, 0, 0, 0, 0, 110, 111, 120, 121}
	assertClose(t, "copy", values(t, dst), want, 0, 0)
	must(t, d.CopyChannels(backend.ChannelCopyParams{SrcOffset: 0, DstOffset: 1, Channels: 2, Accumulate: true}, src, dst))
	want = []float64{0, 0, 0, 1, 20, 22, 20, 21, 0, 0, 100, 101, 220, 222, 120, 121}
	assertClose(t, "accumulate", values(t, dst), want, 0, 0)

	inside := dst // a (2, 3, 1, 2) view inside dst's storage
	inside.Shape, inside.Off = backend.Shape{2, 3, 1, 2}, dst.Off+2
	for _, c := range []struct {
		p    backend.ChannelCopyParams
		src  backend.Tensor
		want string
	}{
		{backend.ChannelCopyParams{SrcOffset: 2, DstOffset: 0, Channels: 2}, src, "channels [2, 4) are outside src"},
		{backend.ChannelCopyParams{SrcOffset: 0, DstOffset: 3, Channels: 2}, src, "channels [3, 5) are outside dst"},
		{backend.ChannelCopyParams{Channels: 1}, tensor(t, d, nil, 2, 3, 2, 1), "differ outside the channel axis"},
		{backend.ChannelCopyParams{Channels: 1}, inside, "overlap in one buffer"},
	} {
		if err := d.CopyChannels(c.p, c.src, dst); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CopyChannels(%+v): %v, want an error saying %q", c.p, err, c.want)
		}
	}
}

// y = act(scale*(a + bias) + z): its values, and its backward against finite differences for a, bias
// and z, with and without the ReLU; the shortcut gradient adds onto what DZ held when accumulating.
func TestScaledResidual(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	a := tensor(t, d, []float32{1, -2}, 1, 1, 1, 2)
	bias := tensor(t, d, []float32{0.5}, 1)
	z := tensor(t, d, []float32{0.25, 0.1}, 1, 1, 1, 2)
	y := tensor(t, d, nil, 1, 1, 1, 2)
	must(t, d.ScaledResidual(backend.ScaledResidualParams{Scale: 0.5, ReLU: true}, a, bias, z, y))
	assertClose(t, "relu", values(t, y), []float64{1, 0}, 0, 0)
	must(t, d.ScaledResidual(backend.ScaledResidualParams{Scale: 0.5}, a, bias, z, y))
	assertClose(t, "identity", values(t, y), []float64{1, -0.65}, 0, 1e-7)

	for i, p := range []backend.ScaledResidualParams{{Scale: 0.17, ReLU: true}, {Scale: 1}} {
		r := newRand(uint64(50 + i))
		n, c, h, w := 2, 3, 2, 3
		shape := []int{n, c, h, w}
		a := tensor(t, d, randSlice(r, n*c*h*w), shape...)
		bias := tensor(t, d, randSlice(r, c), c)
		z := tensor(t, d, randSlice(r, n*c*h*w), shape...)
		y := tensor(t, d, nil, shape...)
		rv := randSlice(r, n*c*h*w)
		yv, _ := Float32s(y)
		must(t, d.ScaledResidual(p, a, bias, z, y))
		ref := values(t, y)
		loss := func() float64 {
			must(t, d.ScaledResidual(p, a, bias, z, y))
			return dot64(yv, rv)
		}
		kinked := func() bool { return p.ReLU && signFlipped(yv, ref) }
		fdA, fdB, fdZ := fdGrad(t, a, 1e-2, loss, kinked), fdGrad(t, bias, 1e-2, loss, kinked), fdGrad(t, z, 1e-2, loss, kinked)
		must(t, d.ScaledResidual(p, a, bias, z, y))

		prior := randSlice(r, n*c*h*w)
		da, db, dz := tensor(t, d, nil, shape...), tensor(t, d, nil, c), tensor(t, d, prior, shape...)
		dy := tensor(t, d, rv, shape...)
		gr := backend.ScaledResidualGrads{Y: y, DY: dy, DA: da, DBias: db, DZ: dz}
		must(t, d.ScaledResidualBackward(p, gr))
		assertGrad(t, "da", values(t, da), fdA, 1e-3, 1e-3)
		assertGrad(t, "dbias", values(t, db), fdB, 1e-3, 1e-3)
		assertGrad(t, "dz", values(t, dz), fdZ, 1e-3, 1e-3)
		must(t, d.Upload(dz, prior))
		gr.Accumulate = true
		must(t, d.ScaledResidualBackward(p, gr))
		for j := range fdZ {
			fdZ[j] += float64(prior[j])
		}
		assertGrad(t, "dz accumulated", values(t, dz), fdZ, 1e-3, 1e-3)
	}
}
