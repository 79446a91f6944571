package model

import (
	"strings"
	"testing"
)

// The SE-ResNets' sizes are exact: timm 1.0.31's seresnet50/101/152 built in PyTorch (parameters), and
// their convolutions and linear layers at 224x224 (MACs; FACTS.md rounds them to 4.092, 7.806 and 11.520
// GMACs). Each SE module adds 2*C*R weights, R + C biases and 2*C*R MACs to its ResNet.
func TestSENetsMatchTimm(t *testing.T) {
	for _, c := range []struct {
		name         string
		params, macs int64
	}{
		{"seresnet50", 28088024, 4091699200},
		{"seresnet101", 49326872, 7806148608},
		{"seresnet152", 66821848, 11520204800},
		{"seresnext50_32x4d", 27559896, 4232994816}, // resnext50_32x4d's grouped bottlenecks with SE
	} {
		s, err := Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Describe(s)
		if err != nil {
			t.Fatal(err)
		}
		if st.Params != c.params || st.MACs != c.macs {
			t.Errorf("%s: %d params, %d MACs; want %d, %d", c.name, st.Params, st.MACs, c.params, c.macs)
		}
	}
}

// seWidth is timm's make_divisible(c/16, 8, round_limit=0).
func TestSEWidthRoundsAsTimm(t *testing.T) {
	for c, want := range map[int]int{256: 16, 512: 32, 1024: 64, 2048: 128, 4: 8, 64: 8, 100: 8, 136: 8, 200: 16, 392: 24} {
		if got := seWidth(c, 16); got != want {
			t.Errorf("seWidth(%d) = %d, want %d", c, got, want)
		}
	}
}

// The parameter table of seresnet50 is timm's state_dict: resnet50's names plus four per unit, with the
// SE convolutions' shapes.
func TestSENetParamNamesFollowTimm(t *testing.T) {
	s, _ := Lookup("seresnet50")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for _, p := range g.params {
		if _, dup := shapes[p.Name]; dup {
			t.Errorf("duplicate parameter %s", p.Name)
		}
		shapes[p.Name] = p.Shape
	}
	for name, want := range map[string][]int{
		"layer1.0.se.fc1.weight": {16, 256, 1, 1}, "layer1.0.se.fc1.bias": {16},
		"layer1.0.se.fc2.weight": {256, 16, 1, 1}, "layer1.0.se.fc2.bias": {256},
		"layer4.2.se.fc1.weight": {128, 2048, 1, 1}, "layer4.2.se.fc2.bias": {2048},
		"layer1.0.bn3.weight": {256}, "layer1.0.downsample.1.running_var": {256}, "fc.weight": {1000, 2048},
	} {
		if got, ok := shapes[name]; !ok || !SameShape(want, got) {
			t.Errorf("%s: shape %v (present %v), want %v", name, got, ok, want)
		}
	}
	se := 0
	for name := range shapes {
		if strings.Contains(name, ".se.") {
			se++
		}
	}
	// resnet50's 53+53*4+2 tensors, and 4 per each of the 16 units.
	if se != 16*4 || len(g.params) != 53+53*4+2+16*4 {
		t.Errorf("%d parameter tensors, %d of them SE; want %d and %d", len(g.params), se, 53+53*4+2+16*4, 16*4)
	}
}

// An SE net's gradients, through the gate, the excitation and the squeeze, match finite differences.
func TestSENetGradientCheck(t *testing.T) {
	s := tinySpec(true, 'B')
	s.SEReduction = 16
	checkGradients(t, s)
}

// SE modules gate residual units only, and add a shortcut of the branch's shape.
func TestSENetSpecErrors(t *testing.T) {
	plain := tinySpec(false, 'A')
	plain.SEReduction = 16
	if _, err := Describe(plain); err == nil || !strings.Contains(err.Error(), "se_reduction must be 0, or > 0 on a residual net") {
		t.Errorf("plain SE net: %v", err)
	}
	optionA := tinySpec(true, 'A')
	optionA.SEReduction = 16
	if _, err := Describe(optionA); err == nil || !strings.Contains(err.Error(), "the SE gate adds a shortcut of the branch's shape") {
		t.Errorf("option-A SE net: %v", err)
	}
}
