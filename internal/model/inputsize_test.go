package model

import (
	"errors"
	"testing"

	"resnet/internal/cpu"
)

// The smallest input side of each kind of net, from the stem, pooling and stride arithmetic. Padded
// convolutions map a side n >= 1 to (n-1)/s + 1 >= 1, so nets without option-A shortcuts take any side.
// An option-A shortcut needs its input side to be exactly twice its output side, i.e. even: a CIFAR net's
// two stride-2 stages need a side divisible by 4 (smallest 4); an ImageNet net's stem and max-pool give
// ceil(n/4), which its three stride-2 stages need to be a multiple of 8: n in 29..32 (smallest 29).
func TestMinInputSize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shortcut byte
		want     int
	}{
		{"resnet18", 'B', 1}, {"resnet50", 'C', 1}, {"plain34", 'B', 1}, {"cifar_plain20", 'A', 1},
		{"cifar_resnet20", 'A', 4}, {"cifar_resnet20", 'B', 1},
		{"resnet18", 'A', 29}, {"resnet50", 'A', 29}, {"resnet152", 'A', 29},
	} {
		s, err := Lookup(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		s.Shortcut = tc.shortcut
		got, err := MinInputSize(s)
		if err != nil || got != tc.want {
			t.Errorf("%s, shortcut %c: MinInputSize %d, %v; want %d", tc.name, tc.shortcut, got, err, tc.want)
		}
	}
}

// Sizes a net cannot take are refused when the graph is built, naming the layer and the sizes that work.
func TestInputSizeErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shortcut byte
		size     int
		want     string
	}{
		{"resnet18", 'A', 16, "model resnet18 needs inputs of at least 29x29 (got 16x16: layer4.0: an option-A shortcut cannot subsample 256x1x1 to 512x1x1)"},
		{"resnet18", 'A', 33, "model resnet18 cannot take 33x33 inputs (layer2.0: an option-A shortcut cannot subsample 64x9x9 to 128x5x5); the nearest sizes it takes are 32x32 and 61x61"},
		{"cifar_resnet20", 'A', 30, "model cifar_resnet20 cannot take 30x30 inputs (layer3.0: an option-A shortcut cannot subsample 32x15x15 to 64x8x8); the nearest sizes it takes are 28x28 and 32x32"},
		{"cifar_resnet20", 'A', 3, "model cifar_resnet20 needs inputs of at least 4x4 (got 3x3: layer2.0: an option-A shortcut cannot subsample 16x3x3 to 32x2x2)"},
	} {
		s, _ := Lookup(tc.name)
		s.Shortcut, s.InputSize = tc.shortcut, tc.size
		_, err := Describe(s)
		var ie *InputSizeError
		if !errors.As(err, &ie) || err.Error() != tc.want {
			t.Errorf("%s at %d:\n got %v\nwant %s", tc.name, tc.size, err, tc.want)
		}
	}
	// The fully-convolutional form at a shape the strides cannot take.
	s, _ := Lookup("cifar_resnet20")
	s.NumClasses = 3
	base := trainedNet(t, s, 1)
	_, err := BuildFullyConv(base, 30, 32, 1)
	want := "model cifar_resnet20 cannot take 32x30 inputs (layer3.0: an option-A shortcut cannot subsample 32x15x16 to 64x8x8)"
	if err == nil || err.Error() != want {
		t.Errorf("BuildFullyConv at 32x30:\n got %v\nwant %s", err, want)
	}
}

// ImageNet nets train on CIFAR-sized inputs: at 32x32 (and at 7x7) the last stages of resnet18 and
// resnet50 have 1x1 maps, which stay 4-D activations like any other; only the pooled features and the
// logits are (N, C).
func TestImageNetNetsTrainOnSmallInputs(t *testing.T) {
	at := func(name string, size, classes int) Spec {
		s, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		s.InputSize, s.NumClasses = size, classes
		return s
	}
	for _, s := range []Spec{at("resnet18", 32, 10), at("resnet18", 7, 1), at("resnet50", 32, 10)} {
		name, size, classes := s.Name, s.InputSize, s.NumClasses
		wantLast := [3]int{s.Widths[3] * s.Block.Expansion(), 1, 1} // layer4's output
		st, err := Describe(s)
		if err != nil {
			t.Fatal(err)
		}
		l4 := st.Stages[4]
		if got := [3]int{l4.C, l4.H, l4.W}; got != wantLast {
			t.Errorf("%s at %dx%d: layer4 gives %dx%dx%d, want %dx%dx%d", name, size, size, got[0], got[1], got[2], wantLast[0], wantLast[1], wantLast[2])
		}
		net, err := Build(cpu.New(), s, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := net.Init(1); err != nil {
			t.Fatal(err)
		}
		x := randomInput(net, 2, 3)
		r, err := net.TrainStep(x, []int32{0, int32(classes - 1)})
		if err != nil {
			t.Fatalf("%s at %dx%d: %v", name, size, size, err)
		}
		logits, err := net.Logits(nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.N != 2 || len(logits) != 2*classes {
			t.Errorf("%s at %dx%d: %d examples scored, %d logits; want 2 and %d", name, size, size, r.N, len(logits), 2*classes)
		}
		w, _ := net.Param("layer4.1.conv2.weight")
		g := make([]float32, w.Shape.Numel())
		if err := net.Device().Download(g, w.Grad); err != nil {
			t.Fatal(err)
		}
		nonzero := 0
		for _, v := range g {
			if v != 0 {
				nonzero++
			}
		}
		// With one class the loss is 0 whatever the weights, and so is every gradient.
		if classes > 1 && nonzero == 0 {
			t.Errorf("%s at %dx%d: layer4.1.conv2 got no gradient", name, size, size)
		}
		net.Free()
	}
}
