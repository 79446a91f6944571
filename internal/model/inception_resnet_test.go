package model

import (
	"errors"
	"math"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/cpu"
)

// inception_resnet_v2's size is timm 1.0.31's, built in PyTorch: its parameter count, and the multiply-adds
// of its convolutions and classifier on one 299x299 image, counted with forward hooks. Its maps are 35x35,
// 17x17 and 8x8 after the stem and the two reductions, and it counts 176 weighted layers on its longest
// path.
func TestInceptionResNetV2MatchesTimm(t *testing.T) {
	s, err := Lookup("inception_resnet_v2")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Describe(s)
	if err != nil {
		t.Fatal(err)
	}
	if st.Params != 55843464 || st.MACs != 13155794016 {
		t.Errorf("%d params, %d MACs; want 55843464 and 13155794016", st.Params, st.MACs)
	}
	want := []string{
		"stem 192x35x35", "mixed_5b 320x35x35", "repeat 320x35x35", "mixed_6a 1088x17x17", "repeat_1 1088x17x17",
		"mixed_7a 2080x8x8", "repeat_2 2080x8x8", "block8 2080x8x8", "conv2d_7b 1536x8x8", "head 1000x1x1",
	}
	var got []string
	for _, g := range st.Stages {
		got = append(got, g.Name+" "+(&act{c: g.C, h: g.H, w: g.W}).shape())
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("stages %v\nwant %v", got, want)
	}
	if d := s.Depth(); d != 176 {
		t.Errorf("depth %d, want 176", d)
	}
	if got, want := s.Units(), "Inception-ResNet-A x10 (scale 0.17), -B x20 (0.10), -C x10 (0.20, the last 1.00 without ReLU), BN eps 0.001"; got != want {
		t.Errorf("Units() = %q\nwant %q", got, want)
	}
}

// The parameter table is timm's state_dict without its 204 num_batches_tracked: 1102 tensors, with its
// names and shapes, the rectangular kernels included; every BN has epsilon 1e-3.
func TestInceptionResNetV2ParamNamesFollowTimm(t *testing.T) {
	s, _ := Lookup("inception_resnet_v2")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.params) != 1102 {
		t.Errorf("%d parameter tensors, want 1102", len(g.params))
	}
	names := map[string]bool{}
	for _, p := range g.params {
		if names[p.Name] {
			t.Errorf("duplicate parameter %s", p.Name)
		}
		names[p.Name] = true
	}
	expectShapes(t, g, map[string][]int{
		"conv2d_1a.conv.weight": {32, 3, 3, 3}, "conv2d_1a.bn.running_var": {32}, "conv2d_4a.conv.weight": {192, 80, 3, 3},
		"mixed_5b.branch0.conv.weight": {96, 192, 1, 1}, "mixed_5b.branch1.1.conv.weight": {64, 48, 5, 5},
		"mixed_5b.branch3.1.conv.weight": {64, 192, 1, 1}, "repeat.9.branch2.2.conv.weight": {64, 48, 3, 3},
		"repeat.0.conv2d.weight": {320, 128, 1, 1}, "repeat.0.conv2d.bias": {320},
		"mixed_6a.branch0.conv.weight": {384, 320, 3, 3}, "mixed_6a.branch1.2.conv.weight": {384, 256, 3, 3},
		"repeat_1.19.branch1.1.conv.weight": {160, 128, 1, 7}, "repeat_1.19.branch1.2.conv.weight": {192, 160, 7, 1},
		"repeat_1.0.conv2d.bias": {1088}, "mixed_7a.branch2.2.conv.weight": {320, 288, 3, 3},
		"repeat_2.8.branch1.1.conv.weight": {224, 192, 1, 3}, "repeat_2.8.branch1.2.conv.weight": {256, 224, 3, 1},
		"block8.conv2d.weight": {2080, 448, 1, 1}, "block8.conv2d.bias": {2080}, "conv2d_7b.bn.weight": {1536},
		"classif.weight": {1000, 1536}, "classif.bias": {1000},
	})
	for _, nd := range g.nodes {
		if b, ok := nd.(*bnNode); ok && b.eps != 1e-3 {
			t.Fatalf("%s: BN epsilon %g, want 1e-3", b.name, b.eps)
		}
	}
}

