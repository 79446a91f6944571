//go:build cuda

package cuda

// Micro-benchmarks of every kernel family at ResNet sizes, and whole training steps fused and unfused.
// Memory-bound kernels report effective GB/s (the bytes a straightforward implementation must move, over
// the time) and that as a fraction of the GPU's peak bandwidth; convolutions report TFLOP/s; training
// steps report images/s and the device's peak memory. Every timed region ends with a Sync, so the times
// are of finished work, not of queued launches.

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// Peak DRAM bandwidth of the GPUs the project runs on, bytes/s: H100 SXM5 (HBM3) 3.35e12, H100 PCIe
// (HBM2e) 2.0e12, H100 NVL 3.9e12, H200 (HBM3e) 4.8e12, A100 80GB SXM 2.039e12. defaultPeakBandwidth is
// the H100 SXM's, used when the GPU's name is none of these.
const defaultPeakBandwidth = 3.35e12

// peakBandwidth is the device's peak DRAM bandwidth, from the GPU's name in Describe (the device does not
// report its memory clock and bus width), else the H100 SXM's.
func peakBandwidth(g *Device) (float64, string) {
	name := g.Describe()
	up := strings.ToUpper(name)
	switch {
	case strings.Contains(up, "H200"):
		return 4.8e12, name
	case strings.Contains(up, "H100") && strings.Contains(up, "PCIE"):
		return 2.0e12, name
	case strings.Contains(up, "H100 NVL"):
		return 3.9e12, name
	case strings.Contains(up, "H100"):
		return 3.35e12, name
	case strings.Contains(up, "A100"):
		return 2.039e12, name
	}
	return defaultPeakBandwidth, "unknown GPU " + name + ": assuming H100 SXM"
}

// benchRig allocates benchmark operands on the GPU only; values are random but their content does not
// matter to the timing.
type benchRig struct {
	b    *testing.B
	g    *Device
	held []backend.Tensor
}

func newBenchRig(b *testing.B, opt backend.Options) *benchRig {
	b.Helper()
	r := &benchRig{b: b, g: openGPU(b, opt)}
	b.Cleanup(func() {
		for _, t := range r.held {
			r.g.Free(t)
		}
	})
	return r
}

// tensor allocates shape and fills it with uniform values in [lo, hi) (zeros when lo == hi).
func (r *benchRig) tensor(lo, hi float32, shape ...int) backend.Tensor {
	r.b.Helper()
	t, err := r.g.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
	if err != nil {
		r.b.Fatalf("cuda: Alloc %v: %v", shape, err)
	}
	r.held = append(r.held, t)
	if lo != hi {
		// One block of random values, uploaded as often as the tensor needs: 1M distinct values are as good
		// as 200M for timing, and generating them is the slow part.
		const chunk = 1 << 20
		pattern := uniformValues(seededRand(uint64(len(r.held))), chunk, lo, hi)
		n := t.Numel()
		flat := t
		for off := 0; off < n; off += chunk {
			m := min(chunk, n-off)
			flat.Shape, flat.Off = backend.Shape{m}, t.Off+off
			mustOK(r.b, r.g.Upload(flat, pattern[:m]))
		}
	}
	return t
}

