//go:build cuda

package cuda

// The residual add of pre-activation units in every activation format, against the CPU reference run on
// the same values rounded to the dtype.

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// residualShape is an add over an (n, c, h, w) output with a shortcut input of (n, cz, h*s, w*s): the
// identity (cz = c, s = 1) or option A. NHWC walks channels innermost, so odd channel counts and
// zero-padded channels at both ends are where its indexing could go wrong.
type residualShape struct{ n, c, h, w, cz, s int }

func (r residualShape) String() string {
	return fmt.Sprintf("%dx%dx%dx%d<-%dx%dx%d", r.n, r.c, r.h, r.w, r.cz, r.h*r.s, r.w*r.s)
}

var residualShapes = []residualShape{
	{2, 6, 5, 3, 6, 1},
	{2, 8, 3, 5, 4, 2},
	{3, 6, 2, 3, 2, 3},
	{2, 24, 4, 4, 12, 2},
	{1, 5, 7, 7, 5, 1},
}

// ResidualAdd and its backward in every format. f32 sums are exact (one f32 addition of the same operands
// on both sides); a 16-bit result rounds that sum once, hence the tolerance of one rounding. The written
// shortcut gradient copies rounded values, exactly. NCHW and NHWC give the same bits, and the format's
// kernels are the ones that ran.
func TestResidualAddInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	for _, dt := range formatDTypes {
		for i, c := range residualShapes {
			t.Run(fmt.Sprintf("%v/%v", dt, c), func(t *testing.T) {
				run := func(layout backend.Layout) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, false), uint64(2100+i))
					g := r.gpu
					mustOK(t, g.Sync())
					g.ResetLaunchCounts()
					got := map[string][]float32{}
					one := tolerance{}.rounded(dt, 1, 0)

					a := r.randomAct(-2, 2, c.n, c.c, c.h, c.w)
					z := r.randomAct(-2, 2, c.n, c.cz, c.h*c.s, c.w*c.s)
					y := r.randomAct(-9, 9, c.n, c.c, c.h, c.w)
					r.run("ResidualAdd", func(d backend.Device, s side) error { return d.ResidualAdd(a.on(s), z.on(s), y.on(s)) })
					r.expect("y", y, one)
					got["y"] = r.host(onGPU, y)
					r.run("ResidualAdd in place", func(d backend.Device, s side) error { return d.ResidualAdd(a.on(s), z.on(s), a.on(s)) })
					r.expect("y in place", a, one)

					dy := r.randomAct(-1, 1, c.n, c.c, c.h, c.w)
					dz := r.randomAct(-9, 9, c.n, c.cz, c.h*c.s, c.w*c.s)
					r.run("ResidualAddBackward", func(d backend.Device, s side) error { return d.ResidualAddBackward(dy.on(s), dz.on(s), false) })
					r.expect("dz", dz, exactTol)
					got["dz"] = r.host(onGPU, dz)
					r.mirror(dz)
					r.run("ResidualAddBackward accumulating", func(d backend.Device, s side) error {
						return d.ResidualAddBackward(dy.on(s), dz.on(s), true)
					})
					r.expect("dz accumulated", dz, one)
					got["dz accumulated"] = r.host(onGPU, dz)

					counts := launchesSince(t, g)
					for _, k := range []string{"residual_add_out", "residual_backward", "residual_backward_accumulate"} {
						want := int64(1)
						if k == "residual_add_out" {
							want = 2
						}
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