// The blocks concatenate their branches in timm's order, the pooling branch last; the residual units close
// with the scale of their run, and block8 without its ReLU.
func TestInceptionResNetV2BranchOrderAndScales(t *testing.T) {
	s, _ := Lookup("inception_resnet_v2")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]string{}
	closes := map[string]backend.ScaledResidualParams{}
	for _, nd := range g.nodes {
		switch n := nd.(type) {
		case *concatNode:
			var names []string
			for _, p := range n.parts {
				names = append(names, p.name)
			}
			parts[n.name] = strings.Join(names, " ")
		case *scaledResidualNode:
			closes[n.name] = n.p
		}
	}
	for block, want := range map[string]string{
		"mixed_5b":       "mixed_5b.branch0.bn mixed_5b.branch1.1.bn mixed_5b.branch2.2.bn mixed_5b.branch3.1.bn",
		"mixed_6a":       "mixed_6a.branch0.bn mixed_6a.branch1.2.bn mixed_6a.branch2",
		"mixed_7a":       "mixed_7a.branch0.1.bn mixed_7a.branch1.1.bn mixed_7a.branch2.2.bn mixed_7a.branch3",
		"repeat.3.cat":   "repeat.3.branch0.bn repeat.3.branch1.1.bn repeat.3.branch2.2.bn",
		"repeat_1.0.cat": "repeat_1.0.branch0.bn repeat_1.0.branch1.2.bn",
		"block8.cat":     "block8.branch0.bn block8.branch1.2.bn",
	} {
		if parts[block] != want {
			t.Errorf("%s concatenates %q, want %q", block, parts[block], want)
		}
	}
	if len(closes) != 40 {
		t.Errorf("%d residual units, want 40", len(closes))
	}
	for unit, want := range map[string]backend.ScaledResidualParams{
		"repeat.0": {Scale: 0.17, ReLU: true}, "repeat.9": {Scale: 0.17, ReLU: true}, "repeat_1.19": {Scale: 0.10, ReLU: true},
		"repeat_2.8": {Scale: 0.20, ReLU: true}, "block8": {Scale: 1, ReLU: false},
	} {
		if closes[unit] != want {
			t.Errorf("%s closes with %+v, want %+v", unit, closes[unit], want)
		}
	}
}

// The unpadded 3x3/2 windows need a 75x75 input (mixed_7a's reductions then see 3x3 maps); a smaller one
// is an input size error that names where it failed.
func TestInceptionResNetV2InputSize(t *testing.T) {
	s, _ := Lookup("inception_resnet_v2")
	if m, err := MinInputSize(s); err != nil || m != 75 {
		t.Errorf("MinInputSize = %d, %v; want 75", m, err)
	}
	s.InputSize = 74
	_, err := Describe(s)
	var ie *InputSizeError
	if !errors.As(err, &ie) || err.Error() != "model inception_resnet_v2 needs inputs of at least 75x75 (got 74x74: "+
		"mixed_7a.branch0.1.conv: input 256x2x2 is too small for a 3x3/2 convolution)" {
		t.Errorf("74x74: %v", err)
	}
	s.InputSize = 75
	if st, err := Describe(s); err != nil || st.Stages[len(st.Stages)-2].H != 1 {
		t.Errorf("75x75: %v, %+v", err, st.Stages)
	}
}

func TestInceptionResNetV2Names(t *testing.T) {
	for _, in := range []string{"inception_resnet_v2", "Inception-ResNet-v2", "inceptionresnetv2", "INCEPTION_RESNET-_V2"} {
		if s, err := Lookup(in); err != nil || s.Name != "inception_resnet_v2" {
			t.Errorf("Lookup(%q) = %q, %v", in, s.Name, err)
		}
	}
	_, err := Resolve("inception_resnet_v2", 50)
	var ae *ArchError
	if !errors.As(err, &ae) || ae.Field != "depth" || ae.Reason != "must be 0 for inception_resnet_v2, whose name carries no depth (got 50)" {
		t.Errorf("inception_resnet_v2 with depth 50: %v", err)
	}
	if _, err := Lookup("inception_resnet_v3"); err == nil || !strings.Contains(err.Error(), "did you mean inception_resnet_v2?") {
		t.Errorf("inception_resnet_v3: %v", err)
	}
	if !strings.Contains(KnownNames(), ", inception_resnet_v2;") {
		t.Errorf("KnownNames() = %s", KnownNames())
	}
}

