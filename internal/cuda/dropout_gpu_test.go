//go:build cuda

package cuda

// Dropout in every activation format against the CPU reference run on the same values rounded to the dtype.

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// DropoutForward and DropoutBackward in every format, in place too: the kept product x * 1/(1-p) is one
// f32 multiplication of the same operands on both sides, exact in f32 and rounded once to a 16-bit dtype
// (one rounding). The mask is the CPU's bit for bit: the GPU output is 0 exactly where the CPU's is (no
// input is 0). NCHW and NHWC give the same bits, and the format's kernel is the one that ran.
func TestDropoutInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	shapes := [][4]int{{2, 6, 5, 3}, {3, 5, 7, 7}, {1, 16, 4, 4}}
	for _, dt := range formatDTypes {
		for i, c := range shapes {
			t.Run(fmt.Sprintf("%v/%v", dt, c), func(t *testing.T) {
				p := backend.DropoutParams{P: 0.3, Seed: 5, Step: int64(100 + i), Layer: i}
				run := func(layout backend.Layout) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, false), uint64(2700+i))
					g := r.gpu
					mustOK(t, g.Sync())
					g.ResetLaunchCounts()
					got := map[string][]float32{}
					one := tolerance{}.rounded(dt, 1, 0)
					sameZeros := func(what string, x twin) {
						gv, cv := r.host(onGPU, x), r.host(onCPU, x)
						for k := range gv {
							if (gv[k] == 0) != (cv[k] == 0) {
								t.Fatalf("%s: element %d is %g on the GPU and %g on the CPU: the masks differ", what, k, gv[k], cv[k])
							}
						}
					}

					x := r.randomAct(0.25, 2, c[0], c[1], c[2], c[3])
					y := r.randomAct(-9, 9, c[0], c[1], c[2], c[3])
					r.run("DropoutForward", func(d backend.Device, s side) error { return d.DropoutForward(p, x.on(s), y.on(s)) })
					r.expect("y", y, one)
					sameZeros("y", y)
					got["y"] = r.host(onGPU, y)

					dy := r.randomAct(0.25, 1, c[0], c[1], c[2], c[3])
					dx := r.randomAct(-9, 9, c[0], c[1], c[2], c[3])
					r.run("DropoutBackward", func(d backend.Device, s side) error { return d.DropoutBackward(p, dy.on(s), dx.on(s)) })
					r.expect("dx", dx, one)
					sameZeros("dx", dx)
					got["dx"] = r.host(onGPU, dx)
					r.run("DropoutBackward in place", func(d backend.Device, s side) error { return d.DropoutBackward(p, dy.on(s), dy.on(s)) })
					r.expect("dx in place", dy, one)

					counts := launchesSince(t, g)
					if name := "dropout_apply" + formatSuffix(dt, layout, true); counts[name] != 3 {
						t.Errorf("kernel %s ran %d times, want 3 (launched: %s)", name, counts[name], formatCounts(counts))
					}
					return got
				}
				sameOutputs(t, "NCHW", run(backend.NCHW), "NHWC", run(backend.NHWC))
			})
		}
	}
}
