package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/cpu"
)

// tinySpec is a CIFAR-family net small enough for a finite-difference check of every parameter tensor.
func tinySpec(residual bool, shortcut byte) Spec {
	return Spec{
		Name: "tiny", Family: CIFAR, Block: Basic, Layers: []int{1, 1}, Widths: []int{4, 8},
		Residual: residual, Shortcut: shortcut, StemWidth: 4, InChannels: 3, InputSize: 8, NumClasses: 3,
	}
}

func tinyBatch(n int, seed uint64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*3*8*8)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(3))
	}
	return x, y
}

// TestWholeNetGradientCheck compares every parameter tensor's gradient (a few entries each) with central
// differences of the mean loss, for a residual net with option A and option B shortcuts and a plain one.
// BN runs in training mode, so the check covers the batch-statistics backward too.
func TestWholeNetGradientCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
	}{{"optionA", tinySpec(true, 'A')}, {"optionB", tinySpec(true, 'B')}, {"optionC", tinySpec(true, 'C')},
		{"plain", tinySpec(false, 'A')}, {"preact optionA", tinyPreAct(Basic, 'A')},
		{"preact optionB", tinyPreAct(Basic, 'B')}, {"preact bottleneck", tinyPreAct(Bottleneck, 'B')},
		{"preact optionC", tinyPreAct(Basic, 'C')}} {
		t.Run(tc.name, func(t *testing.T) { checkGradients(t, tc.spec) })
	}
}

