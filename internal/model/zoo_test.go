package model

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// The expected values are the tables of docs/reference-counts.md (torchvision's weight metadata for the
// ImageNet nets, He et al. 2015 section 4.2 for the CIFAR ones): exact parameter counts, and MACs to the
// precision the table gives (GMACs to 3 decimals for ImageNet, MMACs to 2 for CIFAR).
func TestZooMatchesReferenceCounts(t *testing.T) {
	cases := []struct {
		name   string
		params int64
		macs   float64 // in units of scale
		scale  float64
		digits int
	}{
		{"resnet18", 11689512, 1.814, 1e9, 3},
		{"resnet34", 21797672, 3.664, 1e9, 3},
		{"resnet50", 25557032, 4.089, 1e9, 3},
		{"resnet101", 44549160, 7.801, 1e9, 3},
		{"resnet152", 60192808, 11.514, 1e9, 3},
		{"plain18", 11515688, 1.795, 1e9, 3},
		{"plain34", 21623848, 3.644, 1e9, 3},
		{"cifar_resnet20", 269722, 40.55, 1e6, 2},
		{"cifar_resnet32", 464154, 68.86, 1e6, 2},
		{"cifar_resnet44", 658586, 97.17, 1e6, 2},
		{"cifar_resnet56", 853018, 125.49, 1e6, 2},
		{"cifar_resnet110", 1727962, 252.89, 1e6, 2},
		{"cifar_resnet1202", 19421274, 2829.24, 1e6, 2},
		{"cifar_plain20", 269722, 40.55, 1e6, 2},
		{"cifar_plain56", 853018, 125.49, 1e6, 2},
		{"cifar_plain110", 1727962, 252.89, 1e6, 2},
		// Pre-activation: timm 1.0.31's resnetv2_50 and resnetv2_101 (FACTS.md), and the Identity Mappings
		// paper's CIFAR nets, whose counts the paper gives as 1.7M, 1.7M and 10.2M (its 10.2M leaves out
		// the BN parameters: 10,327,706 less 149,216: 10,178,490).
		{"resnetv2_50", 25549352, 4.089, 1e9, 3},
		{"resnetv2_101", 44541480, 7.801, 1e9, 3},
		{"cifar_preact_resnet110", 1727962, 252.89, 1e6, 2},
		{"cifar_preact_resnet164", 1703258, 247.65, 1e6, 2},
		{"cifar_preact_resnet1001", 10327706, 1491.00, 1e6, 2},
	}
	for _, c := range cases {
		s, err := Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Describe(s)
		if err != nil {
			t.Fatal(err)
		}
		if st.Params != c.params {
			t.Errorf("%s: %d params, want %d", c.name, st.Params, c.params)
		}
		p := math.Pow(10, float64(c.digits))
		if got := math.Round(float64(st.MACs)/c.scale*p) / p; got != c.macs {
			t.Errorf("%s: %.4f MACs (x%g), want %.*f", c.name, float64(st.MACs)/c.scale, c.scale, c.digits, c.macs)
		}
	}
}

