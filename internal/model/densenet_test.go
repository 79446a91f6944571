package model

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// tinyDenseNet is a DenseNet of growth rate 2 on 8x8 inputs, small enough for a finite-difference check:
// with the CIFAR stem (a 3x3 convolution), two blocks of two layers and the transition between them; with
// the ImageNet stem (7x7/2, BN-ReLU, 3x3/2 max-pool), one block of two layers on its 2x2 maps (a second
// block would see 1x1 maps, whose BN over the batch of 4 is too close to chaotic for finite differences).
func tinyDenseNet(family string) Spec {
	s := Spec{
		Name: "tiny_densenet_" + family, Family: family, Block: DenseLayer, Topology: densenetTopology,
		Layers: []int{2, 2}, GrowthRate: 2, StemWidth: 4, InChannels: 3, InputSize: 8, NumClasses: 3,
	}
	if family == ImageNet {
		s.Layers = []int{2}
	}
	return s
}

// The parameter table is torchvision's state_dict without num_batches_tracked: 120 convolutions and 121
// BNs of four tensors each in densenet121 (606 tensors, as PyTorch lists them), named and shaped as there.
func TestDenseNetParamNamesFollowTorchvision(t *testing.T) {
	s, _ := Lookup("densenet121")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.params) != 120+121*4+2 {
		t.Errorf("%d parameter tensors, want %d", len(g.params), 120+121*4+2)
	}
	expectShapes(t, g, map[string][]int{
		"features.conv0.weight":                               {64, 3, 7, 7},
		"features.norm0.running_var":                          {64},
		"features.denseblock1.denselayer1.norm1.weight":       {64},
		"features.denseblock1.denselayer1.conv1.weight":       {128, 64, 1, 1},
		"features.denseblock1.denselayer1.norm2.bias":         {128},
		"features.denseblock1.denselayer1.conv2.weight":       {32, 128, 3, 3},
		"features.denseblock1.denselayer6.norm1.weight":       {224},
		"features.transition1.norm.running_mean":              {256},
		"features.transition1.conv.weight":                    {128, 256, 1, 1},
		"features.denseblock3.denselayer24.conv1.weight":      {128, 992, 1, 1},
		"features.transition3.conv.weight":                    {512, 1024, 1, 1},
		"features.denseblock4.denselayer16.norm1.weight":      {992},
		"features.norm5.weight":                               {1024},
		"classifier.weight":                                   {1000, 1024},
		"classifier.bias":                                     {1000},
		"features.denseblock4.denselayer16.conv2.weight":      {32, 128, 3, 3},
		"features.denseblock2.denselayer12.norm2.running_var": {128},
	})
	if s.ClassifierName() != "classifier" {
		t.Errorf("classifier %q, want torchvision's classifier", s.ClassifierName())
	}

	c, _ := Lookup("cifar_densenet_bc100_k12")
	g, err = newGraph(c)
	if err != nil {
		t.Fatal(err)
	}
	expectShapes(t, g, map[string][]int{
		"features.conv0.weight":                          {24, 3, 3, 3},
		"features.denseblock1.denselayer1.conv1.weight":  {48, 24, 1, 1},
		"features.denseblock1.denselayer16.conv2.weight": {12, 48, 3, 3},
		"features.transition1.conv.weight":               {108, 216, 1, 1},
		"features.transition2.conv.weight":               {150, 300, 1, 1},
		"features.norm5.weight":                          {342},
		"classifier.weight":                              {10, 342},
	})
	for _, p := range g.params {
		if strings.HasPrefix(p.Name, "features.norm0") || strings.HasPrefix(p.Name, "features.transition3") {
			t.Errorf("the CIFAR DenseNet has %s", p.Name)
		}
	}
}

