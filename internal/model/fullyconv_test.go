package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"resnet/internal/cpu"
)

// trainedNet builds spec on the CPU with weights from seed and running statistics moved away from their
// initial values by a few training-mode forwards, so inference exercises every BN term.
func trainedNet(t *testing.T, s Spec, batch int) *Net {
	t.Helper()
	net, err := Build(cpu.New(), s, batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	if err := net.Init(7); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := net.Forward(randomInput(net, batch, uint64(i)), batch, true); err != nil {
			t.Fatal(err)
		}
	}
	return net
}

func randomInput(net *Net, nb int, seed uint64) []float32 {
	c, h, w := net.InputShape()
	rng := rand.New(rand.NewPCG(seed, 2))
	x := make([]float32, nb*c*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func smallResNet18(inputSize int) Spec {
	s, _ := Lookup("resnet18")
	s.InputSize = inputSize
	s.NumClasses = 5
	return s
}

// At the training input size the fully-convolutional net is the ordinary one: the FC layer and the
// spatial average commute.
func TestFullyConvMatchesNetAtTrainingSize(t *testing.T) {
	for _, s := range []Spec{tinySpec(true, 'B'), tinySpec(true, 'A'), tinySpec(false, 'A'), smallResNet18(64), tinyPreAct(Bottleneck, 'B'), tinyDenseNet(ImageNet)} {
		name := s.Name + "-plain"
		if s.Residual {
			name = s.Name + "-" + string(s.Shortcut)
		}
		t.Run(name, func(t *testing.T) {
			const nb = 3
			net := trainedNet(t, s, nb)
			x := randomInput(net, nb, 11)
			if err := net.Forward(x, nb, false); err != nil {
				t.Fatal(err)
			}
			want, err := net.Logits(nil)
			if err != nil {
				t.Fatal(err)
			}
			fc, err := BuildFullyConv(net, s.InputSize, s.InputSize, nb)
			if err != nil {
				t.Fatal(err)
			}
			defer fc.Free()
			if err := fc.Forward(x, nb, false); err != nil {
				t.Fatal(err)
			}
			got, err := fc.Logits(nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5+1e-4*math.Abs(float64(want[i])) {
					t.Fatalf("logit %d: fully-convolutional %v, net %v", i, got[i], want[i])
				}
			}
			// The averaged logits are the mean of the score map plus the bias.
			k, mh, mw, ok := fc.ScoreMapShape()
			if !ok {
				t.Fatal("ScoreMapShape: not fully convolutional")
			}
			m, err := fc.ScoreMap(nil)
			if err != nil {
				t.Fatal(err)
			}
			bias, _ := net.Param(s.ClassifierName() + ".bias")
			b, _ := net.Get(bias)
			for i := 0; i < nb*k; i++ {
				var sum float64
				for _, v := range m[i*mh*mw : (i+1)*mh*mw] {
					sum += float64(v)
				}
				if avg := sum/float64(mh*mw) + float64(b[i%k]); math.Abs(avg-float64(got[i])) > 1e-4 {
					t.Fatalf("score %d: map average %v, logit %v", i, avg, got[i])
				}
			}
		})
	}
}

// The class-score map of ResNet-18 at the multi-scale test's shorter sides, for a 4:3 image: the
// network's total stride is 32, every stride-2 layer rounding up.
func TestFullyConvScoreMapShapes(t *testing.T) {
	base := trainedNet(t, smallResNet18(64), 1)
	for _, tc := range []struct{ h, w, mh, mw int }{
		{224, 298, 7, 10},
		{256, 341, 8, 11},
		{384, 512, 12, 16},
		{480, 640, 15, 20},
		{640, 853, 20, 27},
		{64, 64, 2, 2},
	} {
		fc, err := BuildFullyConv(base, tc.h, tc.w, 1)
		if err != nil {
			t.Fatal(err)
		}
		k, mh, mw, ok := fc.ScoreMapShape()
		fc.Free()
		if !ok || k != 5 || mh != tc.mh || mw != tc.mw {
			t.Errorf("%dx%d input: score map %dx%dx%d, want 5x%dx%d", tc.h, tc.w, k, mh, mw, tc.mh, tc.mw)
		}
	}
	// A fully-convolutional net runs on a non-square input and averages the whole map.
	fc, err := BuildFullyConv(base, 96, 128, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Free()
	if err := fc.Forward(randomInput(fc, 2, 5), 2, false); err != nil {
		t.Fatal(err)
	}
	logits, err := fc.Logits(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(logits) != 2*5 {
		t.Fatalf("%d logits, want 10", len(logits))
	}
	if _, err := BuildFullyConv(fc, 64, 64, 1); err == nil {
		t.Error("BuildFullyConv accepted a fully-convolutional base")
	}
	if err := fc.Init(1); err == nil {
		t.Error("Init of a fully-convolutional net (whose parameters belong to another net) succeeded")
	}
}

// Momentum 1/k on the k-th batch leaves the running statistics at the plain average of the batches'
// statistics; each batch's own statistics are read off a forward with momentum 1.
func TestBNMomentumAveragesBatches(t *testing.T) {
	s := tinySpec(true, 'B')
	const nb, batches = 4, 3
	net := trainedNet(t, s, nb)
	inputs := make([][]float32, batches)
	for i := range inputs {
		inputs[i] = randomInput(net, nb, uint64(20+i))
	}
	var names []string
	for _, p := range net.Params {
		if p.Kind == BNRunningMean || p.Kind == BNRunningVar {
			names = append(names, p.Name)
		}
	}
	read := func() map[string][]float32 {
		out := map[string][]float32{}
		for _, name := range names {
			p, _ := net.Param(name)
			v, err := net.Get(p)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = v
		}
		return out
	}
	want := map[string][]float64{}
	if err := net.SetBNMomentum(1); err != nil {
		t.Fatal(err)
	}
	for _, x := range inputs {
		if err := net.Forward(x, nb, true); err != nil {
			t.Fatal(err)
		}
		for name, v := range read() {
			if want[name] == nil {
				want[name] = make([]float64, len(v))
			}
			for i := range v {
				want[name][i] += float64(v[i]) / batches
			}
		}
	}
	for k, x := range inputs {
		if err := net.SetBNMomentum(1 / float64(k+1)); err != nil {
			t.Fatal(err)
		}
		if err := net.Forward(x, nb, true); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range read() {
		for i := range v {
			if math.Abs(float64(v[i])-want[name][i]) > 1e-5*(1+math.Abs(want[name][i])) {
				t.Fatalf("%s[%d]: %v after the 1/k series, want the batch average %v", name, i, v[i], want[name][i])
			}
		}
	}
	for _, m := range []float64{0, -0.5, 1.5, math.NaN()} {
		if err := net.SetBNMomentum(m); err == nil {
			t.Errorf("SetBNMomentum(%v) accepted", m)
		}
	}
}
