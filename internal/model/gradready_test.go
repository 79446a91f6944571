package model

import (
	"testing"

	"resnet/internal/cpu"
)

// For every net of the zoo each layer's parameters are known, so the backward pass can say which part
// of the gradient store is final; and what it says is true: a gradient said final does not change
// afterwards, and the whole store is final at the end.
func TestGradientsReadyDuringBackward(t *testing.T) {
	for _, name := range Names() {
		spec, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		g, err := newGraph(spec)
		if err != nil {
			t.Fatal(err)
		}
		n := &Net{Spec: spec, Params: g.params, g: g, capacity: 1}
		n.tensorPlan() // places the parameters in the store
		if offsets, _ := n.readyOffsets(); offsets == nil {
			t.Errorf("%s: a trainable parameter is written by no layer nodeParams knows", name)
		}
	}

	dev := cpu.New()
	spec, err := Lookup("cifar_resnet8")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Build(dev, spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	if err := n.Init(1); err != nil {
		t.Fatal(err)
	}
	grads, err := cpu.Float32s(n.GradientStore())
	if err != nil {
		t.Fatal(err)
	}
	type final struct {
		from int
		vals []float32
	}
	var seen []final
	calls := 0
	if !n.OnGradientsReady(func(from int) error {
		calls++
		seen = append(seen, final{from, append([]float32(nil), grads[from:]...)})
		return nil
	}) {
		t.Fatal("cifar_resnet8 has a layer OnGradientsReady cannot map")
	}
	x := make([]float32, 2*3*32*32)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	if _, err := n.TrainStep(x, []int32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if calls < 3 || seen[len(seen)-1].from != 0 {
		t.Fatalf("%d reports, the last from %d; want several, the last from 0", calls, seen[len(seen)-1].from)
	}
	points := n.ReadyPoints()
	if len(points) != len(seen) {
		t.Fatalf("ReadyPoints %v, Backward reported %d", points, len(seen))
	}
	for i, f := range seen {
		if f.from != points[i] {
			t.Fatalf("report %d is from %d, ReadyPoints says %d", i, f.from, points[i])
		}
		for i, v := range f.vals {
			if grads[f.from+i] != v {
				t.Fatalf("gradient %d changed after it was reported final (from %d)", f.from+i, f.from)
			}
		}
	}
}