// The summary's stages: the stem, each dense block (its layer count as blocks) and transition, norm5 and
// the head, with the maps torchvision's features give at 224x224.
func TestDenseNetStages(t *testing.T) {
	s, _ := Lookup("densenet121")
	st, err := Describe(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range st.Stages {
		got = append(got, fmt.Sprintf("%s %d %dx%dx%d", x.Name, x.Blocks, x.C, x.H, x.W))
	}
	want := []string{"stem 0 64x56x56", "denseblock1 6 256x56x56", "transition1 0 128x28x28",
		"denseblock2 12 512x28x28", "transition2 0 256x14x14", "denseblock3 24 1024x14x14",
		"transition3 0 512x7x7", "denseblock4 16 1024x7x7", "norm5 0 1024x7x7", "head 0 1000x1x1"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("stages\n got %v\nwant %v", got, want)
	}
	for name, want := range map[string]int{"densenet121": 121, "densenet161": 161, "densenet201": 201, "cifar_densenet_bc100_k12": 100} {
		if s, _ := Lookup(name); s.Depth() != want {
			t.Errorf("%s: depth %d, want %d", name, s.Depth(), want)
		}
	}
	// torchvision's DenseNet metadata gives min_size 29: the 2x2 pool of transition3 needs a 2x2 map.
	if m, err := MinInputSize(s); err != nil || m != 29 {
		t.Errorf("densenet121 takes inputs from %d (%v), want 29", m, err)
	}
}

// The names: the listed four and DenseNet-BC in its spellings, any CIFAR depth 6n+4 and growth rate, and
// errors that say what is accepted.
func TestDenseNetNames(t *testing.T) {
	for in, want := range map[string]string{
		"densenet121": "densenet121", "DenseNet-169": "densenet169", "densenet_201": "densenet201",
		"cifar_densenet_bc100": "cifar_densenet_bc100_k12", "CIFAR-DenseNet-BC-100-k12": "cifar_densenet_bc100_k12",
		"cifar_densenet_bc40_k12": "cifar_densenet_bc40_k12", "cifar_densenet_bc250_k24": "cifar_densenet_bc250_k24",
	} {
		s, err := Lookup(in)
		if err != nil || s.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", in, s.Name, err, want)
		}
	}
	for in, msg := range map[string]string{
		"densenet122":              `depth must be one of 121, 161, 169, 201 (got "densenet122"); did you mean densenet121?`,
		"cifar_densenet_bc101_k12": `depth must be 6n+4 with n >= 1 (10, 16, 22, ..., 100, ...) (got "cifar_densenet_bc101_k12"); did you mean cifar_densenet_bc100?`,
		"cifar_densenet_bc100_12":  "must be cifar_densenet_bc<depth>_k<growth rate>, such as cifar_densenet_bc100_k12",
		"cifar_densenet_bc40":      "must be cifar_densenet_bc<depth>_k<growth rate>",
	} {
		if _, err := Lookup(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Lookup(%q) error %v, want it to contain %q", in, err, msg)
		}
	}
	if k := KnownNames(); !strings.Contains(k, "densenet121/161/169/201") || !strings.Contains(k, "cifar_densenet_bcN_kK with N = 6n+4 and K the growth rate") {
		t.Errorf("KnownNames() = %s", k)
	}
	s, _ := Lookup("densenet121")
	if got, want := s.Wiring()+"; "+s.Units(), "densely connected; dense layers (BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k=32), transitions halving channels"; got != want {
		t.Errorf("densenet121 summary %q, want %q", got, want)
	}
}

// A DenseNet takes none of the settings of residual nets.
func TestDenseNetSpecErrors(t *testing.T) {
	base, _ := Lookup("densenet121")
	for _, tc := range []struct {
		edit func(*Spec)
		msg  string
	}{
		{func(s *Spec) { s.Shortcut = 'B' }, "a DenseNet has no shortcuts (got shortcut B); leave model.shortcut empty"},
		{func(s *Spec) { s.ZeroInitResidual = true }, "set model.stride_in_1x1 and model.zero_init_residual to false"},
		{func(s *Spec) { s.Dropout = 0.2 }, "dropout needs pre-activation basic units"},
		{func(s *Spec) { s.GrowthRate = 0 }, "growth rate and stem width must be >= 1 (got 0 and 64)"},
		{func(s *Spec) { s.Layers = []int{6, 0} }, "dense block 2 needs at least one layer"},
	} {
		s := base
		s.Layers = append([]int(nil), base.Layers...)
		tc.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("error %v, want it to contain %q", err, tc.msg)
		}
	}
}

// Init is torchvision's DenseNet's: convolutions He-normal over their fan-in, BN gamma 1 and beta 0, the
// classifier's weight uniform in +-1/sqrt(features) and its bias 0.
func TestDenseNetInit(t *testing.T) {
	s, _ := Lookup("cifar_densenet_bc100_k12")
	net := trainedNet(t, s, 1)
	if err := net.Init(3); err != nil {
		t.Fatal(err)
	}
	for _, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		switch p.Kind {
		case ConvWeight:
			if len(v) < 5000 {
				continue // too few values for a tight estimate of the deviation
			}
			ss := 0.0
			for _, x := range v {
				ss += float64(x) * float64(x)
			}
			std, want := math.Sqrt(ss/float64(len(v))), math.Sqrt(2/float64(p.Shape[1]*p.Shape[2]*p.Shape[3]))
			if math.Abs(std/want-1) > 0.05 {
				t.Errorf("%s %v: deviation %.4f, want %.4f (fan-in)", p.Name, p.Shape, std, want)
			}
		case FCWeight:
			bound := 1 / math.Sqrt(float64(p.Shape[1]))
			for _, x := range v {
				if math.Abs(float64(x)) > bound {
					t.Fatalf("%s: %g outside +-%g", p.Name, x, bound)
				}
			}
		case FCBias, BNBias:
			for _, x := range v {
				if x != 0 {
					t.Fatalf("%s: %g, want 0", p.Name, x)
				}
			}
		case BNWeight:
			for _, x := range v {
				if x != 1 {
					t.Fatalf("%s: %g, want 1", p.Name, x)
				}
			}
		}
	}
}

// Every parameter's gradient of a tiny DenseNet, with either stem, agrees with finite differences: the
// concatenations that feed each layer and the block's output, the transition's average pool, norm5.
func TestDenseNetGradientCheck(t *testing.T) {
	for _, family := range []string{CIFAR, ImageNet} {
		t.Run(family, func(t *testing.T) { checkGradients(t, tinyDenseNet(family)) })
	}
}