// timeOp runs op once to warm up (algorithm selection, workspace growth), then b.N times, and reports the
// time per op through the benchmark clock; it returns the seconds per op.
func timeOp(b *testing.B, g *Device, op func() error) float64 {
	b.Helper()
	if err := op(); err != nil {
		b.Fatal(err)
	}
	mustOK(b, g.Sync())
	b.ResetTimer()
	for range b.N {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	mustOK(b, g.Sync())
	b.StopTimer()
	return b.Elapsed().Seconds() / float64(b.N)
}

// reportBandwidth reports effective GB/s and the fraction of peak for bytes moved per op.
func reportBandwidth(b *testing.B, g *Device, bytes, secPerOp float64) {
	peak, source := peakBandwidth(g)
	gbps := bytes / secPerOp
	b.ReportMetric(gbps/1e9, "GB/s")
	b.ReportMetric(gbps/peak, "peak-frac")
	peakLogged.Do(func() { b.Logf("peak bandwidth %.2f TB/s (%s)", peak/1e12, source) })
}

var peakLogged sync.Once

const f32Bytes = 4 // bytes per element

// BenchmarkBatchNorm times the three batch-norm passes at the shape of ResNet-50's first stage at batch
// 256 and of a CIFAR stage at batch 128, for plain BN, BN+ReLU and BN+residual+ReLU, fused and unfused.
// Bytes counted, in tensors of x's size: the training forward is a statistics pass reading x and an
// element-wise pass reading x (and z) and writing y; the backward is a reduction reading dy and x (and y for
// the ReLU mask) and an element-wise pass reading them again and writing dx (and dz); inference reads x
// (and z) and writes y.
func BenchmarkBatchNorm(b *testing.B) {
	for _, s := range [][4]int{{256, 256, 56, 56}, {128, 64, 32, 32}} {
		for _, v := range []struct {
			name           string
			relu, residual bool
		}{{"bn", false, false}, {"bn_relu", true, false}, {"bn_add_relu", true, true}} {
			for _, m := range gpuModes {
				b.Run(fmt.Sprintf("N%d_C%d_%dx%d/%s/%s", s[0], s[1], s[2], s[3], v.name, m.name), func(b *testing.B) {
					benchBatchNorm(b, m.opt, s, v.relu, v.residual)
				})
			}
		}
	}
}

func benchBatchNorm(b *testing.B, opt backend.Options, s [4]int, relu, residual bool) {
	r := newBenchRig(b, opt)
	n, c, h, w := s[0], s[1], s[2], s[3]
	vec := func(lo, hi float32) backend.Tensor { return r.tensor(lo, hi, c) }
	p := backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: relu, Residual: residual}
	t := backend.BatchNormTensors{
		X: r.tensor(-1, 3, n, c, h, w), Y: r.tensor(0, 0, n, c, h, w),
		Gamma: vec(0.5, 1.5), Beta: vec(-1, 1), RunningMean: vec(0, 0), RunningVar: vec(1, 2),
		SaveMean: vec(0, 0), SaveInvStd: vec(0, 0),
	}
	var z, dz backend.Tensor
	if residual {
		z, dz = r.tensor(-1, 1, n, c, h, w), r.tensor(0, 0, n, c, h, w)
		t.Z = z
	}
	mustOK(b, r.g.BatchNormForwardTraining(p, t)) // saved statistics for the backward
	g := backend.BatchNormGrads{
		X: t.X, Y: t.Y, DY: r.tensor(-1, 1, n, c, h, w), Gamma: t.Gamma,
		SaveMean: t.SaveMean, SaveInvStd: t.SaveInvStd,
		DX: r.tensor(0, 0, n, c, h, w), DZ: dz, DGamma: vec(0, 0), DBeta: vec(0, 0),
	}
	size := float64(f32Bytes * n * c * h * w)
	extra := func(cond bool) float64 {
		if cond {
			return 1
		}
		return 0
	}
	b.Run("forward-training", func(b *testing.B) {
		sec := timeOp(b, r.g, func() error { return r.g.BatchNormForwardTraining(p, t) })
		reportBandwidth(b, r.g, size*(3+extra(residual)), sec)
	})
	b.Run("backward", func(b *testing.B) {
		sec := timeOp(b, r.g, func() error { return r.g.BatchNormBackward(p, g) })
		reportBandwidth(b, r.g, size*(2+3+2*extra(relu)+extra(residual)), sec)
	})
	b.Run("forward-inference", func(b *testing.B) {
		sec := timeOp(b, r.g, func() error { return r.g.BatchNormForwardInference(p, t) })
		reportBandwidth(b, r.g, size*(2+extra(residual)), sec)
	})
}

// BenchmarkMaxPool times the ResNet stem pool (3x3/2, padding 1) at batch 64 and 256. Bytes: the forward
// reads x and writes y; the backward (which finds each window's maximum again instead of storing it) reads
// x and dy and writes dx.
func BenchmarkMaxPool(b *testing.B) {
	for _, n := range []int{64, 256} {
		b.Run(fmt.Sprintf("N%d_C64_112x112_k3s2p1", n), func(b *testing.B) {
			r := newBenchRig(b, backend.Options{})
			p := backend.PoolParams{Kernel: 3, Stride: 2, Pad: 1}
			x, y := r.tensor(-1, 1, n, 64, 112, 112), r.tensor(0, 0, n, 64, 56, 56)
			dy, dx := r.tensor(-1, 1, n, 64, 56, 56), r.tensor(0, 0, n, 64, 112, 112)
			mustOK(b, r.g.MaxPoolForward(p, x, y))
			xs, ys := float64(f32Bytes*x.Numel()), float64(f32Bytes*y.Numel())
			b.Run("forward", func(b *testing.B) {
				sec := timeOp(b, r.g, func() error { return r.g.MaxPoolForward(p, x, y) })
				reportBandwidth(b, r.g, xs+ys, sec)
			})
			b.Run("backward", func(b *testing.B) {
				sec := timeOp(b, r.g, func() error { return r.g.MaxPoolBackward(p, x, y, dy, dx) })
				reportBandwidth(b, r.g, 2*xs+ys, sec)
			})
		})
	}
}

