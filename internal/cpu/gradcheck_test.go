package cpu

// Finite-difference checks of every backward op. Each test defines a scalar loss L = sum(y*r) for a
// random r (computed in float64 from the device's float32 output), so the analytic gradient is the
// backward pass fed with dy = r, and compares it with central differences
//
//	dL/dθ_i ≈ (L(θ_i + eps) - L(θ_i - eps)) / (2 eps)
//
// taken on the device's own float32 tensors. Choice of eps and tolerances: ops that are linear in the
// perturbed input (convolution, pooling, linear) have no truncation error, so eps is large (0.05) and the
// only error is float32 rounding of L divided by 2*eps, about 1e-5; tolerance 1e-3 + 1e-3*|g|. Batch norm
// and softmax are smooth but curved: eps = 1e-2 keeps the O(eps^2) truncation error near 1e-4 while the
// rounding error stays near 1e-4; tolerance 2e-3 + 1e-2*|g|. Coordinates whose perturbation flips a ReLU
// (an output changes sign) are skipped, since the loss has a kink there.

import (
	"math"
	"testing"

	"resnet/internal/backend"
)

// fdGrad perturbs each element of in (in place) and returns the central-difference gradient of loss.
// When kinked is non-nil and reports true after either perturbed evaluation, that coordinate is NaN.
func fdGrad(t *testing.T, in backend.Tensor, eps float32, loss func() float64, kinked func() bool) []float64 {
	t.Helper()
	v, err := Float32s(in)
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float64, len(v))
	for i := range v {
		orig := v[i]
		hi, lo := orig+eps, orig-eps
		v[i] = hi
		lp := loss()
		skip := kinked != nil && kinked()
		v[i] = lo
		lm := loss()
		skip = skip || (kinked != nil && kinked())
		v[i] = orig
		if skip {
			g[i] = math.NaN()
			continue
		}
		g[i] = (lp - lm) / (float64(hi) - float64(lo))
	}
	return g
}

// assertGrad compares an analytic gradient with a finite-difference one, ignoring skipped (NaN)
// coordinates but failing if more than a third were skipped.
func assertGrad(t *testing.T, what string, analytic []float32, fd []float64, abs, rel float64) {
	t.Helper()
	got, want := make([]float32, 0, len(fd)), make([]float64, 0, len(fd))
	for i, w := range fd {
		if !math.IsNaN(w) {
			got, want = append(got, analytic[i]), append(want, w)
		}
	}
	if 3*len(want) < 2*len(fd) {
		t.Fatalf("%s: %d of %d coordinates sat on a kink; the check is too weak", what, len(fd)-len(want), len(fd))
	}
	assertClose(t, what, got, want, abs, rel)
}

