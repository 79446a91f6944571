package cpu

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
)

// BenchmarkSgemm reports GFLOP/s of the multi-threaded GEMM (C = A*B, all row-major) at a few sizes,
// including the shapes of CIFAR ResNet convolutions as GEMMs.
func BenchmarkSgemm(b *testing.B) {
	for _, sz := range [][3]int{{256, 256, 256}, {1024, 576, 128}, {64, 1024, 576}, {512, 512, 512}} {
		m, n, k := sz[0], sz[1], sz[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			r := newRand(1)
			x, y, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
			d := New()
			defer d.Close()
			for b.Loop() {
				d.sgemmParallel(false, false, m, n, k, 1, x, k, y, n, 0, c, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmSingleThread is the GEMM on one goroutine, i.e. the micro-kernel's throughput.
func BenchmarkSgemmSingleThread(b *testing.B) {
	for _, sz := range [][3]int{{256, 256, 256}, {1024, 576, 128}} {
		m, n, k := sz[0], sz[1], sz[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			r := newRand(1)
			x, y, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
			ws := &gemmScratch{}
			for b.Loop() {
				sgemm(ws, false, false, m, n, k, 1, x, k, y, n, 0, c, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkConv runs forward, backward-data and backward-filter of the 3x3 convolutions of a CIFAR
// ResNet-20 at batch 128 and reports GFLOP/s (2*N*Cout*Cin*9*OH*OW per pass).
func BenchmarkConv(b *testing.B) {
	for _, s := range []struct{ c, hw int }{{16, 32}, {32, 16}, {64, 8}} {
		const n = 128
		d := New()
		r := newRand(1)
		p := backend.ConvParams{Stride: 1, Pad: 1}
		x := tensor(b, d, randSlice(r, n*s.c*s.hw*s.hw), n, s.c, s.hw, s.hw)
		w := tensor(b, d, randSlice(r, s.c*s.c*9), s.c, s.c, 3, 3)
		y := tensor(b, d, nil, n, s.c, s.hw, s.hw)
		dy := tensor(b, d, randSlice(r, n*s.c*s.hw*s.hw), n, s.c, s.hw, s.hw)
		dx := tensor(b, d, nil, n, s.c, s.hw, s.hw)
		dw := tensor(b, d, nil, s.c, s.c, 3, 3)
		flops := 2 * float64(n*s.c*s.c*9*s.hw*s.hw)
		benchConvPasses(b, fmt.Sprintf("%dch%dx%d", s.c, s.hw, s.hw), d, p, flops, x, w, y, dy, dx, dw)
		d.Close()
	}
}

// benchConvPasses runs the three passes of one convolution as sub-benchmarks reporting GFLOP/s.
func benchConvPasses(b *testing.B, name string, d *Device, p backend.ConvParams, flops float64, x, w, y, dy, dx, dw backend.Tensor) {
	run := func(pass string, f func() error) {
		b.Run(name+"/"+pass, func(b *testing.B) {
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
	run("forward", func() error { return d.ConvForward(p, x, w, y) })
	run("backward-data", func() error { return d.ConvBackwardData(p, dy, w, dx, false) })
	run("backward-filter", func() error { return d.ConvBackwardFilter(p, x, dy, dw) })
}

// BenchmarkGroupedConv runs the three passes of ResNeXt-50's grouped 3x3 convolutions (32 groups, stages
// 1 and 3 at 224x224: 4 and 16 channels per group) at batch 16 next to an ungrouped 3x3 convolution of the
// same MACs and spatial size (Cin x Cout = Cin/32 x Cout), and reports GFLOP/s. The grouped one moves 8 to
// 32 times more activation data per MAC, so a lower rate is expected; scripts/bench-grouped-conv.sh sets it
// beside PyTorch's.
func BenchmarkGroupedConv(b *testing.B) {
	for _, s := range []struct {
		name                  string
		cin, cout, hw, groups int
	}{
		{"grouped128g32_56x56", 128, 128, 56, 32},
		{"ungrouped16to32_56x56", 16, 32, 56, 1},
		{"grouped512g32_14x14", 512, 512, 14, 32},
		{"ungrouped64to128_14x14", 64, 128, 14, 1},
	} {
		const n = 16
		d := New()
		r := newRand(1)
		p := backend.ConvParams{Stride: 1, Pad: 1, Groups: s.groups}
		wcin := s.cin / s.groups
		x := tensor(b, d, randSlice(r, n*s.cin*s.hw*s.hw), n, s.cin, s.hw, s.hw)
		w := tensor(b, d, randSlice(r, s.cout*wcin*9), s.cout, wcin, 3, 3)
		y := tensor(b, d, nil, n, s.cout, s.hw, s.hw)
		dy := tensor(b, d, randSlice(r, n*s.cout*s.hw*s.hw), n, s.cout, s.hw, s.hw)
		dx := tensor(b, d, nil, n, s.cin, s.hw, s.hw)
		dw := tensor(b, d, nil, s.cout, wcin, 3, 3)
		benchConvPasses(b, s.name, d, p, 2*float64(n*s.cout*wcin*9*s.hw*s.hw), x, w, y, dy, dx, dw)
		d.Close()
	}
}

// BenchmarkBatchNorm runs the fused BN+residual+ReLU training forward and its backward at the first
// CIFAR ResNet stage (128, 16, 32, 32) and reports GB/s of activation traffic (x, z, y read or written
// once per pass: 3 tensors forward, 5 backward).
func BenchmarkBatchNorm(b *testing.B) {
	const n, c, hw = 128, 16, 32
	d := New()
	defer d.Close()
	r := newRand(1)
	shape := []int{n, c, hw, hw}
	vec := func() backend.Tensor { return tensor(b, d, randSlice(r, c), c) }
	p := backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: true, Residual: true}
	t := backend.BatchNormTensors{X: tensor(b, d, randSlice(r, n*c*hw*hw), shape...), Y: tensor(b, d, nil, shape...),
		Z: tensor(b, d, randSlice(r, n*c*hw*hw), shape...), Gamma: vec(), Beta: vec(), RunningMean: vec(),
		RunningVar: vec(), SaveMean: vec(), SaveInvStd: vec()}
	g := backend.BatchNormGrads{X: t.X, Y: t.Y, DY: tensor(b, d, randSlice(r, n*c*hw*hw), shape...), Gamma: t.Gamma,
		SaveMean: t.SaveMean, SaveInvStd: t.SaveInvStd, DX: tensor(b, d, nil, shape...), DZ: tensor(b, d, nil, shape...),
		DGamma: vec(), DBeta: vec()}
	bytes := float64(4 * n * c * hw * hw)
	b.Run("forward-training", func(b *testing.B) {
		for b.Loop() {
			if err := d.BatchNormForwardTraining(p, t); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(3*bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			if err := d.BatchNormBackward(p, g); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(5*bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

// BenchmarkGemmTiles compares every kernel this CPU can run (the ones in use and the candidate tiles) at
// several kc, single-threaded, on per-image GEMM shapes of the CIFAR and ImageNet ResNets: forward
// (Cout, P, K), backward data (K, P, Cout, A transposed) and backward filter (Cout, K, P, B transposed).
func BenchmarkGemmTiles(b *testing.B) {
	type shape struct {
		m, n, k        int
		transA, transB bool
	}
	shapes := []shape{
		{16, 1024, 144, false, false}, {64, 64, 576, false, false}, {144, 1024, 16, true, false},
		{576, 64, 64, true, false}, {32, 288, 256, false, true}, {128, 784, 1152, false, false},
		{256, 3136, 64, false, false},
	}
	var kernels []gemmKernel
	for _, kc := range []int{128, 256, 384} {
		kernels = append(kernels, candidateKernels(kc)...)
	}
	kernels = append(kernels, gemmKernelGo)
	for _, s := range shapes {
		r := newRand(1)
		x, y, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		for i := range kernels {
			kern := &kernels[i]
			name := fmt.Sprintf("%dx%dx%d-tA=%v-tB=%v/%s-kc%d", s.m, s.n, s.k, s.transA, s.transB, kern.name, kern.kc)
			b.Run(name, func(b *testing.B) {
				ws := &gemmScratch{kern: kern}
				for b.Loop() {
					sgemm(ws, s.transA, s.transB, s.m, s.n, s.k, 1, x, lda, y, ldb, 0, c, s.n)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConcatPoolResidual times the ops of DenseNet and Inception-ResNet at the sizes those nets run
// them (batch 16), reporting memory bandwidth (bytes read and written per second): channel copies into a
// dense block's concatenation, a transition's 2x2/2 average pool, Inception's 3x3/1 pool without padding
// in the divisor, and the scaled residual sum of a Block35 unit with its backward.
func BenchmarkConcatPoolResidual(b *testing.B) {
	d := New()
	defer d.Close()
	r := newRand(5)
	act := func(shape ...int) backend.Tensor {
		t, err := d.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
		if err != nil {
			b.Fatal(err)
		}
		v, _ := Float32s(t)
		copy(v, randSlice(r, len(v)))
		return t
	}
	gbps := func(b *testing.B, bytes int) {
		b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	}
	const n = 16
	b.Run("copy_channels_32_into_256_56x56", func(b *testing.B) {
		src, dst := act(n, 32, 56, 56), act(n, 256, 56, 56)
		p := backend.ChannelCopyParams{DstOffset: 224, Channels: 32}
		for b.Loop() {
			if err := d.CopyChannels(p, src, dst); err != nil {
				b.Fatal(err)
			}
		}
		gbps(b, 2*4*src.Numel())
	})
	for _, c := range []struct {
		name    string
		c, h, w int
		p       backend.PoolParams
	}{
		{"avgpool_2x2s2_128_56x56", 128, 56, 56, backend.PoolParams{Kernel: 2, Stride: 2}},
		{"avgpool_3x3s1_exclude_pad_192_35x35", 192, 35, 35, backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			oh, ow := backend.OutSize(c.h, c.p.Kernel, c.p.Stride, c.p.Pad), backend.OutSize(c.w, c.p.Kernel, c.p.Stride, c.p.Pad)
			x, y := act(n, c.c, c.h, c.w), act(n, c.c, oh, ow)
			for b.Loop() {
				if err := d.AvgPoolForward(c.p, x, y); err != nil {
					b.Fatal(err)
				}
				if err := d.AvgPoolBackward(c.p, y, x, false); err != nil {
					b.Fatal(err)
				}
			}
			gbps(b, 2*4*(x.Numel()+y.Numel()))
		})
	}
	b.Run("scaled_residual_320_35x35", func(b *testing.B) {
		a, z, y, dy, da, dz := act(n, 320, 35, 35), act(n, 320, 35, 35), act(n, 320, 35, 35), act(n, 320, 35, 35), act(n, 320, 35, 35), act(n, 320, 35, 35)
		bias, db := act(320), act(320)
		p := backend.ScaledResidualParams{Scale: 0.17, ReLU: true}
		for b.Loop() {
			if err := d.ScaledResidual(p, a, bias, z, y); err != nil {
				b.Fatal(err)
			}
			if err := d.ScaledResidualBackward(p, backend.ScaledResidualGrads{Y: y, DY: dy, DA: da, DBias: db, DZ: dz, Accumulate: true}); err != nil {
				b.Fatal(err)
			}
		}
		gbps(b, 4*a.Numel()*(3+5))
	})
}

// BenchmarkConvFilter runs the weight gradient of ResNet-50's stride-1 3x3 convolutions at batch 16, with
// the in-place kernels (conv_filter.go) where they take the shape and with the GEMM path, and reports
// GFLOP/s: the measurements behind filterTileMax.
func BenchmarkConvFilter(b *testing.B) {
	for _, s := range []struct{ c, hw int }{{64, 56}, {128, 28}, {256, 14}, {512, 7}} {
		const n = 16
		d := New()
		r := newRand(1)
		p := backend.ConvParams{Stride: 1, Pad: 1}
		x := tensor(b, d, randSlice(r, n*s.c*s.hw*s.hw), n, s.c, s.hw, s.hw)
		dy := tensor(b, d, randSlice(r, n*s.c*s.hw*s.hw), n, s.c, s.hw, s.hw)
		dw := tensor(b, d, nil, s.c, s.c, 3, 3)
		flops := 2 * float64(n*s.c*s.c*9*s.hw*s.hw)
		for _, path := range []string{"gemm", "inplace"} {
			b.Run(fmt.Sprintf("%dch%dx%d/%s", s.c, s.hw, s.hw, path), func(b *testing.B) {
				saved, savedMax := filterKernels, filterTileMax
				defer func() { filterKernels, filterTileMax = saved, savedMax }()
				if path == "gemm" {
					filterKernels = nil
				} else {
					filterTileMax = math.MaxInt
				}
				for b.Loop() {
					if err := d.ConvBackwardFilter(p, x, dy, dw); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		d.Close()
	}
}
