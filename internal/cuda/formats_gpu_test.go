//go:build cuda

package cuda

// The batch-norm and pooling kernels in every activation format (backend.Options Precision and Layout):
// against the CPU reference run on the same values rounded to the dtype, with the f32 tolerances widened
// by the roundings to the dtype (tolerance.rounded); the two layouts, the fused and unfused paths and a
// second run giving the same bits; and the launch counters proving that the format's kernels ran.

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// formatDTypes are the activation dtypes; each runs in both layouts.
var formatDTypes = []backend.DType{backend.F32, backend.BF16, backend.F16}

// formatBNCases cover each batch-norm mode at shapes small enough for the kernel emulator: plain, ReLU, an
// identity shortcut, option-A shortcuts (stride 2) with and without ReLU, and a channel of 4608 values,
// which the statistics cut into more than one chunk. NHWC reduces a tile of 8 (f32) or 16 (bf16, f16)
// channels per block: 3, 6, 24 and 40 channels end in a partial tile, 24 and 40 span several tiles, and
// 24 channels of 4800 values do both in two chunks that split at a position not a multiple of the block.
var formatBNCases = []bnCase{
	{n: 2, c: 6, h: 5, w: 3},
	{n: 3, c: 8, h: 4, w: 4, relu: true},
	{n: 2, c: 8, h: 6, w: 6, relu: true, shortcut: identityShortcut},
	{n: 2, c: 8, h: 3, w: 5, relu: true, shortcut: optionAShortcut},
	{n: 3, c: 6, h: 3, w: 3, shortcut: optionAShortcut},
	{n: 2, c: 4, h: 48, w: 48, relu: true, shortcut: identityShortcut},
	{n: 2, c: 3, h: 7, w: 5, relu: true},
	{n: 3, c: 24, h: 3, w: 4, shortcut: optionAShortcut},
	{n: 2, c: 40, h: 5, w: 3, relu: true, shortcut: identityShortcut},
	{n: 2, c: 24, h: 50, w: 48, relu: true},
}

// formatOptions is the device of activations of dt in layout.
func formatOptions(dt backend.DType, layout backend.Layout, unfused bool) backend.Options {
	return backend.Options{Precision: dt, Layout: layout, Unfused: unfused}
}

// Each dtype's four devices (NCHW and NHWC, fused and unfused) match the CPU, launch their format's
// kernels, and agree bit for bit: the layouts share the math and add every channel's values in the same
// order (NHWC reads a sector of channels at a time but keeps each channel's partial sums as NCHW does,
// kernels/batchnorm.cu), and the fused path rounds where the unfused one stores. The NHWC fused run,
// repeated, gives the same bits again.
func TestBatchNormInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	for _, dt := range formatDTypes {
		for i, b := range formatBNCases {
			t.Run(fmt.Sprintf("%v/%v", dt, b), func(t *testing.T) {
				run := func(layout backend.Layout, unfused bool) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, unfused), uint64(1500+i))
					f := newBNTwins(r, b, nil)
					forward, inference, backward := bnPaths(f.p.ReLU, f.p.Residual, dt, layout)
					return f.results(r, &[3]fusedPath{forward, backward, inference})
				}
				base := run(backend.NCHW, false)
				sameOutputs(t, "NCHW fused", base, "NCHW unfused", run(backend.NCHW, true))
				nhwc := run(backend.NHWC, false)
				sameOutputs(t, "NCHW fused", base, "NHWC fused", nhwc)
				sameOutputs(t, "NHWC fused", nhwc, "NHWC unfused", run(backend.NHWC, true))
				sameOutputs(t, "NHWC fused", nhwc, "NHWC fused again", run(backend.NHWC, false))
			})
		}
	}
}

