package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/model"
)

// With train.accumulate_steps 2, a step's gradients are the sum of its two micro-batches' (each loss
// weighted 1/2), bit for bit what two passes give when their gradients are added; the BN running statistics
// take one update per micro-batch, as in PyTorch, which is not what one pass over the whole batch gives.
func TestAccumulatedStepAddsMicroBatchGradients(t *testing.T) {
	dev := cpu.New()
	spec, err := model.Lookup("cifar_resnet8")
	if err != nil {
		t.Fatal(err)
	}
	build := func(capacity int) *model.Net {
		n, err := model.Build(dev, spec, capacity)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Free)
		if err := n.Init(3); err != nil {
			t.Fatal(err)
		}
		return n
	}
	c, h, w := 3, 32, 32
	sample := c * h * w
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 8*sample)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := []int32{1, 7, 3, 3, 0, 9, 2, 5}

	cfg := config.Default()
	cfg.Train.BatchSize, cfg.Train.AccumulateSteps = 8, 2
	tr := &trainer{cfg: cfg, net: build(4), sample: sample, opt: Options{Device: dev}}
	if tr.acc, err = dev.Alloc(tr.net.GradientStore().Shape, backend.F32, backend.NCHW); err != nil {
		t.Fatal(err)
	}
	r, err := tr.trainStep(append([]float32(nil), x...), labels)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 8 {
		t.Errorf("the step scored %d images, want 8", r.N)
	}

	ref := build(4)
	grads := func(n *model.Net) []float32 {
		g := n.GradientStore()
		v := make([]float32, g.Numel())
		if err := dev.Download(v, g); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := ref.TrainStepScaled(x[:4*sample], labels[:4], 0.5); err != nil {
		t.Fatal(err)
	}
	g1 := grads(ref)
	if _, err := ref.TrainStepScaled(x[4*sample:], labels[4:], 0.5); err != nil {
		t.Fatal(err)
	}
	want := grads(ref)
	for i := range want {
		want[i] += g1[i]
	}
	got := grads(tr.net)
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("gradient element %d is %v, the two micro-batches' sum %v", i, got[i], want[i])
		}
	}

	whole := build(8)
	if _, err := whole.TrainStepScaled(x, labels, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bn1.running_mean", "layer1.0.bn1.running_var"} {
		var p, pr, pw *model.Param
		for i := range tr.net.Params {
			if tr.net.Params[i].Name == name {
				p, pr, pw = tr.net.Params[i], ref.Params[i], whole.Params[i]
			}
		}
		if p == nil {
			t.Fatalf("no parameter %s", name)
		}
		a, _ := tr.net.Get(p)
		b, _ := ref.Get(pr)
		cw, _ := whole.Get(pw)
		if a[0] != b[0] || a[0] == cw[0] {
			t.Errorf("%s[0]: %v after the accumulated step, %v after two micro-batches, %v after one pass over all", name, a[0], b[0], cw[0])
		}
	}
}

// A run accumulating gradients is deterministic and resumes exactly.
func TestAccumulatedRunResumesExactly(t *testing.T) {
	cfg := smallConfig(2)
	cfg.Train.AccumulateSteps = 4
	resumeMatchesUninterrupted(t, cfg, t.TempDir(), 3)
}
