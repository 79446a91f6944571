package cpu

import (
	"math"
	"testing"

	"resnet/internal/backend"
)

func TestLinearMatchesNaive(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	r := newRand(6)
	n, in, out := 5, 67, 11
	xv, wv, bv := randSlice(r, n*in), randSlice(r, out*in), randSlice(r, out)
	dyv := randSlice(r, n*out)
	// x as the (N, C, 1, 1) output of global average pooling.
	x := tensor(t, d, xv, n, in, 1, 1)
	w, b := tensor(t, d, wv, out, in), tensor(t, d, bv, out)
	y := tensor(t, d, nil, n, out)
	must(t, d.LinearForward(x, w, b, y))
	wantY := make([]float64, n*out)
	for s := 0; s < n; s++ {
		for o := 0; o < out; o++ {
			v := float64(bv[o])
			for i := 0; i < in; i++ {
				v += float64(xv[s*in+i]) * float64(wv[o*in+i])
			}
			wantY[s*out+o] = v
		}
	}
	assertClose(t, "y", values(t, y), wantY, 1e-5, 1e-5)

	dx, dw, db := tensor(t, d, nil, n, in, 1, 1), tensor(t, d, nil, out, in), tensor(t, d, nil, out)
	must(t, d.LinearBackward(x, w, tensor(t, d, dyv, n, out), dx, dw, db))
	wantDX, wantDW, wantDB := make([]float64, n*in), make([]float64, out*in), make([]float64, out)
	for s := 0; s < n; s++ {
		for o := 0; o < out; o++ {
			g := float64(dyv[s*out+o])
			wantDB[o] += g
			for i := 0; i < in; i++ {
				wantDX[s*in+i] += g * float64(wv[o*in+i])
				wantDW[o*in+i] += g * float64(xv[s*in+i])
			}
		}
	}
	assertClose(t, "dx", values(t, dx), wantDX, 1e-5, 1e-5)
	assertClose(t, "dw", values(t, dw), wantDW, 1e-5, 1e-5)
	assertClose(t, "db", values(t, db), wantDB, 1e-6, 1e-6)

	// dx is optional (the first layer of a model has no input gradient).
	before := values(t, dw)
	must(t, d.LinearBackward(x, w, tensor(t, d, dyv, n, out), backend.Tensor{}, dw, db))
	assertSameBits(t, "dw without dx", values(t, dw), before)
}

func TestSoftmaxCrossEntropyMatchesNaive(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	r := newRand(8)
	n, k := 6, 10
	lv := randSlice(r, n*k)
	for i := range lv {
		lv[i] *= 5
	}
	// Extreme logits must not overflow: exp is taken after subtracting the row maximum.
	lv[0], lv[1] = 1000, -1000
	lv[k+3] = -3000
	labels := []int32{1, 3, 0, 9, 5, 5}
	loss, dl := tensor(t, d, nil, n), tensor(t, d, nil, n, k)
	must(t, d.SoftmaxCrossEntropy(tensor(t, d, lv, n, k), labelsTensor(t, d, labels), loss, dl, 1.0/6))
	wantLoss, wantDL := naiveSoftmaxCE(n, k, lv, labels, 1.0/6)
	for _, v := range values(t, loss) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("loss %v is not finite", v)
		}
	}
	assertClose(t, "loss", values(t, loss), wantLoss, 1e-5, 1e-6)
	assertClose(t, "dlogits", values(t, dl), wantDL, 1e-7, 1e-5)
}
