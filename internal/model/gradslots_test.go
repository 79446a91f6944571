package model

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/cpu"
)

// TestSharedGradientSlotsMatchSeparate trains one step of a member of every family, and of every kind of
// shortcut and closing node, with the activation gradients in shared slots and with storage of their
// own: the loss, every parameter gradient and every BN statistic must be the same bits. The shared nets
// must also need fewer gradient buffers than activations that own a gradient.
func TestSharedGradientSlotsMatchSeparate(t *testing.T) {
	type tc struct {
		name    string
		size    int
		dropout float64
	}
	cases := []tc{{"cifar_resnet20", 32, 0}, {"cifar_plain20", 32, 0}, {"cifar_preact_resnet110", 16, 0},
		{"cifar_wrn40_4", 16, 0.3}, {"cifar_densenet_bc100_k12", 16, 0}, {"resnet50", 32, 0}, {"resnetv2_50", 32, 0},
		{"resnext50_32x4d", 32, 0}, {"seresnet50", 32, 0}, {"densenet121", 32, 0}, {"inception_resnet_v2", 75, 0}}
	if testing.Short() {
		cases = cases[:5]
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Lookup(c.name)
			if err != nil {
				t.Fatal(err)
			}
			s.InputSize, s.NumClasses = c.size, 5
			if c.dropout > 0 {
				s.Dropout = c.dropout
			}
			shared, sharedSlots := oneStep(t, s, false)
			separate, separateSlots := oneStep(t, s, true)
			if sharedSlots >= separateSlots {
				t.Errorf("%d shared gradient buffers for %d activations with gradients: nothing shared", sharedSlots, separateSlots)
			}
			if len(shared) != len(separate) {
				t.Fatalf("%d values with shared slots, %d without", len(shared), len(separate))
			}
			for i, v := range shared {
				if math.Float32bits(v) != math.Float32bits(separate[i]) {
					t.Fatalf("value %d (of the loss, gradients and BN statistics): %v with shared slots, %v without", i, v, separate[i])
				}
			}
		})
	}
}

// oneStep builds s for a batch of 3, takes one training step and returns the loss, every gradient and
// every parameter value (BN statistics included), and the number of gradient buffers the net holds.
func oneStep(t *testing.T, s Spec, separate bool) ([]float32, int) {
	t.Helper()
	separateGradients = separate
	defer func() { separateGradients = false }()
	net, err := Build(cpu.New(), s, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if err := net.Init(7); err != nil {
		t.Fatal(err)
	}
	net.SetDropoutKey(3, 1)
	r, err := net.TrainStep(randomInput(net, 3, 9), []int32{0, 4, 2})
	if err != nil {
		t.Fatal(err)
	}
	out := []float32{float32(r.LossSum)}
	for _, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v...)
		if p.Kind.Trainable() {
			g := make([]float32, p.Shape.Numel())
			if err := net.Device().Download(g, p.Grad); err != nil {
				t.Fatal(fmt.Errorf("%s: %w", p.Name, err))
			}
			out = append(out, g...)
		}
	}
	return out, len(net.gradSlots)
}