// The sums in a double of values like those above are usually exact, so the layouts' agreement there
// says little about the order of the additions. Here each channel holds small integers and pairs +2^60,
// -2^60 (in one image, for the average pool): an integer added to a partial sum holding 2^60 is lost, one
// added to a sum without is kept, so the means (and with dy alike, dbeta) add the integers that the order
// of the additions kept. NCHW and NHWC, fused and unfused, must still agree bit for bit; the CPU reference, which adds in
// another order, must not, or the values would not test the order. f32 and bf16 only: f16 cannot hold 2^60.
// The shape cuts the channels into two chunks and into tiles with a partial one in bf16 (24 channels).
func TestLayoutsAddInTheSameOrder(t *testing.T) {
	openGPU(t, backend.Options{})
	b := bnCase{n: 2, c: 24, h: 50, w: 48}
	hw, m := b.h*b.w, b.n*b.h*b.w
	rng := seededRand(1700)
	orderSensitive := func() []float32 {
		v := make([]float32, b.c*m)
		for i := range v {
			v[i] = float32(1 + rng.IntN(4))
		}
		for c := 0; c < b.c; c++ {
			for range 6 {
				plane := (rng.IntN(b.n)*b.c + c) * hw
				i, j := 1+rng.IntN(hw-1), 1+rng.IntN(hw-1)
				v[plane+i], v[plane+j] = 1<<60, -(1 << 60) // never the first value, the statistics' shift
			}
		}
		return v
	}
	x, dy := orderSensitive(), orderSensitive()
	for _, dt := range []backend.DType{backend.F32, backend.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			run := func(layout backend.Layout, unfused bool) (gpu, cpu map[string][]float32) {
				r := newRig(t, formatOptions(dt, layout, unfused), 1701)
				f := newBNTwins(r, b, nil)
				r.set(f.x, x)
				r.set(f.dy, dy)
				pooled := r.zeros(b.n, b.c)
				gpu, cpu = map[string][]float32{}, map[string][]float32{}
				for _, s := range []side{onGPU, onCPU} {
					d := r.dev(s)
					mustOK(t, d.BatchNormForwardTraining(f.p, f.tensors(s)))
					mustOK(t, d.BatchNormBackward(f.p, f.grads(s)))
					mustOK(t, d.GlobalAvgPoolForward(f.x.on(s), pooled.on(s)))
					got := map[side]map[string][]float32{onGPU: gpu, onCPU: cpu}[s]
					for name, v := range map[string]twin{"save_mean": f.saveMean, "running_mean": f.rm, "dbeta": f.dbeta,
						"dgamma": f.dgamma, "y": f.y, "dx": f.dx, "avgpool": pooled} {
						got[name] = r.host(s, v)
					}
				}
				return gpu, cpu
			}
			base, cpu := run(backend.NCHW, false)
			for _, name := range []string{"save_mean", "dbeta", "avgpool"} {
				if firstDifference(base[name], cpu[name]) < 0 {
					t.Errorf("%s: the CPU's bits equal the GPU's; the values do not make the order of the sums matter", name)
				}
			}
			unfused, _ := run(backend.NCHW, true)
			sameOutputs(t, "NCHW fused", base, "NCHW unfused", unfused)
			nhwc, _ := run(backend.NHWC, false)
			sameOutputs(t, "NCHW fused", base, "NHWC fused", nhwc)
			nhwcUnfused, _ := run(backend.NHWC, true)
			sameOutputs(t, "NHWC fused", nhwc, "NHWC unfused", nhwcUnfused)
		})
	}
}

// formatPoolCases are max-pool geometries small enough for the emulator: the stem pool on an odd input,
// overlapping windows, and a window wider than its stride with padding. The average pool reads NHWC a
// tile of 8 (f32) or 16 (bf16, f16) channels per warp: 24 and 40 channels span several tiles and end in a
// partial one, and 63 positions fill a warp's 32 slots twice, the second time in part.
var formatPoolCases = []poolCase{{2, 3, 7, 9, 3, 2, 1}, {2, 3, 6, 5, 3, 1, 1}, {3, 5, 4, 7, 4, 3, 2},
	{2, 24, 9, 7, 3, 2, 1}, {3, 40, 4, 4, 2, 2, 0}}