// ResNeXt, Wide ResNet and DenseNet: the exact parameter counts and MACs of torchvision's models
// (docs/reference-counts.md, counted on the torchvision 0.29 modules).
func TestWiderZooMatchesTorchvision(t *testing.T) {
	for _, c := range []struct {
		name         string
		params, macs int64
	}{
		{"resnext50_32x4d", 25028904, 4230479872},
		{"resnext101_32x8d", 88791336, 16414015488},
		{"resnext101_64x4d", 83455272, 15460270080},
		{"wide_resnet50_2", 68883240, 11398021120},
		{"wide_resnet101_2", 126886696, 22753050624},
		// The ResNeXt paper's CIFAR networks (its Table 7: 34.4M and 68.1M parameters).
		{"cifar_resnext29_8x64d", 34426698, 5387266048},
		{"cifar_resnext29_16x64d", 68155210, 10688866304},
		// The Wide ResNet paper's WRN-28-10 (36.5M; 36,479,194 is the count of the paper's PyTorch code with
		// 10 classes), WRN-40-4 (8.9M) and WRN-16-8 (11.0M). MACs are this builder's, one 32x32 image.
		{"cifar_wrn28_10", 36479194, 5243328768},
		{"cifar_wrn40_4", 8949210, 1298582016},
		{"cifar_wrn16_8", 10961370, 1548145664},
		// torchvision 0.29's DenseNets, and the paper's CIFAR DenseNet-BC as PyTorch counts torchvision's
		// DenseNet with a 3x3 stem of 2k channels and no norm0 or pool0, one 32x32 image: L=100, k=12 has
		// 769,162 parameters (the paper's Table 2: 0.8M), L=250, k=24 15.3M, L=190, k=40 25.6M.
		{"densenet121", 7978856, 2834161664},
		{"densenet161", 28681000, 7727907072},
		{"densenet169", 14149480, 3359843328},
		{"densenet201", 20013928, 4291365888},
		{"cifar_densenet_bc100_k12", 769162, 287929692},
		{"cifar_densenet_bc250_k24", 15324406, 5418785724},
		{"cifar_densenet_bc190_k40", 25624430, 9301945740},
	} {
		s, err := Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Describe(s)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != c.name || st.Params != c.params || st.MACs != c.macs {
			t.Errorf("%s: %d params, %d MACs; want %d and %d", s.Name, st.Params, st.MACs, c.params, c.macs)
		}
	}
}

// expectShapes checks the shapes of some of g's parameters, by name.
func expectShapes(t *testing.T, g *graph, want map[string][]int) {
	t.Helper()
	shapes := map[string][]int{}
	for _, p := range g.params {
		shapes[p.Name] = p.Shape
	}
	for name, w := range want {
		if !SameShape(w, shapes[name]) {
			t.Errorf("%s has shape %v, want %v", name, shapes[name], w)
		}
	}
}

// torchvision's bottleneck width int(planes * width_per_group/64) * groups, and its stride on the 3x3,
// which is the grouped one.
func TestResNeXtBottleneck(t *testing.T) {
	s, _ := Lookup("resnext50_32x4d")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	expectShapes(t, g, map[string][]int{
		"layer1.0.conv1.weight": {128, 64, 1, 1}, "layer1.0.conv2.weight": {128, 4, 3, 3},
		"layer1.0.conv3.weight": {256, 128, 1, 1}, "layer4.2.conv2.weight": {1024, 32, 3, 3},
		"layer2.0.downsample.0.weight": {512, 256, 1, 1}, "fc.weight": {1000, 2048},
	})
	for _, nd := range g.nodes {
		c, ok := nd.(*convNode)
		if !ok {
			continue
		}
		switch c.name {
		case "layer2.0.conv1":
			if c.p.Stride != 1 {
				t.Errorf("layer2.0.conv1 stride %d, want 1", c.p.Stride)
			}
		case "layer2.0.conv2":
			if c.p.Stride != 2 || c.p.Groups != 32 {
				t.Errorf("layer2.0.conv2 %+v, want stride 2 in 32 groups", c.p)
			}
		case "layer2.0.conv3", "layer1.0.conv1":
			if c.p.Groups > 1 {
				t.Errorf("%s is grouped: %+v", c.name, c.p)
			}
		}
	}
	w, _ := Lookup("wide_resnet50_2")
	if w.BottleneckWidth(64) != 128 || w.BottleneckWidth(512) != 1024 || s.BottleneckWidth(512) != 1024 {
		t.Errorf("bottleneck widths: wide %d, %d; resnext %d", w.BottleneckWidth(64), w.BottleneckWidth(512), s.BottleneckWidth(512))
	}
	basic, _ := Lookup("resnet18")
	basic.Groups = 32
	if err := basic.Validate(); err == nil || !strings.Contains(err.Error(), "basic blocks take neither groups") {
		t.Errorf("resnet18 in groups: %v", err)
	}
}

