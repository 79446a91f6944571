package cpu

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
)

// stepResult is every output and gradient of one forward/backward/update step, in a fixed order.
type stepResult struct {
	names  []string
	values [][]float32
}

// networkStep runs a small ResNet-shaped step on d: conv - BN+ReLU - max-pool - strided conv - BN with an
// option-A shortcut + ReLU - 1x1 conv - global average pool - linear - softmax cross-entropy, the backward
// of all of it (including an accumulating backward-data into the shortcut's gradient) and an SGD step.
// The setup (random values, allocation) is separate from step so it can also measure allocations.
type networkStep struct {
	d                       *Device
	n                       int
	x, w1, y1, a1, a2       backend.Tensor
	w2, y2, a3, w3, y3, gap backend.Tensor
	fcW, fcB, logits, loss  backend.Tensor
	labels                  backend.Tensor
	bn1, bn2                backend.BatchNormTensors
	dLogits, dGap, dY3, dA3 backend.Tensor
	dY2, dA2, dA1, dY1, dX  backend.Tensor
	dW1, dW2, dW3           backend.Tensor
	dFcW, dFcB              backend.Tensor
	bn1g, bn2g              backend.BatchNormGrads
	slots                   []backend.SGDSlot
}

func newNetworkStep(t testing.TB, d *Device, n int) *networkStep {
	r := newRand(uint64(42 + n))
	s := &networkStep{d: d, n: n}
	rnd := func(shape ...int) backend.Tensor {
		return tensor(t, d, randSlice(r, backend.Shape(shape).Numel()), shape...)
	}
	zeros := func(shape ...int) backend.Tensor { return tensor(t, d, nil, shape...) }
	ones := func(c int) backend.Tensor {
		v := make([]float32, c)
		for i := range v {
			v[i] = 1
		}
		return tensor(t, d, v, c)
	}
	s.x, s.w1, s.y1, s.a1 = rnd(n, 8, 16, 16), rnd(16, 8, 3, 3), zeros(n, 16, 16, 16), zeros(n, 16, 16, 16)
	s.a2 = zeros(n, 16, 8, 8)
	s.w2, s.y2, s.a3 = rnd(32, 16, 3, 3), zeros(n, 32, 4, 4), zeros(n, 32, 4, 4)
	s.w3, s.y3, s.gap = rnd(32, 32, 1, 1), zeros(n, 32, 4, 4), zeros(n, 32)
	s.fcW, s.fcB, s.logits, s.loss = rnd(10, 32), rnd(10), zeros(n, 10), zeros(n)
	lab := make([]int32, n)
	for i := range lab {
		lab[i] = int32(r.IntN(10))
	}
	s.labels = labelsTensor(t, d, lab)
	bn := func(x, y backend.Tensor, c int) backend.BatchNormTensors {
		return backend.BatchNormTensors{X: x, Y: y, Gamma: ones(c), Beta: zeros(c), RunningMean: zeros(c),
			RunningVar: ones(c), SaveMean: zeros(c), SaveInvStd: zeros(c)}
	}
	s.bn1, s.bn2 = bn(s.y1, s.a1, 16), bn(s.y2, s.a3, 32)
	s.bn2.Z = s.a2
	s.dLogits, s.dGap, s.dY3, s.dA3 = zeros(n, 10), zeros(n, 32), zeros(n, 32, 4, 4), zeros(n, 32, 4, 4)
	s.dY2, s.dA2, s.dA1, s.dY1, s.dX = zeros(n, 32, 4, 4), zeros(n, 16, 8, 8), zeros(n, 16, 16, 16), zeros(n, 16, 16, 16), zeros(n, 8, 16, 16)
	s.dW1, s.dW2, s.dW3, s.dFcW, s.dFcB = zeros(16, 8, 3, 3), zeros(32, 16, 3, 3), zeros(32, 32, 1, 1), zeros(10, 32), zeros(10)
	grads := func(f backend.BatchNormTensors, dy, dx backend.Tensor, c int) backend.BatchNormGrads {
		return backend.BatchNormGrads{X: f.X, Y: f.Y, DY: dy, Gamma: f.Gamma, SaveMean: f.SaveMean,
			SaveInvStd: f.SaveInvStd, DX: dx, DGamma: zeros(c), DBeta: zeros(c)}
	}
	s.bn1g, s.bn2g = grads(s.bn1, s.dA1, s.dY1, 16), grads(s.bn2, s.dA3, s.dY2, 32)
	s.bn2g.DZ = s.dA2
	slot := func(p, g backend.Tensor, wd float32) backend.SGDSlot {
		return backend.SGDSlot{Param: p, Grad: g, Buf: zeros(p.Shape...), WeightDecay: wd}
	}
	s.slots = []backend.SGDSlot{slot(s.w1, s.dW1, 5e-4), slot(s.w2, s.dW2, 5e-4), slot(s.w3, s.dW3, 5e-4),
		slot(s.fcW, s.dFcW, 5e-4), slot(s.fcB, s.dFcB, 0), slot(s.bn1.Gamma, s.bn1g.DGamma, 0),
		slot(s.bn2.Beta, s.bn2g.DBeta, 0)}
	return s
}

