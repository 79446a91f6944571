package model

import (
	"testing"

	"resnet/internal/cpu"
)

// ImageNet nets train on CIFAR-sized inputs: at 32x32 (and at 7x7) the last stages of resnet18 and
// resnet50 have 1x1 maps, which stay 4-D activations like any other; only the pooled features and the
// logits are (N, C).
func TestImageNetNetsTrainOnSmallInputs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		classes int
		last    [3]int // layer4's output
	}{
		{"resnet18", 32, 10, [3]int{512, 1, 1}},
		{"resnet18", 7, 1, [3]int{512, 1, 1}},
		{"resnet50", 32, 10, [3]int{2048, 1, 1}},
	} {
		s, err := Lookup(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		s.InputSize, s.NumClasses = tc.size, tc.classes
		st, err := Describe(s)
		if err != nil {
			t.Fatal(err)
		}
		l4 := st.Stages[4]
		if got := [3]int{l4.C, l4.H, l4.W}; got != tc.last {
			t.Errorf("%s at %dx%d: layer4 gives %dx%dx%d, want %dx%dx%d", tc.name, tc.size, tc.size, got[0], got[1], got[2], tc.last[0], tc.last[1], tc.last[2])
		}
		net, err := Build(cpu.New(), s, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := net.Init(1); err != nil {
			t.Fatal(err)
		}
		x := randomInput(net, 2, 3)
		r, err := net.TrainStep(x, []int32{0, int32(tc.classes - 1)})
		if err != nil {
			t.Fatalf("%s at %dx%d: %v", tc.name, tc.size, tc.size, err)
		}
		logits, err := net.Logits(nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.N != 2 || len(logits) != 2*tc.classes {
			t.Errorf("%s at %dx%d: %d examples scored, %d logits; want 2 and %d", tc.name, tc.size, tc.size, r.N, len(logits), 2*tc.classes)
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
		if tc.classes > 1 && nonzero == 0 {
			t.Errorf("%s at %dx%d: layer4.1.conv2 got no gradient", tc.name, tc.size, tc.size)
		}
		net.Free()
	}
}