// signFlipped reports whether any element of y differs from ref in being > 0.
func signFlipped(y, ref []float32) bool {
	for i := range y {
		if (y[i] > 0) != (ref[i] > 0) {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestConvGradients(t *testing.T) {
	for _, c := range []convCase{
		{n: 2, cin: 3, h: 5, w: 6, cout: 2, k: 3, stride: 2, pad: 1},
		{n: 1, cin: 2, h: 4, w: 3, cout: 3, k: 1, stride: 1, pad: 0},
		{n: 2, cin: 6, h: 5, w: 4, cout: 4, k: 3, stride: 1, pad: 1, groups: 2},
		{n: 1, cin: 4, h: 5, w: 5, cout: 8, k: 3, stride: 2, pad: 1, groups: 4},
	} {
		d := NewWithWorkers(2)
		r := newRand(10)
		p := c.params()
		x := tensor(t, d, randSlice(r, c.n*c.cin*c.h*c.w), c.n, c.cin, c.h, c.w)
		w := tensor(t, d, randSlice(r, c.cout*c.wcin()*c.k*c.k), c.cout, c.wcin(), c.k, c.k)
		y := tensor(t, d, nil, c.n, c.cout, c.oh(), c.ow())
		rv := randSlice(r, c.n*c.cout*c.oh()*c.ow())
		dy := tensor(t, d, rv, c.n, c.cout, c.oh(), c.ow())
		dx := tensor(t, d, nil, c.n, c.cin, c.h, c.w)
		dw := tensor(t, d, nil, c.cout, c.wcin(), c.k, c.k)
		yv, _ := Float32s(y)
		loss := func() float64 {
			must(t, d.ConvForward(p, x, w, y))
			return dot64(yv, rv)
		}
		must(t, d.ConvBackwardData(p, dy, w, dx, false))
		must(t, d.ConvBackwardFilter(p, x, dy, dw))
		assertGrad(t, "conv dx", values(t, dx), fdGrad(t, x, 0.05, loss, nil), 1e-3, 1e-3)
		assertGrad(t, "conv dw", values(t, dw), fdGrad(t, w, 0.05, loss, nil), 1e-3, 1e-3)
		d.Close()
	}
}

func TestBatchNormGradients(t *testing.T) {
	for _, b := range []bnCase{
		{n: 3, c: 2, h: 3, w: 2},
		{n: 2, c: 3, h: 2, w: 3, relu: true},
		{n: 2, c: 3, h: 3, w: 2, relu: true, cz: 3, hz: 3, wz: 2},
		{n: 2, c: 4, h: 2, w: 2, relu: true, cz: 2, hz: 4, wz: 4}, // option-A shortcut: stride 2, 1 channel pad each side
	} {
		d := NewWithWorkers(2)
		r := newRand(11)
		p := backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: b.relu, Residual: b.residual()}
		shape := []int{b.n, b.c, b.h, b.w}
		vec := func(vals []float32) backend.Tensor { return tensor(t, d, vals, b.c) }
		gammaVals := randSlice(r, b.c)
		for i := range gammaVals {
			gammaVals[i] += 1.5 // keep gamma away from 0 so the gradients are not trivially small
		}
		tt := backend.BatchNormTensors{
			X: tensor(t, d, randSlice(r, b.n*b.c*b.h*b.w), shape...), Y: tensor(t, d, nil, shape...),
			Gamma: vec(gammaVals), Beta: vec(randSlice(r, b.c)),
			RunningMean: vec(nil), RunningVar: vec(nil), SaveMean: vec(nil), SaveInvStd: vec(nil),
		}
		if b.residual() {
			tt.Z = tensor(t, d, randSlice(r, b.n*b.cz*b.hz*b.wz), b.n, b.cz, b.hz, b.wz)
		}
		rv := randSlice(r, b.n*b.c*b.h*b.w)
		yv, _ := Float32s(tt.Y)
		loss := func() float64 {
			must(t, d.BatchNormForwardTraining(p, tt))
			return dot64(yv, rv)
		}
		loss()
		ref := values(t, tt.Y)
		kinked := func() bool { return b.relu && signFlipped(yv, ref) }
		g := backend.BatchNormGrads{
			X: tt.X, Y: tt.Y, DY: tensor(t, d, rv, shape...), Gamma: tt.Gamma,
			SaveMean: tt.SaveMean, SaveInvStd: tt.SaveInvStd,
			DX: tensor(t, d, nil, shape...), DGamma: vec(nil), DBeta: vec(nil),
		}
		if b.residual() {
			g.DZ = tensor(t, d, nil, b.n, b.cz, b.hz, b.wz)
		}
		must(t, d.BatchNormBackward(p, g))
		name := "bn " + shapeName(shape...)
		assertGrad(t, name+" dx", values(t, g.DX), fdGrad(t, tt.X, 1e-2, loss, kinked), 2e-3, 1e-2)
		assertGrad(t, name+" dgamma", values(t, g.DGamma), fdGrad(t, tt.Gamma, 1e-2, loss, kinked), 2e-3, 1e-2)
		assertGrad(t, name+" dbeta", values(t, g.DBeta), fdGrad(t, tt.Beta, 1e-2, loss, kinked), 2e-3, 1e-2)
		if b.residual() {
			assertGrad(t, name+" dz", values(t, g.DZ), fdGrad(t, tt.Z, 1e-2, loss, kinked), 2e-3, 1e-2)
		}
		d.Close()
	}
}

func TestMaxPoolGradient(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	c := poolCase{n: 2, c: 2, h: 5, w: 6, k: 3, stride: 2, pad: 1}
	r := newRand(12)
	// Distinct values 0.01 apart, so a perturbation of 1e-3 never changes a window's argmax.
	xv := make([]float32, c.n*c.c*c.h*c.w)
	for i, j := range r.Perm(len(xv)) {
		xv[i] = float32(j) * 0.01
	}
	p := backend.PoolParams{Kernel: c.k, Stride: c.stride, Pad: c.pad}
	x := tensor(t, d, xv, c.n, c.c, c.h, c.w)
	y := tensor(t, d, nil, c.n, c.c, c.oh(), c.ow())
	rv := randSlice(r, c.n*c.c*c.oh()*c.ow())
	yv, _ := Float32s(y)
	loss := func() float64 {
		must(t, d.MaxPoolForward(p, x, y))
		return dot64(yv, rv)
	}
	loss()
	dx := tensor(t, d, nil, c.n, c.c, c.h, c.w)
	must(t, d.MaxPoolBackward(p, x, y, tensor(t, d, rv, c.n, c.c, c.oh(), c.ow()), dx))
	assertGrad(t, "maxpool dx", values(t, dx), fdGrad(t, x, 1e-3, loss, nil), 1e-3, 1e-3)
}

func TestGlobalAvgPoolGradient(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	r := newRand(13)
	x := tensor(t, d, randSlice(r, 2*3*3*5), 2, 3, 3, 5)
	y := tensor(t, d, nil, 2, 3)
	rv := randSlice(r, 6)
	yv, _ := Float32s(y)
	loss := func() float64 {
		must(t, d.GlobalAvgPoolForward(x, y))
		return dot64(yv, rv)
	}
	dx := tensor(t, d, nil, 2, 3, 3, 5)
	must(t, d.GlobalAvgPoolBackward(tensor(t, d, rv, 2, 3), dx))
	assertGrad(t, "avgpool dx", values(t, dx), fdGrad(t, x, 0.05, loss, nil), 1e-3, 1e-3)
}

func TestLinearGradients(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	r := newRand(14)
	n, in, out := 3, 7, 5
	x := tensor(t, d, randSlice(r, n*in), n, in)
	w := tensor(t, d, randSlice(r, out*in), out, in)
	b := tensor(t, d, randSlice(r, out), out)
	y := tensor(t, d, nil, n, out)
	rv := randSlice(r, n*out)
	yv, _ := Float32s(y)
	loss := func() float64 {
		must(t, d.LinearForward(x, w, b, y))
		return dot64(yv, rv)
	}
	dx, dw, db := tensor(t, d, nil, n, in), tensor(t, d, nil, out, in), tensor(t, d, nil, out)
	must(t, d.LinearBackward(x, w, tensor(t, d, rv, n, out), dx, dw, db))
	assertGrad(t, "linear dx", values(t, dx), fdGrad(t, x, 0.05, loss, nil), 1e-3, 1e-3)
	assertGrad(t, "linear dw", values(t, dw), fdGrad(t, w, 0.05, loss, nil), 1e-3, 1e-3)
	assertGrad(t, "linear db", values(t, db), fdGrad(t, b, 0.05, loss, nil), 1e-3, 1e-3)
}

func TestSoftmaxCrossEntropyGradient(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	r := newRand(15)
	n, k := 4, 7
	lv := randSlice(r, n*k)
	for i := range lv {
		lv[i] *= 3
	}
	logits := tensor(t, d, lv, n, k)
	labels := labelsTensor(t, d, []int32{0, 6, 3, 3})
	loss := tensor(t, d, nil, n)
	dl := tensor(t, d, nil, n, k)
	const scale = 0.25 // the mean over the batch
	lossv, _ := Float32s(loss)
	total := func() float64 {
		must(t, d.SoftmaxCrossEntropy(logits, labels, loss, backend.Tensor{}, 0))
		var s float64
		for _, v := range lossv {
			s += scale * float64(v)
		}
		return s
	}
	must(t, d.SoftmaxCrossEntropy(logits, labels, loss, dl, scale))
	assertGrad(t, "softmax dlogits", values(t, dl), fdGrad(t, logits, 1e-2, total, nil), 2e-3, 1e-2)
}
