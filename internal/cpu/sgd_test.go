package cpu

import (
	"math"
	"testing"

	"resnet/internal/backend"
)

// The expected values are worked by hand from PyTorch's update (lr 0.1, momentum 0.9):
//
//	g = grad + wd*p;  buf = 0.9*buf + g;  g = nesterov ? g + 0.9*buf : buf;  p -= 0.1*g
//
// slot 0 (wd 0.01): p = [1, -2, 0.5], grad = [0.1, 0.2, -0.3], buf = [0.5, 0, -1]
//
//	g   = [0.11, 0.18, -0.295],  buf = [0.56, 0.18, -1.195]
//	classical: p = [1 - 0.056, -2 - 0.018, 0.5 + 0.1195] = [0.944, -2.018, 0.6195]
//	nesterov:  g = [0.11 + 0.504, 0.18 + 0.162, -0.295 - 1.0755] = [0.614, 0.342, -1.3705]
//	           p = [0.9386, -2.0342, 0.63705]
//
// slot 1 (wd 0, a batch-norm weight): p = [2], grad = [1], buf = [0]: buf = [1];
// classical p = 1.9; nesterov g = 1 + 0.9 = 1.9, p = 1.81.
func TestSGDStepByHand(t *testing.T) {
	for _, tc := range []struct {
		nesterov bool
		p0, p1   []float64
	}{
		{false, []float64{0.944, -2.018, 0.6195}, []float64{1.9}},
		{true, []float64{0.9386, -2.0342, 0.63705}, []float64{1.81}},
	} {
		d := NewWithWorkers(2)
		slots := []backend.SGDSlot{
			{Param: tensor(t, d, []float32{1, -2, 0.5}, 3), Grad: tensor(t, d, []float32{0.1, 0.2, -0.3}, 3),
				Buf: tensor(t, d, []float32{0.5, 0, -1}, 3), WeightDecay: 0.01},
			{Param: tensor(t, d, []float32{2}, 1), Grad: tensor(t, d, []float32{1}, 1), Buf: tensor(t, d, nil, 1)},
		}
		must(t, d.SGDStep(backend.SGDParams{LR: 0.1, Momentum: 0.9, Nesterov: tc.nesterov}, slots))
		assertClose(t, "slot 0 param", values(t, slots[0].Param), tc.p0, 1e-6, 1e-6)
		assertClose(t, "slot 0 buf", values(t, slots[0].Buf), []float64{0.56, 0.18, -1.195}, 1e-6, 1e-6)
		assertClose(t, "slot 1 param", values(t, slots[1].Param), tc.p1, 1e-6, 1e-6)
		assertClose(t, "slot 1 buf", values(t, slots[1].Buf), []float64{1}, 1e-6, 1e-6)
		d.Close()
	}
}

// Without momentum PyTorch keeps no buffer: p -= lr*(grad + wd*p) = 1 - 0.1*(0.5 + 0.1) = 0.94.
func TestSGDWithoutMomentum(t *testing.T) {
	d := NewWithWorkers(1)
	slot := backend.SGDSlot{Param: tensor(t, d, []float32{1}, 1), Grad: tensor(t, d, []float32{0.5}, 1), WeightDecay: 0.1}
	must(t, d.SGDStep(backend.SGDParams{LR: 0.1}, []backend.SGDSlot{slot}))
	assertClose(t, "param", values(t, slot.Param), []float64{0.94}, 1e-7, 1e-6)
}

// A tensor larger than one chunk is updated in parallel pieces; all of it must move.
func TestSGDLargeTensor(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	n := 3*sgdChunk + 17
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	slot := backend.SGDSlot{Param: tensor(t, d, ones, n), Grad: tensor(t, d, ones, n), Buf: tensor(t, d, nil, n)}
	must(t, d.SGDStep(backend.SGDParams{LR: 0.5, Momentum: 0.9}, []backend.SGDSlot{slot}))
	want := make([]float64, n)
	for i := range want {
		want[i] = 0.5
	}
	assertClose(t, "param", values(t, slot.Param), want, 0, 0)
}

// GradScale multiplies each gradient, rounded on its own, before weight decay is added (GradScaler's
// unscale_ then the step): with a scale of 1/4 and wd 0.1, grad [0.1, 0.2, -0.3] is [0.025, 0.05, -0.075],
// g = [0.125, -0.15, -0.025], buf = 0.9*[0.5, 0, -1] + g = [0.575, -0.15, -0.925],
// p = [1, -2, 0.5] - 0.1*buf = [0.9425, -1.985, 0.5925].
func TestSGDGradScale(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	slot := backend.SGDSlot{Param: tensor(t, d, []float32{1, -2, 0.5}, 3), Grad: tensor(t, d, []float32{0.1, 0.2, -0.3}, 3),
		Buf: tensor(t, d, []float32{0.5, 0, -1}, 3), WeightDecay: 0.1}
	must(t, d.SGDStep(backend.SGDParams{LR: 0.1, Momentum: 0.9, GradScale: 0.25}, []backend.SGDSlot{slot}))
	assertClose(t, "param", values(t, slot.Param), []float64{0.9425, -1.985, 0.5925}, 1e-6, 1e-6)
	assertClose(t, "buf", values(t, slot.Buf), []float64{0.575, -0.15, -0.925}, 1e-6, 1e-6)
}

// A gradient scale of 1 and the zero value (no scale) give the same bits, with and without momentum.
func TestSGDGradScaleOneIsExact(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	vals := []float32{1.1, -2.3, 0.57, 3e-8, -7e4}
	grads := []float32{0.13, 0.21, -0.37, 1e-30, 5e3}
	for _, mom := range []float32{0, 0.9} {
		var got [2][]float32
		for i, gs := range []float32{0, 1} {
			slot := backend.SGDSlot{Param: tensor(t, d, vals, 5), Grad: tensor(t, d, grads, 5), WeightDecay: 1e-4}
			if mom != 0 {
				slot.Buf = tensor(t, d, grads, 5)
			}
			must(t, d.SGDStep(backend.SGDParams{LR: 0.1, Momentum: mom, GradScale: gs}, []backend.SGDSlot{slot}))
			got[i] = make([]float32, 5)
			must(t, d.Download(got[i], slot.Param))
		}
		for k := range got[0] {
			if math.Float32bits(got[0][k]) != math.Float32bits(got[1][k]) {
				t.Errorf("momentum %v: element %d: %v without a scale, %v with scale 1", mom, k, got[0][k], got[1][k])
			}
		}
	}
}