// The ResNet options a config can set have no place in this net and are refused, not ignored.
func TestInceptionResNetV2RefusesResNetOptions(t *testing.T) {
	for what, edit := range map[string]func(*Spec){
		"model.shortcut does not apply":           func(s *Spec) { s.Shortcut = 'B' },
		"model.stride_in_1x1 does not apply":      func(s *Spec) { s.StrideIn1x1 = true },
		"model.zero_init_residual does not apply": func(s *Spec) { s.ZeroInitResidual = true },
	} {
		s, _ := Lookup("inception_resnet_v2")
		edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("Validate: %v, want %q", err, what)
		}
	}
}

// timm leaves the convolutions at PyTorch's default initialisation, uniform in +-1/sqrt(fan_in), and so
// does Init: every weight within the bound and the largest close to it.
func TestInceptionResNetV2InitIsPyTorchDefault(t *testing.T) {
	s, _ := Lookup("inception_resnet_v2")
	s.InputSize = 75
	net, err := Build(cpu.New(), s, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if err := net.Init(1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"conv2d_1a.conv.weight", "repeat_1.3.branch1.1.conv.weight", "block8.conv2d.weight"} {
		p, _ := net.Param(name)
		v, err := net.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		bound := 1 / math.Sqrt(float64(p.Shape[1]*p.Shape[2]*p.Shape[3]))
		top := 0.0
		for _, x := range v {
			top = max(top, math.Abs(float64(x)))
		}
		if top > bound || top < 0.95*bound {
			t.Errorf("%s: largest |w| %g, want just under %g", name, top, bound)
		}
	}
}

// tinyInception is a small net of the same parts for the gradient check: a block with an average-pooling
// branch, a unit with a rectangular pair, a reduction with a max-pool branch, and a unit without ReLU. Its
// stem reduces the 8x8 input to 3x3 and the reduction to 1x1, so that the max-pool has few windows and a
// finite difference seldom crosses a tie between two of a window's values.
func tinyInception(b *builder, in *act, mark func(string, int, *act)) (*act, error) {
	steps := []func(h *act) (*act, error){
		func(h *act) (*act, error) { return b.convNormAct("stem", h, reduce(6)) },
		func(h *act) (*act, error) {
			return b.inceptionBlock("mixed", h, []irBranch{
				{convs: []irConv{conv1x1(3)}}, {convs: []irConv{conv1x1(2), square(3, 3, 1)}}, {pool: avgPool, convs: []irConv{conv1x1(2)}},
			})
		},
		func(h *act) (*act, error) {
			return b.inceptionResidual("unit0", h, []irBranch{
				{convs: []irConv{conv1x1(2)}}, {convs: []irConv{conv1x1(2), rect(3, 1, 3), rect(3, 3, 1)}},
			}, 0.5, true)
		},
		func(h *act) (*act, error) {
			return b.inceptionBlock("reduce", h, []irBranch{
				{convs: []irConv{reduce(4)}}, {convs: []irConv{conv1x1(2), reduce(3)}}, {pool: maxPool},
			})
		},
		func(h *act) (*act, error) {
			return b.inceptionResidual("unit1", h, []irBranch{{convs: []irConv{conv1x1(3)}}, {convs: []irConv{conv1x1(2), rect(2, 1, 3)}}}, 1, false)
		},
		func(h *act) (*act, error) { return b.convNormAct("last", h, conv1x1(5)) },
	}
	h := in
	for _, step := range steps {
		var err error
		if h, err = step(h); err != nil {
			return nil, err
		}
	}
	mark("features", 0, h)
	return h, nil
}

func init() {
	topologies["test_inception"] = topology{
		validate: func(Spec) error { return nil }, features: tinyInception, classifier: "classif", init: initTorchDefault,
	}
}

// Every parameter's gradient through the scaled residual sums (the closing convolutions' biases included),
// the concatenations and both pools agrees with finite differences.
func TestInceptionResidualGradientCheck(t *testing.T) {
	checkGradients(t, Spec{Name: "tiny_inception", Topology: "test_inception", InChannels: 3, InputSize: 8, NumClasses: 3, BNEps: 1e-3})
}
