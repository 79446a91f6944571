//go:build cuda

package cuda

// The squeeze-and-excitation ops: the gate in every activation format, fused and unfused, against the CPU
// reference; the excitation (f32 whatever the format) against the CPU.

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// gateCase is a gate over (n, c, h, w). NHWC reduces a tile of 8 (f32) or 16 (16-bit) channels per warp:
// 6 and 40 channels end in a partial tile, 24 and 40 span several; 1x1 planes are the SE module on the
// last stage of an ImageNet net at CIFAR sizes.
type gateCase struct{ n, c, h, w int }

func (g gateCase) String() string { return fmt.Sprintf("%dx%dx%dx%d", g.n, g.c, g.h, g.w) }

var gateCases = []gateCase{{2, 6, 5, 3}, {2, 24, 4, 4}, {3, 40, 3, 5}, {2, 8, 1, 1}, {1, 16, 9, 9}}

// gateTol is the f32 tolerance of the gate's elementwise results: the CPU takes the sigmoid in float64 and
// rounds it once, the GPU in float with expf (within 2 ulp), an addition and a division, so they differ by
// a few ulp of the sigmoid, relative to x*sigmoid(s) (|x| <= 2 here) and so absolute where z cancels it.
var gateTol = tolerance{abs: 2e-6, rel: 1e-6}