// Pooling in every format. Max pooling selects (exact) and its backward adds a few rounded gradients in
// float as the CPU does (the f32 tolerance of TestMaxPoolMatchesCPU) and rounds the sum once. The average
// pool reads the rounded x and writes f32 as in TestGlobalAvgPoolMatchesCPU; its backward divides f32 dy
// and rounds once. Both layouts give the same bits, and so does a second run.
func TestPoolingInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	for _, dt := range formatDTypes {
		for i, c := range formatPoolCases {
			t.Run(fmt.Sprintf("%v/%v", dt, c), func(t *testing.T) {
				run := func(layout backend.Layout) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, false), uint64(1600+i))
					got := map[string][]float32{}
					g := r.gpu
					mustOK(t, g.Sync())
					g.ResetLaunchCounts()

					p := backend.PoolParams{Kernel: c.k, Stride: c.stride, Pad: c.pad}
					x := r.act(c.n, c.c, c.h, c.w)
					xv := uniformValues(r.rng, c.n*c.c*c.h*c.w, -1, 1)
					for j := range xv {
						xv[j] = float32(int(xv[j]*4)) / 4 // ties, as in TestMaxPoolMatchesCPU
					}
					r.set(x, xv)
					y := r.randomAct(-9, 9, c.n, c.c, c.oh(), c.ow())
					r.run("MaxPoolForward", func(d backend.Device, s side) error { return d.MaxPoolForward(p, x.on(s), y.on(s)) })
					r.expect("max forward y", y, exactTol)
					got["max.y"] = r.host(onGPU, y)

					r.mirror(y)
					dy := r.randomAct(-1, 1, c.n, c.c, c.oh(), c.ow())
					dx := r.randomAct(-9, 9, c.n, c.c, c.h, c.w)
					r.run("MaxPoolBackward", func(d backend.Device, s side) error {
						return d.MaxPoolBackward(p, x.on(s), y.on(s), dy.on(s), dx.on(s))
					})
					r.expect("max backward dx", dx, tolerance{abs: 1e-6, rel: 1e-6}.rounded(dt, 1, 0))
					got["max.dx"] = r.host(onGPU, dx)

					x = r.randomAct(-1, 1, c.n, c.c, c.h, c.w)
					ay, _ := r.random(-9, 9, c.n, c.c)
					r.run("GlobalAvgPoolForward", func(d backend.Device, s side) error { return d.GlobalAvgPoolForward(x.on(s), ay.on(s)) })
					r.expect("avg forward y", ay, tolerance{abs: 1e-6, rel: 1e-5})
					got["avg.y"] = r.host(onGPU, ay)

					ady, _ := r.random(-1, 1, c.n, c.c)
					r.run("GlobalAvgPoolBackward", func(d backend.Device, s side) error { return d.GlobalAvgPoolBackward(ady.on(s), dx.on(s)) })
					r.expect("avg backward dx", dx, tolerance{abs: 1e-8, rel: 1e-6}.rounded(dt, 1, 0))
					got["avg.dx"] = r.host(onGPU, dx)

					counts := launchesSince(t, g)
					for _, k := range []string{"maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward"} {
						if name := k + formatSuffix(dt, layout, true); counts[name] != 1 {
							t.Errorf("kernel %s ran %d times, want 1 (launched: %s)", name, counts[name], formatCounts(counts))
						}
					}
					return got
				}
				nchw := run(backend.NCHW)
				nhwc := run(backend.NHWC)
				sameOutputs(t, "NCHW", nchw, "NHWC", nhwc)
				sameOutputs(t, "NHWC", nhwc, "NHWC again", run(backend.NHWC))
			})
		}
	}
}