func TestLookupSpellings(t *testing.T) {
	for in, want := range map[string]string{
		"res34": "resnet34", "RESNET50": "resnet50", "plain34": "plain34",
		"cifar_res56": "cifar_resnet56", "cifar_plain20": "cifar_plain20", "cifar_resnet8": "cifar_resnet8",
		"ResNet-34": "resnet34", "resnet_101": "resnet101", "cifar-resnet-56": "cifar_resnet56", " Plain-18 ": "plain18",
		"resnext50": "resnext50_32x4d", "ResNeXt-50-32x4d": "resnext50_32x4d", "resnext101": "resnext101_32x8d",
		"resnext101_64x4d": "resnext101_64x4d", "wide_resnet50": "wide_resnet50_2", "Wide-ResNet-101-2": "wide_resnet101_2",
		"wide_res50_2": "wide_resnet50_2", "resnext50_8x16d": "resnext50_8x16d", "wide_resnet50_4": "wide_resnet50_4",
	} {
		s, err := Lookup(in)
		if err != nil || s.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", in, s.Name, err, want)
		}
	}
	for in, msg := range map[string]string{
		"resnet19":        `depth must be one of 18, 34, 50, 101, 152 (got "resnet19"); did you mean resnet18?`,
		"cifar_resnet21":  `depth must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...) (got "cifar_resnet21"); did you mean cifar_resnet20?`,
		"vgg16":           `must be a known architecture (got "vgg16"; known: resnet18/34/50/101/152, plain18/34/50/101/152,`,
		"resnet5O":        `did you mean resnet50?`,
		"cifar_resnet":    "model.depth must be set to 6n+2",
		"resnext18":       `depth must be one of 50, 101 (got "resnext18"); did you mean resnext50?`,
		"resnext50_32x4":  `model.arch must be resnext<depth>_<groups>x<width>d, such as resnext50_32x4d (got "resnext50_32x4")`,
		"wide_resnet50_x": `model.arch must be wide_resnet<depth>_<factor>, such as wide_resnet50_2 (got "wide_resnet50_x")`,
		"resnxt50":        "did you mean resnet50?",
	} {
		if _, err := Lookup(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Lookup(%q) error %v, want it to contain %q", in, err, msg)
		}
	}
}

func TestStageShapes(t *testing.T) {
	for name, want := range map[string][][3]int{
		"resnet50":       {{64, 56, 56}, {256, 56, 56}, {512, 28, 28}, {1024, 14, 14}, {2048, 7, 7}, {1000, 1, 1}},
		"resnet18":       {{64, 56, 56}, {64, 56, 56}, {128, 28, 28}, {256, 14, 14}, {512, 7, 7}, {1000, 1, 1}},
		"cifar_resnet20": {{16, 32, 32}, {16, 32, 32}, {32, 16, 16}, {64, 8, 8}, {10, 1, 1}},
	} {
		s, _ := Lookup(name)
		st, err := Describe(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Stages) != len(want) {
			t.Fatalf("%s: %d stages, want %d", name, len(st.Stages), len(want))
		}
		for i, w := range want {
			g := st.Stages[i]
			if [3]int{g.C, g.H, g.W} != w {
				t.Errorf("%s stage %s: %dx%dx%d, want %v", name, g.Name, g.C, g.H, g.W, w)
			}
		}
	}
}

