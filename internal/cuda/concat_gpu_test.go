//go:build cuda

package cuda

// The ops of DenseNet and Inception-ResNet — channel concatenation, windowed average pooling and the
// scaled residual sum — in every activation format, fused and unfused, against the CPU reference run on
// the same values rounded to the dtype.

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// Channel copies: a plain copy moves values exactly; an accumulating one rounds one f32 sum to the dtype.
// Offsets put the copied channels inside both tensors, in NHWC away from a sector's start.
func TestCopyChannelsInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct {
		n, srcC, dstC, h, w int
		p                   backend.ChannelCopyParams
	}{
		{2, 5, 12, 3, 4, backend.ChannelCopyParams{SrcOffset: 0, DstOffset: 7, Channels: 5}},
		{2, 20, 9, 2, 3, backend.ChannelCopyParams{SrcOffset: 11, DstOffset: 1, Channels: 8, Accumulate: true}},
		{3, 4, 4, 5, 1, backend.ChannelCopyParams{SrcOffset: 1, DstOffset: 0, Channels: 3, Accumulate: true}},
	}
	for _, dt := range formatDTypes {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%v/%d", dt, i), func(t *testing.T) {
				run := func(layout backend.Layout) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, false), uint64(3100+i))
					mustOK(t, r.gpu.Sync())
					r.gpu.ResetLaunchCounts()
					src := r.randomAct(-2, 2, c.n, c.srcC, c.h, c.w)
					dst := r.randomAct(-2, 2, c.n, c.dstC, c.h, c.w)
					r.run("CopyChannels", func(d backend.Device, s side) error { return d.CopyChannels(c.p, src.on(s), dst.on(s)) })
					tl := exactTol
					if c.p.Accumulate {
						tl = tolerance{}.rounded(dt, 1, 0)
					}
					r.expect("dst", dst, tl)
					if name := "copy_channels" + formatSuffix(dt, layout, true); launchesSince(t, r.gpu)[name] != 1 {
						t.Errorf("kernel %s did not run once (launched: %s)", name, formatCounts(launchesSince(t, r.gpu)))
					}
					return map[string][]float32{"dst": r.host(onGPU, dst)}
				}
				sameOutputs(t, "NCHW", run(backend.NCHW), "NHWC", run(backend.NHWC))
			})
		}
	}
}

// Windowed average pooling: DenseNet's 2x2/2 transition, Inception-ResNet's 3x3/1 pad 1 branch with the
// padding excluded from the divisor (and included, PyTorch's default), a strided padded window, and
// channel counts that end NHWC's sectors part-filled. The GPU adds each window in the CPU's order and
// divides as it does, so f32 results are exact; a 16-bit result rounds them once. The accumulating
// backward adds onto dx as the CPU does.
func TestAvgPoolWindowInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct {
		n, c, h, w int
		p          backend.PoolParams
	}{
		{2, 5, 8, 8, backend.PoolParams{Kernel: 2, Stride: 2}},
		{2, 3, 7, 7, backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true}},
		{1, 4, 5, 6, backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1}},
		{2, 20, 6, 5, backend.PoolParams{Kernel: 3, Stride: 2, Pad: 1, ExcludePad: true}},
	}
	for _, dt := range formatDTypes {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%v/%d", dt, i), func(t *testing.T) {
				oh, ow := backend.OutSize(c.h, c.p.Kernel, c.p.Stride, c.p.Pad), backend.OutSize(c.w, c.p.Kernel, c.p.Stride, c.p.Pad)
				// A gradient divided by 9 can land among f16's subnormals, whose spacing is absolute.
				var sub float64
				if dt == backend.F16 {
					sub = 0x1p-25
				}
				one := tolerance{abs: sub}.rounded(dt, 1, 0)
				run := func(layout backend.Layout) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, false), uint64(3200+i))
					mustOK(t, r.gpu.Sync())
					r.gpu.ResetLaunchCounts()
					x := r.randomAct(-2, 2, c.n, c.c, c.h, c.w)
					y := r.randomAct(-9, 9, c.n, c.c, oh, ow)
					r.run("AvgPoolForward", func(d backend.Device, s side) error { return d.AvgPoolForward(c.p, x.on(s), y.on(s)) })
					r.expect("y", y, one)
					got := map[string][]float32{"y": r.host(onGPU, y)}
					dy := r.randomAct(-1, 1, c.n, c.c, oh, ow)
					dx := r.randomAct(-9, 9, c.n, c.c, c.h, c.w)
					r.run("AvgPoolBackward", func(d backend.Device, s side) error { return d.AvgPoolBackward(c.p, dy.on(s), dx.on(s), false) })
					r.expect("dx", dx, one)
					got["dx"] = r.host(onGPU, dx)
					r.mirror(dx)
					r.run("AvgPoolBackward accumulating", func(d backend.Device, s side) error {
						return d.AvgPoolBackward(c.p, dy.on(s), dx.on(s), true)
					})
					r.expect("dx accumulated", dx, tolerance{abs: sub}.rounded(dt, 2, 9))
					got["dx accumulated"] = r.host(onGPU, dx)
					counts := launchesSince(t, r.gpu)
					for k, want := range map[string]int64{"avgpool_window_forward": 1, "avgpool_window_backward": 2} {
						if name := k + formatSuffix(dt, layout, true); counts[name] != want {
							t.Errorf("kernel %s ran %d times, want %d (launched: %s)", name, counts[name], want, formatCounts(counts))
						}
					}
					return got
				}
				sameOutputs(t, "NCHW", run(backend.NCHW), "NHWC", run(backend.NHWC))
			})
		}
	}
}