func (s *networkStep) run() error {
	d := s.d
	same, half := backend.ConvParams{Stride: 1, Pad: 1}, backend.ConvParams{Stride: 2, Pad: 1}
	pool := backend.PoolParams{Kernel: 3, Stride: 2, Pad: 1}
	bnRelu := backend.BatchNormParams{Eps: 1e-5, Momentum: 0.1, ReLU: true}
	bnRes := bnRelu
	bnRes.Residual = true
	for _, f := range []func() error{
		func() error { return d.ConvForward(same, s.x, s.w1, s.y1) },
		func() error { return d.BatchNormForwardTraining(bnRelu, s.bn1) },
		func() error { return d.MaxPoolForward(pool, s.a1, s.a2) },
		func() error { return d.ConvForward(half, s.a2, s.w2, s.y2) },
		func() error { return d.BatchNormForwardTraining(bnRes, s.bn2) },
		func() error { return d.ConvForward(backend.ConvParams{Stride: 1}, s.a3, s.w3, s.y3) },
		func() error { return d.GlobalAvgPoolForward(s.y3, s.gap) },
		func() error { return d.LinearForward(s.gap, s.fcW, s.fcB, s.logits) },
		func() error { return d.SoftmaxCrossEntropy(s.logits, s.labels, s.loss, s.dLogits, 1/float32(s.n)) },
		func() error { return d.LinearBackward(s.gap, s.fcW, s.dLogits, s.dGap, s.dFcW, s.dFcB) },
		func() error { return d.GlobalAvgPoolBackward(s.dGap, s.dY3) },
		func() error { return d.ConvBackwardData(backend.ConvParams{Stride: 1}, s.dY3, s.w3, s.dA3, false) },
		func() error { return d.ConvBackwardFilter(backend.ConvParams{Stride: 1}, s.a3, s.dY3, s.dW3) },
		func() error { return d.BatchNormBackward(bnRes, s.bn2g) }, // writes the shortcut's part of dA2
		func() error { return d.ConvBackwardData(half, s.dY2, s.w2, s.dA2, true) },
		func() error { return d.ConvBackwardFilter(half, s.a2, s.dY2, s.dW2) },
		func() error { return d.MaxPoolBackward(pool, s.a1, s.a2, s.dA2, s.dA1) },
		func() error { return d.BatchNormBackward(bnRelu, s.bn1g) },
		func() error { return d.ConvBackwardData(same, s.dY1, s.w1, s.dX, false) },
		func() error { return d.ConvBackwardFilter(same, s.x, s.dY1, s.dW1) },
		func() error {
			return d.SGDStep(backend.SGDParams{LR: 0.1, Momentum: 0.9, Nesterov: true}, s.slots)
		},
	} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (s *networkStep) result(t testing.TB) stepResult {
	var r stepResult
	add := func(name string, x backend.Tensor) {
		r.names, r.values = append(r.names, name), append(r.values, values(t, x))
	}
	for _, e := range []struct {
		name string
		t    backend.Tensor
	}{
		{"y1", s.y1}, {"a1", s.a1}, {"a2", s.a2}, {"y2", s.y2}, {"a3", s.a3}, {"y3", s.y3}, {"gap", s.gap},
		{"logits", s.logits}, {"loss", s.loss}, {"dlogits", s.dLogits}, {"dgap", s.dGap}, {"dy3", s.dY3},
		{"da3", s.dA3}, {"dy2", s.dY2}, {"da2", s.dA2}, {"da1", s.dA1}, {"dy1", s.dY1}, {"dx", s.dX},
		{"w1", s.w1}, {"w2", s.w2}, {"w3", s.w3}, {"fcW", s.fcW}, {"fcB", s.fcB},
		{"bn1 running mean", s.bn1.RunningMean}, {"bn1 running var", s.bn1.RunningVar},
		{"bn2 running var", s.bn2.RunningVar}, {"bn1 gamma", s.bn1.Gamma}, {"bn2 beta", s.bn2.Beta},
		{"bn1 dgamma", s.bn1g.DGamma}, {"bn2 dbeta", s.bn2g.DBeta},
	} {
		add(e.name, e.t)
	}
	return r
}

// Every op must give bit-identical results whatever the number of workers. Batch 2 with 3 or 8 workers
// takes the parallel-GEMM paths (fewer images than workers), batch 5 the image-parallel ones and, with
// 8 workers, backward-filter's sequential chunks.
func TestResultsIndependentOfWorkerCount(t *testing.T) {
	for _, n := range []int{2, 5} {
		var want stepResult
		for _, workers := range []int{1, 2, 3, 8} {
			d := NewWithWorkers(workers)
			s := newNetworkStep(t, d, n)
			for step := 0; step < 2; step++ { // the second step starts from updated weights and running stats
				must(t, s.run())
			}
			got := s.result(t)
			if workers == 1 {
				want = got
			} else {
				for i := range want.values {
					assertSameBits(t, fmt.Sprintf("batch %d, %d workers vs 1: %s", n, workers, got.names[i]), got.values[i], want.values[i])
				}
			}
			d.Close()
		}
	}
}