// The shortcut options only change the parameter count where they add projections; stride placement in
// a bottleneck changes the cost but not the parameters.
func TestShortcutOptionsAndStridePlacement(t *testing.T) {
	base, _ := Lookup("resnet50")
	b, _ := Describe(base)
	a := base
	a.Shortcut = 'A'
	sa, err := Describe(a)
	if err != nil {
		t.Fatal(err)
	}
	c := base
	c.Shortcut = 'C'
	sc, _ := Describe(c)
	if !(sa.Params < b.Params && b.Params < sc.Params) {
		t.Errorf("params A %d, B %d, C %d: want A < B < C", sa.Params, b.Params, sc.Params)
	}
	plain, _ := Lookup("plain50")
	sp, _ := Describe(plain)
	if sp.Params != sa.Params {
		t.Errorf("plain50 %d params, resnet50 option A %d: want equal", sp.Params, sa.Params)
	}
	v1 := base
	v1.StrideIn1x1 = true
	s1, _ := Describe(v1)
	if s1.Params != b.Params || s1.MACs >= b.MACs {
		t.Errorf("stride in 1x1: %d params %d MACs; v1.5: %d params %d MACs", s1.Params, s1.MACs, b.Params, b.MACs)
	}
}

func TestParamNamesFollowTorchvision(t *testing.T) {
	s, _ := Lookup("resnet50")
	g, err := newGraph(s)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range g.params {
		if names[p.Name] {
			t.Errorf("duplicate parameter %s", p.Name)
		}
		names[p.Name] = true
	}
	for _, want := range []string{
		"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
		"layer1.0.conv1.weight", "layer1.0.bn3.weight", "layer1.0.downsample.0.weight",
		"layer1.0.downsample.1.running_var", "layer2.0.downsample.0.weight", "layer4.2.conv3.weight",
		"fc.weight", "fc.bias",
	} {
		if !names[want] {
			t.Errorf("missing parameter %s", want)
		}
	}
	if names["layer1.1.downsample.0.weight"] {
		t.Error("option B must not project layer1.1")
	}
	// 53 convolutions + 53 BNs (4 tensors each) + fc weight and bias.
	if len(g.params) != 53+53*4+2 {
		t.Errorf("%d parameter tensors, want %d", len(g.params), 53+53*4+2)
	}
}

// Every listed name resolves to itself, and so do its short and paper spellings.
func TestNamesRoundTrip(t *testing.T) {
	names := Names()
	if len(names) != 45 || names[0] != "cifar_densenet_bc100_k12" || names[len(names)-1] != "wide_resnet50_2" {
		t.Fatalf("Names() = %v", names)
	}
	for _, n := range names {
		s, err := Lookup(n)
		if err != nil || s.Name != n {
			t.Errorf("Lookup(%q) = %q, %v", n, s.Name, err)
		}
		if c, ok := CanonicalName(strings.ToUpper(strings.ReplaceAll(n, "net", "net-"))); !ok || c != n {
			t.Errorf("CanonicalName of a respelt %q = %q, %v", n, c, ok)
		}
	}
	if c, ok := CanonicalName("configs/my.yaml"); ok || c != "configs/my.yaml" {
		t.Errorf("CanonicalName of a file = %q, %v; want it unchanged and false", c, ok)
	}
}

// model.depth replaces the depth of the name, for any family: the resnet50 recipe with depth 101 trains
// resnet101, and a family name without a depth takes it.
func TestResolveDepth(t *testing.T) {
	for _, c := range []struct {
		arch  string
		depth int
		want  string
	}{
		{"resnet50", 101, "resnet101"}, {"plain", 34, "plain34"}, {"cifar_res20", 56, "cifar_resnet56"},
		{"cifar_plain", 14, "cifar_plain14"}, {"cifar_resnet32", 0, "cifar_resnet32"},
		{"resnext50_32x4d", 101, "resnext101_32x4d"}, {"resnext50", 101, "resnext101_32x8d"}, {"resnext", 50, "resnext50_32x4d"},
		{"wide_resnet50_2", 101, "wide_resnet101_2"},
	} {
		s, err := Resolve(c.arch, c.depth)
		if err != nil || s.Name != c.want {
			t.Errorf("Resolve(%q, %d) = %q, %v; want %q", c.arch, c.depth, s.Name, err, c.want)
		}
	}
	_, err := Resolve("resnet", 0)
	var ae *ArchError
	if !errors.As(err, &ae) || ae.Field != "depth" {
		t.Errorf("Resolve(resnet, 0) error %v; want an ArchError on depth", err)
	}
}
