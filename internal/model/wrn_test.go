package model

import (
	"strings"
	"testing"
)

// Widths 16k, 32k, 64k; a projection only where the width or stride changes, reading the first unit's
// BN-ReLU of the input; dropout (when set) after the second BN-ReLU, before the second convolution.
func TestWideResNetLayout(t *testing.T) {
	s, err := Lookup("cifar_wrn28_10")
	if err != nil {
		t.Fatal(err)
	}
	s.Dropout = 0.3
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	expectShapes(t, g, map[string][]int{
		"stem.conv.weight":                         {16, 3, 3, 3},
		"stages.0.blocks.0.downsample.conv.weight": {160, 16, 1, 1},
		"stages.0.blocks.0.conv1.weight":           {160, 16, 3, 3},
		"stages.1.blocks.0.downsample.conv.weight": {320, 160, 1, 1},
		"stages.2.blocks.3.conv2.weight":           {640, 640, 3, 3},
		"norm.weight":                              {640},
		"head.fc.weight":                           {10, 640, 1, 1},
	})
	for _, p := range g.params {
		if strings.Contains(p.Name, ".blocks.1.downsample") {
			t.Errorf("%s: an identity unit has a projection", p.Name)
		}
	}
	norm1 := map[*act]bool{}
	drops := 0
	for i, nd := range g.nodes {
		switch n := nd.(type) {
		case *bnNode:
			if strings.HasSuffix(n.name, ".norm1") {
				norm1[n.y] = true
			}
		case *convNode:
			if strings.HasSuffix(n.name, ".downsample.conv") && !norm1[n.in] {
				t.Errorf("%s reads %s, not the unit's BN-ReLU", n.name, n.in.name)
			}
		case *dropoutNode:
			drops++
			next, ok := g.nodes[i+1].(*convNode)
			if !ok || !strings.HasSuffix(next.name, ".conv2") || next.in != n.out {
				t.Errorf("dropout %d is not the input of a conv2", n.layer)
			}
		}
	}
	if drops != 12 {
		t.Errorf("%d dropout layers, want 12 (one per unit)", drops)
	}
}

func TestWideResNetNames(t *testing.T) {
	for in, want := range map[string]string{
		"cifar_wrn28_10": "cifar_wrn28_10", "cifar-wrn-40-4": "cifar_wrn40_4", "CIFAR_WRN_16_8": "cifar_wrn16_8",
		"cifar_wide_resnet22_2": "cifar_wrn22_2", "cifar_wrn28": "cifar_wrn28_10",
	} {
		s, err := Lookup(in)
		if err != nil || s.Name != want || !s.PreAct || s.WidenFactor == 0 || s.Depth() != s.Layers[0]*6+4 {
			t.Errorf("Lookup(%q) = %q, %v; want %q", in, s.Name, err, want)
		}
	}
	for in, msg := range map[string]string{
		"cifar_wrn27_10": "depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...) (got \"cifar_wrn27_10\"); did you mean cifar_wrn28?",
		"cifar_wrn28_0":  "must be cifar_wrn<depth>_<k>, such as cifar_wrn28_10",
		"cifar_wrn28_x":  "must be cifar_wrn<depth>_<k>, such as cifar_wrn28_10",
		"cifar_wrn22":    "must be cifar_wrn<depth>_<k>, such as cifar_wrn28_10",
	} {
		if _, err := Lookup(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Lookup(%q) = %v, want an error containing %q", in, err, msg)
		}
	}
	s, _ := Lookup("cifar_wrn28_10")
	for p, msg := range map[float64]string{1: "dropout must be >= 0 and < 1 (got 1)", -0.1: "dropout must be >= 0 and < 1 (got -0.1)"} {
		s.Dropout = p
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("dropout %g: %v, want %q", p, err, msg)
		}
	}
	r, _ := Lookup("resnet50")
	r.Dropout = 0.3
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "dropout needs pre-activation basic units") {
		t.Errorf("dropout on resnet50: %v", err)
	}
}