// The scaled residual sum of Inception-ResNet and its backward, with and without the ReLU, fused and
// unfused. f32 is exact against the CPU (the same float operations in the same order, none contracted)
// except the bias gradient, a double sum in another order; a 16-bit forward rounds twice (after the scaled
// bias, as the unfused path stores it, and at the end). The four devices of a dtype (two layouts, two
// paths) agree bit for bit, and each ran its own path's kernels.
func TestScaledResidualInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	cases := []struct {
		n, c, h, w int
		p          backend.ScaledResidualParams
	}{
		{2, 6, 5, 3, backend.ScaledResidualParams{Scale: 0.17, ReLU: true}},
		{2, 20, 3, 4, backend.ScaledResidualParams{Scale: 0.1, ReLU: true}},
		{3, 9, 2, 2, backend.ScaledResidualParams{Scale: 1, ReLU: false}},
	}
	for _, dt := range formatDTypes {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%v/%d", dt, i), func(t *testing.T) {
				type path struct {
					layout  backend.Layout
					unfused bool
				}
				run := func(pa path) map[string][]float32 {
					r := newRig(t, formatOptions(dt, pa.layout, pa.unfused), uint64(3300+i))
					mustOK(t, r.gpu.Sync())
					r.gpu.ResetLaunchCounts()
					a := r.randomAct(-2, 2, c.n, c.c, c.h, c.w)
					bias, _ := r.random(-1, 1, c.c)
					z := r.randomAct(-2, 2, c.n, c.c, c.h, c.w)
					y := r.randomAct(-9, 9, c.n, c.c, c.h, c.w)
					r.run("ScaledResidual", func(d backend.Device, s side) error {
						return d.ScaledResidual(c.p, a.on(s), bias.on(s), z.on(s), y.on(s))
					})
					r.expect("y", y, tolerance{}.rounded(dt, 2, 2))
					got := map[string][]float32{"y": r.host(onGPU, y)}
					r.mirror(y)

					dy := r.randomAct(-1, 1, c.n, c.c, c.h, c.w)
					da := r.randomAct(-9, 9, c.n, c.c, c.h, c.w)
					db := r.zeros(c.c)
					dz := r.randomAct(-9, 9, c.n, c.c, c.h, c.w)
					for _, acc := range []bool{false, true} {
						gr := func(s side) backend.ScaledResidualGrads {
							return backend.ScaledResidualGrads{Y: y.on(s), DY: dy.on(s), DA: da.on(s), DBias: db.on(s), DZ: dz.on(s), Accumulate: acc}
						}
						r.run("ScaledResidualBackward", func(d backend.Device, s side) error { return d.ScaledResidualBackward(c.p, gr(s)) })
						sfx := fmt.Sprintf(" (accumulate %v)", acc)
						r.expect("DA"+sfx, da, tolerance{}.rounded(dt, 1, 0))
						r.expect("DBias"+sfx, db, tolerance{abs: 1e-6, rel: 1e-6, rms: true})
						dzTol := exactTol
						if acc {
							dzTol = tolerance{}.rounded(dt, 1, 0)
						}
						r.expect("DZ"+sfx, dz, dzTol)
						got["DA"+sfx], got["DBias"+sfx], got["DZ"+sfx] = r.host(onGPU, da), r.host(onGPU, db), r.host(onGPU, dz)
						r.mirror(dz)
					}
					// DA may be DY itself.
					r.run("ScaledResidualBackward in place", func(d backend.Device, s side) error {
						g := backend.ScaledResidualGrads{Y: y.on(s), DY: dy.on(s), DA: dy.on(s), DBias: db.on(s), DZ: dz.on(s)}
						return d.ScaledResidualBackward(c.p, g)
					})
					r.expect("DA in place", dy, tolerance{}.rounded(dt, 1, 0))

					counts := launchesSince(t, r.gpu)
					want := map[string]int64{"scaled_residual_forward": 1, "scaled_residual_backward": 3, "scaled_residual_bias_grad": 3}
					if pa.unfused {
						want = map[string]int64{"scaled_bias": 4, "residual_add_out": 1, "scaled_residual_bias_grad": 3,
							"scaled_residual_forward": 0, "scaled_residual_backward": 0}
					}
					for k, n := range want {
						if name := k + formatSuffix(dt, pa.layout, true); counts[name] != n {
							t.Errorf("kernel %s ran %d times, want %d (launched: %s)", name, counts[name], n, formatCounts(counts))
						}
					}
					return got
				}
				ref := run(path{backend.NCHW, false})
				sameOutputs(t, "NCHW fused", ref, "NHWC fused", run(path{backend.NHWC, false}))
				sameOutputs(t, "NCHW fused", ref, "NCHW unfused", run(path{backend.NCHW, true}))
				sameOutputs(t, "NCHW fused", ref, "NHWC unfused", run(path{backend.NHWC, true}))
			})
		}
	}
}
