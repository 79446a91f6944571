package model

import (
	"strings"
	"testing"

	"resnet/internal/cpu"
)

// tinyPreAct is a pre-activation net small enough for a finite-difference check of every parameter
// tensor: a first stage of two units (an identity shortcut, and for the bottleneck a projection at stride
// 1) and a second of one unit that widens and strides (option A, or a projection).
func tinyPreAct(block BlockKind, shortcut byte) Spec {
	s := tinySpec(true, shortcut)
	s.Name, s.Block, s.PreAct = "tiny_preact", block, true
	s.Layers = []int{2, 1}
	if block == Bottleneck {
		s.Widths = []int{4, 8}
	}
	return s
}

// The parameter table uses timm's ResNetV2 names, in its state_dict order per unit, and the classifier is
// timm's 1x1 convolution.
func TestPreActParameterNames(t *testing.T) {
	s, err := Lookup("resnetv2_50")
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	shapes := map[string][]int{}
	for _, p := range g.params {
		names = append(names, p.Name)
		shapes[p.Name] = p.Shape
	}
	joined := strings.Join(names, " ")
	for _, want := range []string{
		"stem.conv.weight stages.0.blocks.0.norm1.weight stages.0.blocks.0.norm1.bias " +
			"stages.0.blocks.0.norm1.running_mean stages.0.blocks.0.norm1.running_var stages.0.blocks.0.downsample.conv.weight " +
			"stages.0.blocks.0.conv1.weight stages.0.blocks.0.norm2.weight",
		"stages.0.blocks.0.conv3.weight stages.0.blocks.1.norm1.weight",
		"stages.3.blocks.2.conv3.weight norm.weight norm.bias norm.running_mean norm.running_var head.fc.weight head.fc.bias",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("parameter names lack the sequence %q", want)
		}
	}
	if strings.Contains(joined, "stages.0.blocks.1.downsample") || strings.Contains(joined, "stages.1.blocks.1.downsample") {
		t.Error("a unit that keeps its shape has a projection")
	}
	for name, want := range map[string][]int{
		"stem.conv.weight":                         {64, 3, 7, 7},
		"stages.0.blocks.0.norm1.weight":           {64},
		"stages.1.blocks.0.downsample.conv.weight": {512, 256, 1, 1},
		"stages.1.blocks.0.conv2.weight":           {128, 128, 3, 3},
		"norm.weight":                              {2048},
		"head.fc.weight":                           {1000, 2048, 1, 1},
	} {
		if !SameShape(want, shapes[name]) {
			t.Errorf("%s has shape %v, want %v", name, shapes[name], want)
		}
	}
}

// The spec table: depths, blocks and shortcuts of the CIFAR members, and the spellings.
func TestPreActSpecs(t *testing.T) {
	for in, want := range map[string]string{
		"resnetv2_50": "resnetv2_50", "ResNetV2-101": "resnetv2_101", "preact_resnet50": "resnetv2_50",
		"cifar_preact_resnet164": "cifar_preact_resnet164", "cifar_preresnet1001": "cifar_preact_resnet1001",
		"cifar-preact-res110": "cifar_preact_resnet110", "cifar_preact_resnet56": "cifar_preact_resnet56",
	} {
		s, err := Lookup(in)
		if err != nil || s.Name != want || !s.PreAct {
			t.Errorf("Lookup(%q) = %q (preact %v), %v; want %q", in, s.Name, s.PreAct, err, want)
		}
	}
	for name, want := range map[string]struct {
		block    BlockKind
		n        int
		shortcut byte
	}{"cifar_preact_resnet110": {Basic, 18, 'A'}, "cifar_preact_resnet164": {Bottleneck, 18, 'B'},
		"cifar_preact_resnet1001": {Bottleneck, 111, 'B'}} {
		s, _ := Lookup(name)
		if s.Block != want.block || s.Layers[0] != want.n || s.Shortcut != want.shortcut || s.Depth() != s.Layers[0]*3*map[BlockKind]int{Basic: 2, Bottleneck: 3}[s.Block]+2 {
			t.Errorf("%s: %s x %v, shortcut %c, depth %d", name, s.Block, s.Layers, s.Shortcut, s.Depth())
		}
		if s.Depth() != map[string]int{"cifar_preact_resnet110": 110, "cifar_preact_resnet164": 164, "cifar_preact_resnet1001": 1001}[name] {
			t.Errorf("%s: depth %d", name, s.Depth())
		}
	}
	for in, msg := range map[string]string{
		"resnetv2_34":             `depth must be 50 or 101 (got "resnetv2_34"); did you mean resnetv2_50?`,
		"cifar_preact_resnet165":  "depth must be 6n+2 below 164",
		"cifar_preact_resnet1000": "did you mean cifar_preact_resnet1001?",
	} {
		if _, err := Lookup(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Lookup(%q) error %v, want it to contain %q", in, err, msg)
		}
	}
}

// Zero-init of the residual branch zeroes each unit's last convolution, as timm's zero_init_last does (a
// pre-activation unit has no BN after it).
func TestPreActZeroInitLast(t *testing.T) {
	s, _ := Lookup("cifar_preact_resnet164")
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
		if p.Kind != ConvWeight {
			continue
		}
		v, _ := net.Get(p)
		allZero := true
		for _, x := range v {
			allZero = allZero && x == 0
		}
		if allZero != strings.HasSuffix(p.Name, ".conv3.weight") {
			t.Errorf("%s: all zero %v", p.Name, allZero)
		}
		if allZero {
			zeroed++
		}
	}
	if zeroed != 54 {
		t.Errorf("%d convolutions zero-initialised, want 54 (one per unit)", zeroed)
	}
}

// The exact MACs of timm's nets at 224x224 (convolutions and the classifier), and the BN parameters the
// CIFAR-1001 count of the paper leaves out.
func TestPreActExactCounts(t *testing.T) {
	for name, want := range map[string]int64{"resnetv2_50": 4089184256, "resnetv2_101": 7801405440} {
		s, _ := Lookup(name)
		st, err := Describe(s)
		if err != nil || st.MACs != want {
			t.Errorf("%s: %d MACs, %v; want %d", name, st.MACs, err, want)
		}
	}
	s, _ := Lookup("cifar_preact_resnet1001")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	var bn int64
	for _, p := range g.params {
		if p.Kind == BNWeight || p.Kind == BNBias {
			bn += int64(p.Shape.Numel())
		}
	}
	if bn != 149216 {
		t.Errorf("cifar_preact_resnet1001 has %d BN parameters, want 149216", bn)
	}
}