// The gate matches the CPU in every format, the layouts and paths give the same bits (the fused kernels
// round where the unfused path stores; the reduction for ds adds each plane in the same slots and tree in
// both layouts), a second run gives them again, and the launch counters show which kernels ran. The GPU
// rounds x*sigmoid(s) to the dtype before adding z (as the unfused path stores it), and dg*sigmoid(s)
// before adding the squeeze's dpool/HW: two roundings, the first bounded by the result plus |z| <= 1 or
// |dpool/HW| <= 1. dg is dy or 0: exact. ds sums the same rounded operands in double on both sides, its
// difference the sigmoid's.
func TestChannelGateInEveryFormat(t *testing.T) {
	openGPU(t, backend.Options{})
	p := backend.ChannelGateParams{ReLU: true, Residual: true}
	for _, dt := range formatDTypes {
		for i, c := range gateCases {
			t.Run(fmt.Sprintf("%v/%v", dt, c), func(t *testing.T) {
				run := func(layout backend.Layout, unfused bool) map[string][]float32 {
					r := newRig(t, formatOptions(dt, layout, unfused), uint64(2100+i))
					g := r.gpu
					mustOK(t, g.Sync())
					g.ResetLaunchCounts()
					got := map[string][]float32{}

					x := r.randomAct(-2, 2, c.n, c.c, c.h, c.w)
					s, _ := r.random(-4, 4, c.n, c.c)
					z := r.randomAct(-1, 1, c.n, c.c, c.h, c.w)
					y := r.act(c.n, c.c, c.h, c.w)
					r.run("ChannelGateForward", func(d backend.Device, sd side) error {
						return d.ChannelGateForward(p, x.on(sd), s.on(sd), z.on(sd), y.on(sd))
					})
					r.expect("forward y", y, gateTol.rounded(dt, 2, 1))
					got["y"] = r.host(onGPU, y)

					r.mirror(y)
					dy := r.randomAct(-1, 1, c.n, c.c, c.h, c.w)
					dg := r.act(c.n, c.c, c.h, c.w)
					ds := r.zeros(c.n, c.c)
					r.run("ChannelGateBackward", func(d backend.Device, sd side) error {
						return d.ChannelGateBackward(p, backend.ChannelGateGrads{X: x.on(sd), S: s.on(sd), Y: y.on(sd),
							DY: dy.on(sd), DG: dg.on(sd), DS: ds.on(sd)})
					})
					r.expect("backward dg", dg, exactTol)
					r.expect("backward ds", ds, tolerance{abs: 1e-6, rel: 1e-5})
					got["dg"], got["ds"] = r.host(onGPU, dg), r.host(onGPU, ds)

					dpool, _ := r.random(-1, 1, c.n, c.c)
					dx := r.act(c.n, c.c, c.h, c.w)
					r.run("ChannelGateBackwardData", func(d backend.Device, sd side) error {
						return d.ChannelGateBackwardData(s.on(sd), dg.on(sd), dpool.on(sd), dx.on(sd))
					})
					r.expect("backward dx", dx, gateTol.rounded(dt, 2, 1))
					got["dx"] = r.host(onGPU, dx)

					counts := launchesSince(t, g)
					want := map[string]int64{"gate_forward": 1, "gate_backward": 1, "gate_backward_data": 1}
					if unfused {
						want = map[string]int64{"gate_scale": 2, "residual_add": 1, "gate_grad_reduce": 1, "gate_pool_add": 1}
					}
					for k, n := range want {
						if name := k + formatSuffix(dt, layout, true); counts[name] != n {
							t.Errorf("kernel %s ran %d times, want %d (launched: %s)", name, counts[name], n, formatCounts(counts))
						}
					}
					if unfused {
						for _, k := range []string{"relu_forward", "relu_backward"} {
							if name := k + formatSuffix(dt, layout, false); counts[name] != 1 {
								t.Errorf("kernel %s ran %d times, want 1 (launched: %s)", name, counts[name], formatCounts(counts))
							}
						}
					}
					return got
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

// The gate without its residual add and ReLU, the squeeze's gradient or a separate dg (in place), on both
// paths.
func TestChannelGateVariantsMatchCPU(t *testing.T) {
	for _, unfused := range []bool{false, true} {
		for _, p := range []backend.ChannelGateParams{{}, {ReLU: true}, {Residual: true}} {
			t.Run(fmt.Sprintf("unfused=%v/relu=%v,residual=%v", unfused, p.ReLU, p.Residual), func(t *testing.T) {
				openGPU(t, backend.Options{Unfused: unfused})
				r := newRig(t, backend.Options{Unfused: unfused}, 2200)
				n, c, h, w := 2, 5, 3, 4
				x := r.randomAct(-2, 2, n, c, h, w)
				s, _ := r.random(-4, 4, n, c)
				z := r.randomAct(-1, 1, n, c, h, w)
				y := r.act(n, c, h, w)
				r.run("ChannelGateForward", func(d backend.Device, sd side) error {
					return d.ChannelGateForward(p, x.on(sd), s.on(sd), z.on(sd), y.on(sd))
				})
				r.expect("forward y", y, gateTol)
				r.mirror(y)
				dy := r.randomAct(-1, 1, n, c, h, w)
				ds := r.zeros(n, c)
				// dg is dy itself, then dx is dg itself.
				r.run("ChannelGateBackward", func(d backend.Device, sd side) error {
					return d.ChannelGateBackward(p, backend.ChannelGateGrads{X: x.on(sd), S: s.on(sd), Y: y.on(sd),
						DY: dy.on(sd), DG: dy.on(sd), DS: ds.on(sd)})
				})
				r.expect("backward dg", dy, exactTol)
				r.expect("backward ds", ds, tolerance{abs: 1e-6, rel: 1e-5})
				r.run("ChannelGateBackwardData", func(d backend.Device, sd side) error {
					return d.ChannelGateBackwardData(s.on(sd), dy.on(sd), backend.Tensor{}, dy.on(sd))
				})
				r.expect("backward dx", dy, gateTol)
			})
		}
	}
}

// The excitation's GEMMs sum in another order than the CPU's (convTol); its bias gradients are column
// sums in double in row order on both sides, and its ReLU mask is exact.
func TestExcitationMatchesCPU(t *testing.T) {
	openGPU(t, backend.Options{})
	r := newRig(t, backend.Options{}, 2300)
	n, c, rd := 3, 24, 8
	p, _ := r.random(-1, 1, n, c)
	w1, _ := r.random(-0.5, 0.5, rd, c)
	b1, _ := r.random(-0.2, 0.2, rd)
	w2, _ := r.random(-0.5, 0.5, c, rd)
	b2, _ := r.random(-0.2, 0.2, c)
	h, s := r.zeros(n, rd), r.zeros(n, c)
	r.run("ExcitationForward", func(d backend.Device, sd side) error {
		return d.ExcitationForward(backend.ExcitationTensors{P: p.on(sd), W1: w1.on(sd), B1: b1.on(sd), W2: w2.on(sd),
			B2: b2.on(sd), H: h.on(sd), S: s.on(sd)})
	})
	r.expect("forward h", h, convTol)
	r.expect("forward s", s, convTol)

	r.mirror(h)
	ds, _ := r.random(-1, 1, n, c)
	dh, dp := r.zeros(n, rd), r.zeros(n, c)
	dw1, db1, dw2, db2 := r.zeros(rd, c), r.zeros(rd), r.zeros(c, rd), r.zeros(c)
	r.run("ExcitationBackward", func(d backend.Device, sd side) error {
		return d.ExcitationBackward(backend.ExcitationGrads{P: p.on(sd), W1: w1.on(sd), W2: w2.on(sd), H: h.on(sd),
			DS: ds.on(sd), DH: dh.on(sd), DP: dp.on(sd), DW1: dw1.on(sd), DB1: db1.on(sd), DW2: dw2.on(sd), DB2: db2.on(sd)})
	})
	r.expect("backward db2", db2, exactTol)
	r.expect("backward dw2", dw2, convTol)
	r.expect("backward dh", dh, convTol)
	r.expect("backward dw1", dw1, convTol)
	r.expect("backward db1", db1, convTol)
	r.expect("backward dp", dp, convTol)
}

// seNetSpec is a small SE net for a whole training step on the emulator: cifar_resnet20 with projection
// shortcuts and an SE module (8 channels wide) closing each of its 9 units.
func seNetSpec(t testing.TB) model.Spec {
	spec, err := model.CIFARSpec(20, true)
	mustOK(t, err)
	spec.Name, spec.Shortcut, spec.SEReduction = "cifar_seresnet20", 'B', 16
	return spec
}

// seResNeXtSpec is a small SE-ResNeXt for the same: the CIFAR ResNeXt's bottlenecks at a quarter of their
// width, stages of 2, 1 and 1 units (so one gate adds an identity shortcut, the others a projection), whose
// 3x3 convolutions run in 4 groups of 4, 8 and 16 channels, each unit closed by an SE module (8, 8 and 16
// channels wide), as seresnext50_32x4d's units are.
func seResNeXtSpec(t testing.TB) model.Spec {
	spec, err := model.CIFARResNeXtSpec(11, 4, 16)
	mustOK(t, err)
	spec.Name, spec.SEReduction = "cifar_seresnext14_4x16d", 16
	spec.Layers, spec.Widths, spec.StemWidth = []int{2, 1, 1}, []int{16, 32, 64}, 16
	mustOK(t, spec.Validate())
	return spec
}

// seStepFormat is one device format of an SE net's training step.
type seStepFormat struct {
	dt      backend.DType
	layout  backend.Layout
	unfused bool
}

// One training step of an SE net matches the CPU's in f32 and bf16, with the tolerances and the reasoning
// of TestNetworkStepInEveryFormat (an SE module adds a few elementwise roundings per unit, well inside
// them); the other layout and the unfused path of each dtype give its first run's bits.
func TestSENetStepInEveryFormat(t *testing.T) {
	checkSEStep(t, seNetSpec(t), []seStepFormat{
		{backend.F32, backend.NCHW, false},
		{backend.F32, backend.NCHW, true},
		{backend.F32, backend.NHWC, false},
		{backend.BF16, backend.NHWC, false},
		{backend.BF16, backend.NHWC, true},
		{backend.BF16, backend.NCHW, false},
	})
}

// One training step of a grouped SE net (seResNeXtSpec) matches the CPU's in f32 NCHW and bf16 NHWC, with
// the same tolerances: grouped convolutions sum fewer products per output than the plain ones those
// bounds were measured on, and the SE modules are the ones above. Measured on the kernel emulator: in f32
// the loss equal to the CPU's and the worst gradient 1.1e-6 relative; in bf16 the loss within 1.2e-4
// relative (0.03u), the worst gradient 7.7 sqrt(u) (0.48, the first unit's bn1 bias gradient) and all
// gradients together 0.77 sqrt(u).
func TestSEResNeXtStepMatchesCPU(t *testing.T) {
	checkSEStep(t, seResNeXtSpec(t), []seStepFormat{
		{backend.F32, backend.NCHW, false},
		{backend.BF16, backend.NHWC, false},
	})
}

// checkSEStep runs one training step of spec (batch 4) in each format and matches it against the CPU's;
// a format after the first of its dtype must give that run's bits instead. Every run must launch the
// gate of its path and format.
func checkSEStep(t *testing.T, spec model.Spec, formats []seStepFormat) {
	t.Helper()
	openGPU(t, backend.Options{})
	const batch, seed = 4, 17
	x, y := randomBatch(spec, batch, 31)
	before, cpuStep, cpuUpdated, gradNames, valueNames, statNames := cpuReferenceStep(t, spec, batch, seed, x, y)
	first := map[backend.DType]netState{}
	for _, f := range formats {
		name := fmt.Sprintf("%v_%v", f.dt, f.layout)
		if f.unfused {
			name += "_unfused"
		}
		t.Run(name, func(t *testing.T) {
			u := unitRoundoff(f.dt)
			fwdRel, gradRel, allRel := 1e-4, 1e-2, 1e-2
			if u > 0 {
				fwdRel, gradRel, allRel = 4*u, 12*math.Sqrt(u), 5*math.Sqrt(u)
			}
			g := openGPU(t, formatOptions(f.dt, f.layout, f.unfused))
			net := buildNet(t, g, spec, batch)
			mustOK(t, net.Init(seed))
			checkTensors(t, "initial parameters", valueNames, downloadNet(t, net, false), before, nil, 0, 0)
			g.ResetLaunchCounts()
			step, updated := trainStepScaled(t, net, x, y, 1)
			checkNetPaths(t, g, f.unfused)
			counts := g.LaunchCounts()
			gate := "gate_forward"
			if f.unfused {
				gate = "gate_scale"
			}
			if name := gate + formatSuffix(f.dt, f.layout, true); counts[name] == 0 {
				t.Errorf("the step launched no %s (launched: %s)", name, formatCounts(counts))
			}
			if prev, ok := first[f.dt]; ok {
				sameStep(t, step, prev, fmt.Sprintf("the %v first run's", f.dt))
				return
			}
			first[f.dt] = step
			ref := cpuStepRef{before, cpuStep, cpuUpdated, gradNames, valueNames, statNames}
			ref.match(t, spec, batch, step, updated, fwdRel, gradRel, allRel)
		})
	}
}