// BenchmarkGlobalAvgPool times the head pool of ResNet-50 (2048x7x7) and of a CIFAR net (64x8x8). Bytes:
// x read and y written; dy read and dx written.
func BenchmarkGlobalAvgPool(b *testing.B) {
	for _, s := range [][4]int{{256, 2048, 7, 7}, {128, 64, 8, 8}} {
		b.Run(fmt.Sprintf("N%d_C%d_%dx%d", s[0], s[1], s[2], s[3]), func(b *testing.B) {
			r := newBenchRig(b, backend.Options{})
			x, y := r.tensor(-1, 1, s[0], s[1], s[2], s[3]), r.tensor(0, 0, s[0], s[1])
			dy, dx := r.tensor(-1, 1, s[0], s[1]), r.tensor(0, 0, s[0], s[1], s[2], s[3])
			bytes := float64(f32Bytes * (x.Numel() + y.Numel()))
			b.Run("forward", func(b *testing.B) {
				reportBandwidth(b, r.g, bytes, timeOp(b, r.g, func() error { return r.g.GlobalAvgPoolForward(x, y) }))
			})
			b.Run("backward", func(b *testing.B) {
				reportBandwidth(b, r.g, bytes, timeOp(b, r.g, func() error { return r.g.GlobalAvgPoolBackward(dy, dx) }))
			})
		})
	}
}

// BenchmarkSoftmaxCrossEntropy times the loss and its gradient for ImageNet (1000 classes) and CIFAR
// batches. Bytes: logits and labels read, loss and dlogits written. At these sizes launch latency
// dominates; the GB/s says how far from bandwidth-bound the op is.
func BenchmarkSoftmaxCrossEntropy(b *testing.B) {
	for _, s := range [][2]int{{256, 1000}, {4096, 1000}, {128, 10}} {
		b.Run(fmt.Sprintf("N%d_K%d", s[0], s[1]), func(b *testing.B) {
			r := newBenchRig(b, backend.Options{})
			n, k := s[0], s[1]
			logits, loss, dl := r.tensor(-5, 5, n, k), r.tensor(0, 0, n), r.tensor(0, 0, n, k)
			lab, err := r.g.Alloc(backend.Shape{n}, backend.I32, backend.NCHW)
			mustOK(b, err)
			r.held = append(r.held, lab)
			labels := make([]int32, n)
			for i := range labels {
				labels[i] = int32(i % k)
			}
			mustOK(b, r.g.UploadInt32(lab, labels))
			sec := timeOp(b, r.g, func() error { return r.g.SoftmaxCrossEntropy(logits, lab, loss, dl, 1/float32(n)) })
			reportBandwidth(b, r.g, float64(f32Bytes*(2*n*k+2*n)), sec)
		})
	}
}

// BenchmarkSGDStep updates ResNet-50's 25.5M parameters, slot by slot as the model lays them out (161
// tensors, views into one allocation), with momentum, with and without Nesterov. Bytes: parameter,
// gradient and momentum read, parameter and momentum written.
func BenchmarkSGDStep(b *testing.B) {
	spec, err := model.Lookup("resnet50")
	mustOK(b, err)
	for _, nesterov := range []bool{false, true} {
		b.Run(fmt.Sprintf("resnet50/nesterov=%v", nesterov), func(b *testing.B) {
			g := openGPU(b, backend.Options{})
			net, err := model.Build(g, spec, 1)
			mustOK(b, err)
			defer net.Free()
			mustOK(b, net.Init(1))
			slots := net.SGDSlots(1e-4, true)
			params := 0
			for _, s := range slots {
				params += s.Param.Numel()
			}
			p := backend.SGDParams{LR: 1e-6, Momentum: 0.9, Nesterov: nesterov}
			sec := timeOp(b, g, func() error { return g.SGDStep(p, slots) })
			reportBandwidth(b, g, float64(5*f32Bytes*params), sec)
			b.ReportMetric(float64(len(slots)), "tensors")
		})
	}
}

