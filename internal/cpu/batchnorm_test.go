package cpu

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
)

var bnCases = []bnCase{
	{n: 3, c: 5, h: 7, w: 3},
	{n: 2, c: 3, h: 5, w: 6, relu: true},
	{n: 9, c: 2, h: 3, w: 3, relu: true, cz: 2, hz: 3, wz: 3},  // identity shortcut, more images than chunks
	{n: 2, c: 6, h: 3, w: 4, relu: true, cz: 2, hz: 6, wz: 8},  // option A: 2 channels of zero padding each side, stride 2
	{n: 3, c: 4, h: 2, w: 3, relu: false, cz: 4, hz: 6, wz: 9}, // stride 3, no channel padding
	{n: 1, c: 16, h: 4, w: 4, relu: true, cz: 8, hz: 8, wz: 8}, // the CIFAR stage transition 8 -> 16
}

func (b bnCase) String() string {
	return fmt.Sprintf("N%d_C%d_%dx%d_relu%v_z%dx%dx%d", b.n, b.c, b.h, b.w, b.relu, b.cz, b.hz, b.wz)
}

// bnFixture allocates the operands of one batch-norm case with random contents.
type bnFixture struct {
	t  backend.BatchNormTensors
	g  backend.BatchNormGrads
	p  backend.BatchNormParams
	xv []float32
	zv []float32
	// Initial running statistics.
	rm, rv []float32
}

func newBNFixture(t *testing.T, d *Device, b bnCase, seed uint64) *bnFixture {
	r := newRand(seed)
	f := &bnFixture{p: backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: b.relu, Residual: b.residual()}}
	shape := []int{b.n, b.c, b.h, b.w}
	f.xv = randSlice(r, b.n*b.c*b.h*b.w)
	for i := range f.xv {
		f.xv[i] = 3*f.xv[i] + 2 // a mean far from 0 tests the variance's accuracy
	}
	vec := func(vals []float32) backend.Tensor { return tensor(t, d, vals, b.c) }
	f.rm, f.rv = randSlice(r, b.c), randSlice(r, b.c)
	for i := range f.rv {
		f.rv[i] = 1 + f.rv[i]/2
	}
	f.t = backend.BatchNormTensors{
		X: tensor(t, d, f.xv, shape...), Y: tensor(t, d, nil, shape...),
		Gamma: vec(randSlice(r, b.c)), Beta: vec(randSlice(r, b.c)),
		RunningMean: vec(f.rm), RunningVar: vec(f.rv), SaveMean: vec(nil), SaveInvStd: vec(nil),
	}
	if b.residual() {
		f.zv = randSlice(r, b.n*b.cz*b.hz*b.wz)
		f.t.Z = tensor(t, d, f.zv, b.n, b.cz, b.hz, b.wz)
	}
	f.g = backend.BatchNormGrads{
		X: f.t.X, Y: f.t.Y, DY: tensor(t, d, randSlice(r, len(f.xv)), shape...), Gamma: f.t.Gamma,
		SaveMean: f.t.SaveMean, SaveInvStd: f.t.SaveInvStd,
		DX: tensor(t, d, nil, shape...), DGamma: vec(nil), DBeta: vec(nil),
	}
	if b.residual() {
		// Garbage in dz: the backward must write every element, including those the shortcut skips.
		f.g.DZ = tensor(t, d, randSlice(r, len(f.zv)), b.n, b.cz, b.hz, b.wz)
	}
	return f
}

func TestBatchNormTrainingMatchesNaive(t *testing.T) {
	for _, workers := range []int{1, 3} {
		d := NewWithWorkers(workers)
		for i, b := range bnCases {
			t.Run(fmt.Sprintf("workers%d/%v", workers, b), func(t *testing.T) {
				f := newBNFixture(t, d, b, uint64(200+i))
				must(t, d.BatchNormForwardTraining(f.p, f.t))
				mean, variance := naiveStats(b, f.xv)
				gamma, beta := values(t, f.t.Gamma), values(t, f.t.Beta)
				want := naiveBNForward(b, f.xv, f.zv, gamma, beta, mean, variance, 1e-5)
				assertClose(t, "y", values(t, f.t.Y), want, 1e-5, 1e-5)
				assertClose(t, "saved mean", values(t, f.t.SaveMean), mean, 1e-6, 1e-6)
				inv := make([]float64, b.c)
				m := float64(b.n * b.h * b.w)
				wantRM, wantRV := make([]float64, b.c), make([]float64, b.c)
				for c := range inv {
					inv[c] = 1 / math.Sqrt(variance[c]+1e-5)
					wantRM[c] = 0.9*float64(f.rm[c]) + 0.1*mean[c]
					wantRV[c] = 0.9*float64(f.rv[c]) + 0.1*variance[c]*m/(m-1) // unbiased, as PyTorch
				}
				assertClose(t, "saved inverse std", values(t, f.t.SaveInvStd), inv, 1e-6, 1e-6)
				assertClose(t, "running mean", values(t, f.t.RunningMean), wantRM, 1e-6, 1e-6)
				assertClose(t, "running var", values(t, f.t.RunningVar), wantRV, 1e-6, 1e-6)

				must(t, d.BatchNormBackward(f.p, f.g))
				dx, dgamma, dbeta, dz := naiveBNBackward(b, f.xv, values(t, f.t.Y), values(t, f.g.DY), gamma, 1e-5)
				assertClose(t, "dx", values(t, f.g.DX), dx, 1e-5, 1e-4)
				assertClose(t, "dgamma", values(t, f.g.DGamma), dgamma, 1e-5, 1e-5)
				assertClose(t, "dbeta", values(t, f.g.DBeta), dbeta, 1e-5, 1e-5)
				if b.residual() {
					assertClose(t, "dz", values(t, f.g.DZ), dz, 0, 0)
				}
			})
		}
		d.Close()
	}
}

func TestBatchNormInferenceMatchesNaive(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	for i, b := range bnCases {
		t.Run(b.String(), func(t *testing.T) {
			f := newBNFixture(t, d, b, uint64(300+i))
			saved := values(t, f.t.SaveMean)
			must(t, d.BatchNormForwardInference(f.p, f.t))
			want := naiveBNForward(b, f.xv, f.zv, values(t, f.t.Gamma), values(t, f.t.Beta), widen(f.rm), widen(f.rv), 1e-5)
			assertClose(t, "y", values(t, f.t.Y), want, 1e-5, 1e-5)
			assertClose(t, "running mean untouched", values(t, f.t.RunningMean), widen(f.rm), 0, 0)
			assertClose(t, "saved mean untouched", values(t, f.t.SaveMean), widen(saved), 0, 0)
		})
	}
}

// Statistics of data with a large mean and small spread must not lose the variance (float64 two-pass).
func TestBatchNormVarianceAccuracy(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	b := bnCase{n: 4, c: 1, h: 8, w: 8}
	f := newBNFixture(t, d, b, 9)
	r := newRand(9)
	for i := range f.xv {
		f.xv[i] = 1000 + 0.01*(2*r.Float32()-1)
	}
	must(t, d.Upload(f.t.X, f.xv))
	must(t, d.BatchNormForwardTraining(f.p, f.t))
	mean, variance := naiveStats(b, f.xv)
	assertClose(t, "saved mean", values(t, f.t.SaveMean), mean, 0, 1e-7)
	assertClose(t, "saved inverse std", values(t, f.t.SaveInvStd), []float64{1 / math.Sqrt(variance[0]+1e-5)}, 0, 1e-5)
}