// checkGradients compares every parameter tensor's gradient (a few entries each) of a net of spec s on a
// batch of 4 with finite differences of the mean loss.
func checkGradients(t *testing.T, s Spec) {
	t.Helper()
	dev := cpu.New()
	net, err := Build(dev, s, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := net.Init(3); err != nil {
		t.Fatal(err)
	}
	x, y := tinyBatch(4, 5)
	loss := func() float64 {
		if err := net.Forward(x, 4, true); err != nil {
			t.Fatal(err)
		}
		r, err := net.Loss(y)
		if err != nil {
			t.Fatal(err)
		}
		return r.LossSum / 4
	}
	if _, err := net.TrainStep(x, y); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	// One-sided differences on both sides of the point. Away from ReLU kinks they agree with each
	// other and with the analytic gradient. When a pre-activation sits within the step of zero, the
	// difference on that side is biased by the kink, while the other side still measures the
	// derivative at the point: so the analytic gradient must match the central difference or one of
	// the one-sided ones.
	const h = 1e-3
	diffs := func(p *Param, val []float32, i int) (left, right float64) {
		orig := val[i]
		l0 := loss()
		val[i] = orig + h
		net.Set(p, val)
		lp := loss()
		val[i] = orig - h
		net.Set(p, val)
		lm := loss()
		val[i] = orig
		net.Set(p, val)
		return (l0 - lm) / h, (lp - l0) / h
	}
	checked, kinks := 0, 0
	for _, p := range net.Params {
		if !p.Kind.Trainable() {
			continue
		}
		grad := make([]float32, p.Shape.Numel())
		if err := dev.Download(grad, p.Grad); err != nil {
			t.Fatal(err)
		}
		val, _ := net.Get(p)
		for k := 0; k < 4; k++ {
			i := rng.IntN(len(val))
			left, right := diffs(p, val, i)
			central := (left + right) / 2
			an := float64(grad[i])
			tol := 1e-3 + 2e-2*math.Abs(an)
			checked++
			if math.Abs(left-right) > tol {
				kinks++
			}
			if min(math.Abs(central-an), math.Abs(left-an), math.Abs(right-an)) > tol {
				t.Errorf("%s[%d]: analytic %.6f, finite differences left %.6f right %.6f", p.Name, i, an, left, right)
			}
		}
	}
	t.Logf("%d entries checked, %d near a kink", checked, kinks)
}

// Training is deterministic: two nets from the same seed, fed the same batches, end with identical bits.
func TestTrainStepDeterministic(t *testing.T) {
	run := func() []float32 {
		dev := cpu.New()
		net, err := Build(dev, tinySpec(true, 'A'), 8)
		if err != nil {
			t.Fatal(err)
		}
		net.Init(11)
		slots := net.SGDSlots(1e-4, false)
		for s := 0; s < 3; s++ {
			x, y := tinyBatch(8-s, uint64(s)) // also exercises smaller batches
			if _, err := net.TrainStep(x, y); err != nil {
				t.Fatal(err)
			}
			if err := dev.SGDStep(backend.SGDParams{LR: 0.1, Momentum: 0.9}, slots); err != nil {
				t.Fatal(err)
			}
		}
		var all []float32
		for _, p := range net.Params {
			v, _ := net.Get(p)
			all = append(all, v...)
		}
		return all
	}
	a, b := run(), run()
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("value %d differs between identical runs: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestInitAndZeroInitResidual(t *testing.T) {
	s, _ := Lookup("cifar_resnet20")
	s.ZeroInitResidual = true
	net, err := Build(cpu.New(), s, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := net.Init(1); err != nil {
		t.Fatal(err)
	}
	zeroed := 0
	for _, p := range net.Params {
		v, _ := net.Get(p)
		switch p.Kind {
		case ConvWeight:
			var ss float64
			for _, x := range v {
				ss += float64(x) * float64(x)
			}
			std := math.Sqrt(ss / float64(len(v)))
			want := math.Sqrt(2 / float64(p.Shape[0]*p.Shape[2]*p.Shape[3]))
			if math.Abs(std-want) > 0.2*want {
				t.Errorf("%s: std %.4f, He fan-out std %.4f", p.Name, std, want)
			}
		case BNWeight:
			if v[0] == 0 {
				zeroed++
			}
		case BNRunningVar:
			if v[0] != 1 {
				t.Errorf("%s starts at %v, want 1", p.Name, v[0])
			}
		}
	}
	if zeroed != 9 {
		t.Errorf("%d BN gammas zero-initialised, want 9 (one per residual unit)", zeroed)
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	net, err := Build(cpu.New(), tinySpec(true, 'A'), 4)
	if err != nil {
		t.Fatal(err)
	}
	net.Init(1)
	x, y := tinyBatch(4, 1)
	if err := net.Forward(x[:10], 4, true); err == nil {
		t.Error("short input accepted")
	}
	if err := net.Forward(append(x, x...), 8, true); err == nil {
		t.Error("batch larger than capacity accepted")
	}
	net.Forward(x, 4, true)
	y[2] = 7
	if _, err := net.Loss(y); err == nil || err.Error() != "model tiny: label 7 of example 2 is outside 0..2" {
		t.Errorf("bad label error: %v", err)
	}
}

// A training step allocates nothing once one step has run: hard labels and label smoothing's soft targets,
// with loss scaling and the SGD update, on one worker and on several.
func TestTrainStepDoesNotAllocate(t *testing.T) {
	s, _ := Lookup("cifar_resnet8")
	const batch = 8
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, batch*3*32*32)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := make([]int32, batch)
	targets := make([]float32, batch*s.NumClasses)
	for i := range labels {
		labels[i] = int32(rng.IntN(s.NumClasses))
		for c := range s.NumClasses {
			targets[i*s.NumClasses+c] = 0.1 / float32(s.NumClasses)
		}
		targets[i*s.NumClasses+int(labels[i])] += 0.9
	}
	const lossScale = 128
	for _, workers := range []int{1, 3} {
		dev := cpu.NewWithWorkers(workers)
		net, err := Build(dev, s, batch)
		if err != nil {
			t.Fatal(err)
		}
		if err := net.Init(1); err != nil {
			t.Fatal(err)
		}
		slots := net.SGDSlots(1e-4, false)
		for _, soft := range []bool{false, true} {
			step := func() {
				var err error
				if soft {
					_, err = net.TrainStepSoft(x, labels, targets, lossScale)
				} else {
					_, err = net.TrainStepScaled(x, labels, lossScale)
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := dev.SGDStep(backend.SGDParams{LR: 0.1, Momentum: 0.9, GradScale: 1. / lossScale}, slots); err != nil {
					t.Fatal(err)
				}
			}
			step()
			// AllocsPerRun truncates the average over its runs: an allocation made by every step fails the
			// test, while the runtime's own now-and-then allocations do not (a new thread when the scheduler
			// wants one, a wait-queue entry when the device's caller sleeps on one processor and wakes on
			// another). internal/cpu's TestScratchSharedAfterOneStep covers what only several workers could
			// allocate late: scratch grown by a worker that got its first large piece many steps on.
			if got := testing.AllocsPerRun(10, step); got != 0 {
				t.Errorf("%d workers, soft targets %v: %v allocations per training step after the first, want 0",
					workers, soft, got)
			}
		}
		dev.Close()
	}
}

// convRecorder records the geometry of every convolution forward run through it.
type convRecorder struct {
	backend.Device
	seen []backend.ConvGeometry
}

func (d *convRecorder) ConvForward(p backend.ConvParams, x, w, y backend.Tensor) error {
	g, err := backend.CheckConvForward(p, x, w, y)
	if err != nil {
		return err
	}
	d.seen = append(d.seen, g)
	return d.Device.ConvForward(p, x, w, y)
}

// ConvLayers names the convolutions the device runs, in the order it runs them, with their geometry at the
// batch size of the forward pass (option C adds a projection per stage).
func TestConvLayersAreTheConvolutionsRun(t *testing.T) {
	dev := &convRecorder{Device: cpu.New()}
	net, err := Build(dev, tinySpec(true, 'C'), 4)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tinyBatch(3, 1)
	if err := net.Forward(x, 3, false); err != nil {
		t.Fatal(err)
	}
	layers := net.ConvLayers(3)
	var names []string
	for i, l := range layers {
		names = append(names, l.Name)
		if i >= len(dev.seen) || dev.seen[i] != l.Geometry {
			t.Errorf("layer %d (%s) has geometry %v; the device ran %v", i, l.Name, l.Geometry, dev.seen)
		}
		if p, ok := net.Param(l.Name + ".weight"); !ok || p.Kind != ConvWeight {
			t.Errorf("%s names no convolution weight", l.Name)
		}
	}
	if len(layers) != len(dev.seen) {
		t.Errorf("ConvLayers lists %d convolutions %v; the device ran %d", len(layers), names, len(dev.seen))
	}
}