// BenchmarkConv times forward, backward-data and backward-filter of ResNet-50's convolutions at batch 64
// and reports TFLOP/s (2*MACs per pass).
func BenchmarkConv(b *testing.B) {
	const n = 64
	for _, s := range []struct {
		name string
		c    convCase
	}{
		{"stem_7x7s2_3to64", convCase{n, 3, 224, 224, 64, 7, 2, 3}},
		{"layer1_1x1_64to64", convCase{n, 64, 56, 56, 64, 1, 1, 0}},
		{"layer1_3x3_64", convCase{n, 64, 56, 56, 64, 3, 1, 1}},
		{"layer1_1x1_64to256", convCase{n, 64, 56, 56, 256, 1, 1, 0}},
		{"layer2_3x3s2_128", convCase{n, 128, 56, 56, 128, 3, 2, 1}},
		{"layer2_3x3_128", convCase{n, 128, 28, 28, 128, 3, 1, 1}},
		{"layer3_3x3_256", convCase{n, 256, 14, 14, 256, 3, 1, 1}},
		{"layer3_1x1_1024to256", convCase{n, 1024, 14, 14, 256, 1, 1, 0}},
		{"layer4_3x3_512", convCase{n, 512, 7, 7, 512, 3, 1, 1}},
		{"layer4_downsample_1x1s2_1024to2048", convCase{n, 1024, 14, 14, 2048, 1, 2, 0}},
	} {
		b.Run(s.name, func(b *testing.B) {
			c := s.c
			r := newBenchRig(b, backend.Options{})
			p := backend.ConvParams{Stride: c.stride, Pad: c.pad}
			ws := float32(1 / math.Sqrt(float64(c.cin*c.k*c.k)))
			x, w := r.tensor(-1, 1, c.n, c.cin, c.h, c.w), r.tensor(-ws, ws, c.cout, c.cin, c.k, c.k)
			y, dy := r.tensor(0, 0, c.n, c.cout, c.oh(), c.ow()), r.tensor(-1, 1, c.n, c.cout, c.oh(), c.ow())
			dx, dw := r.tensor(0, 0, c.n, c.cin, c.h, c.w), r.tensor(0, 0, c.cout, c.cin, c.k, c.k)
			for _, pass := range []struct {
				name string
				op   func() error
			}{
				{"forward", func() error { return r.g.ConvForward(p, x, w, y) }},
				{"backward-data", func() error { return r.g.ConvBackwardData(p, dy, w, dx, false) }},
				{"backward-filter", func() error { return r.g.ConvBackwardFilter(p, x, dy, dw) }},
			} {
				b.Run(pass.name, func(b *testing.B) {
					sec := timeOp(b, r.g, pass.op)
					b.ReportMetric(c.flops()/sec/1e12, "TFLOP/s")
				})
			}
		})
	}
}

// BenchmarkTrainStep times whole training steps (forward, loss, backward, SGD update) of ResNet-50 at
// batch 64 and cifar_resnet56 at batch 128, fused and unfused, from a pinned host batch, and reports
// images/s and the device's peak memory.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		model string
		batch int
	}{{"resnet50", 64}, {"cifar_resnet56", 128}} {
		for _, m := range gpuModes {
			b.Run(c.model+"/"+m.name, func(b *testing.B) {
				g := openGPU(b, m.opt)
				spec, err := model.Lookup(c.model)
				mustOK(b, err)
				net, err := model.Build(g, spec, c.batch)
				mustOK(b, err)
				defer net.Free()
				mustOK(b, net.Init(1))
				x := g.PinnedFloat32s(c.batch * spec.InChannels * spec.InputSize * spec.InputSize)
				if len(x) == 0 {
					b.Fatalf("PinnedFloat32s returned no buffer")
				}
				rng := seededRand(2)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				y := make([]int32, c.batch)
				for i := range y {
					y[i] = int32(rng.IntN(spec.NumClasses))
				}
				slots := net.SGDSlots(1e-4, true)
				step := func() error {
					if _, err := net.TrainStep(x, y); err != nil {
						return err
					}
					return g.SGDStep(backend.SGDParams{LR: 1e-4, Momentum: 0.9}, slots)
				}
				for range 2 { // warm-up: algorithm choice, allocator cache
					mustOK(b, step())
				}
				mustOK(b, g.Sync())
				g.ResetPeakBytes() // the device is shared with earlier benchmarks
				sec := timeOp(b, g, step)
				b.ReportMetric(float64(c.batch)/sec, "images/s")
				b.ReportMetric(float64(g.PeakBytes()), "peak-bytes")
			})
		}
	}
}
