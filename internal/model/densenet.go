package model

// DenseNets (Huang et al. 2017, "Densely Connected Convolutional Networks"), DenseNet-BC as torchvision
// 0.29 defines densenet121/161/169/201, and the paper's DenseNet-BC for CIFAR.
//
// A dense block's layer reads the concatenation of the block's input and every earlier layer's output,
// and adds k (the growth rate) channels: BN-ReLU, a 1x1 convolution to 4k channels (the bottleneck),
// BN-ReLU, a 3x3 convolution to k. The block's output is the concatenation of its input and all k-channel
// outputs. Between blocks a transition halves the channels (compression 0.5) and the map: BN-ReLU, a 1x1
// convolution, a 2x2/2 average pool. The ImageNet stem is a 7x7/2 convolution, BN-ReLU and a 3x3/2 max-
// pool; the CIFAR one a 3x3 convolution to 2k channels, on which the first layer's BN-ReLU follows. The
// features end in a BN-ReLU (norm5 and the ReLU torchvision applies in forward) before the global pool and
// the classifier. Parameter names are torchvision's: features.conv0, features.norm0,
// features.denseblock1.denselayer1.norm1/conv1/norm2/conv2, features.transition1.norm/conv,
// features.norm5, classifier. Concatenation copies (decision 0010).

import (
	"fmt"
	"strconv"
	"strings"

	"resnet/internal/backend"
)

const (
	densenetTopology = "densenet"
	// DenseLayer is the unit of a DenseNet, for the block column of `resnet models`.
	DenseLayer BlockKind = "dense"
	// denseBottleneck is torchvision's bn_size: a layer's 1x1 convolution has denseBottleneck*k outputs.
	denseBottleneck = 4
)

// densenetImageNet are torchvision's models: growth rate, stem width and layers per dense block.
var densenetImageNet = map[int]struct {
	growth, stem int
	blocks       []int
}{
	121: {32, 64, []int{6, 12, 24, 16}},
	161: {48, 96, []int{6, 12, 36, 24}},
	169: {32, 64, []int{6, 12, 32, 32}},
	201: {32, 64, []int{6, 12, 48, 32}},
}

// DenseNetSpec is torchvision's densenet<depth> for depth in 121, 161, 169, 201: 224x224 input, 1000
// classes.
func DenseNetSpec(depth int, _ bool) (Spec, error) {
	c, ok := densenetImageNet[depth]
	if !ok {
		return Spec{}, fmt.Errorf("model: DenseNet depth must be one of 121, 161, 169, 201 (got %d)", depth)
	}
	return Spec{
		Name: "densenet" + strconv.Itoa(depth), Family: ImageNet, Block: DenseLayer, Topology: densenetTopology,
		Layers: append([]int(nil), c.blocks...), GrowthRate: c.growth, StemWidth: c.stem,
		InChannels: 3, InputSize: 224, NumClasses: 1000,
	}, nil
}

// CIFARDenseNetSpec is the paper's DenseNet-BC for CIFAR, cifar_densenet_bc<depth>_k<growth>: a 3x3 stem of
// 2k channels, three dense blocks of (depth-4)/6 layers, 32x32 input, 10 classes. DenseNet-BC (L=100,
// k=12) has 769,162 parameters, the paper's 0.8M.
func CIFARDenseNetSpec(depth, growth int) (Spec, error) {
	if !denseCIFARDepth(depth) {
		return Spec{}, fmt.Errorf("model: DenseNet-BC depth must be %s (got %d)", denseCIFARRule, depth)
	}
	if growth < 1 {
		return Spec{}, fmt.Errorf("model: DenseNet growth rate must be >= 1 (got %d)", growth)
	}
	n := (depth - 4) / 6
	return Spec{
		Name: fmt.Sprintf("cifar_densenet_bc%d_k%d", depth, growth), Family: CIFAR, Block: DenseLayer,
		Topology: densenetTopology, Layers: []int{n, n, n}, GrowthRate: growth, StemWidth: 2 * growth,
		InChannels: 3, InputSize: 32, NumClasses: 10,
	}, nil
}

const denseCIFARRule = "6n+4 with n >= 1 (10, 16, 22, ..., 100, ...)"

func denseCIFARDepth(d int) bool { return d >= 10 && (d-4)%6 == 0 }

func validateDenseNet(s Spec) error {
	switch {
	case s.Family != ImageNet && s.Family != CIFAR:
		return fmt.Errorf("model %s: family must be %s or %s (got %q)", s.Name, ImageNet, CIFAR, s.Family)
	case len(s.Layers) == 0:
		return fmt.Errorf("model %s: a DenseNet needs at least one dense block", s.Name)
	case s.GrowthRate < 1 || s.StemWidth < 1:
		return fmt.Errorf("model %s: growth rate and stem width must be >= 1 (got %d and %d)", s.Name, s.GrowthRate, s.StemWidth)
	case s.Shortcut != 0:
		return fmt.Errorf("model %s: a DenseNet has no shortcuts (got shortcut %s); leave model.shortcut empty", s.Name, string(s.Shortcut))
	case s.StrideIn1x1 || s.ZeroInitResidual:
		return fmt.Errorf("model %s: a DenseNet has neither bottleneck strides nor residual branches; set model.stride_in_1x1 and model.zero_init_residual to false", s.Name)
	case s.Residual || s.PreAct || s.SEReduction != 0 || s.Groups != 0 || s.WidthPerGroup != 0 || s.WidenFactor != 0:
		return fmt.Errorf("model %s: a DenseNet takes none of the ResNet fields (residual, pre-activation, SE, groups, widths)", s.Name)
	}
	for i, l := range s.Layers {
		if l < 1 {
			return fmt.Errorf("model %s: dense block %d needs at least one layer", s.Name, i+1)
		}
	}
	return nil
}

// denseFeatures builds the stem, the dense blocks with the transitions between them, and norm5.
func denseFeatures(b *builder, in *act, mark func(string, int, *act)) (*act, error) {
	s := b.g.spec
	var h *act
	var err error
	if s.Family == ImageNet {
		if h, err = b.conv("features.conv0", in, s.StemWidth, 7, 2, 3); err != nil {
			return nil, err
		}
		if h, err = b.stemPool("features.pool0", b.bn("features.norm0", h, true, nil).y); err != nil {
			return nil, err
		}
	} else if h, err = b.conv("features.conv0", in, s.StemWidth, 3, 1, 1); err != nil {
		return nil, err
	}
	mark("stem", 0, h)
	for i, layers := range s.Layers {
		name := fmt.Sprintf("denseblock%d", i+1)
		if h, err = b.denseBlock("features."+name, h, layers); err != nil {
			return nil, err
		}
		mark(name, layers, h)
		if i == len(s.Layers)-1 {
			break
		}
		name = fmt.Sprintf("transition%d", i+1)
		if h, err = b.transition("features."+name, h); err != nil {
			return nil, err
		}
		mark(name, 0, h)
	}
	h = b.bn("features.norm5", h, true, nil).y
	mark("norm5", 0, h)
	return h, nil
}

// denseBlock appends a dense block of the given number of layers and returns the concatenation of its
// input and every layer's output. Each layer reads a concatenation of its own, also the first (a copy of
// the block's input): a BN writes its input's gradient, and the later concatenations that read the block's
// input add theirs to it first (concatNode).
func (b *builder) denseBlock(prefix string, in *act, layers int) (*act, error) {
	k := b.g.spec.GrowthRate
	features := []*act{in}
	for j := 1; j <= layers; j++ {
		p := fmt.Sprintf("%s.denselayer%d", prefix, j)
		x := b.concat(p+".input", features...)
		h, err := b.conv(p+".conv1", b.bn(p+".norm1", x, true, nil).y, denseBottleneck*k, 1, 1, 0)
		if err != nil {
			return nil, err
		}
		if h, err = b.conv(p+".conv2", b.bn(p+".norm2", h, true, nil).y, k, 3, 1, 1); err != nil {
			return nil, err
		}
		features = append(features, h)
	}
	return b.concat(prefix, features...), nil
}

// transition appends BN-ReLU, a 1x1 convolution to half the channels (rounded down) and a 2x2/2 average
// pool.
func (b *builder) transition(prefix string, in *act) (*act, error) {
	h, err := b.conv(prefix+".conv", b.bn(prefix+".norm", in, true, nil).y, in.c/2, 1, 1, 0)
	if err != nil {
		return nil, err
	}
	return b.avgPool(prefix+".pool", h, backend.PoolParams{Kernel: 2, Stride: 2})
}

// denseDepth counts the weighted layers as the paper does: the stem convolution, two per dense layer, one
// per transition and the classifier.
func denseDepth(s Spec) int {
	d := len(s.Layers) + 1 // the stem, the transitions and the classifier
	for _, l := range s.Layers {
		d += 2 * l
	}
	return d
}

func denseUnits(s Spec) string {
	return fmt.Sprintf("dense layers (BN-ReLU-1x1 conv to %dk, BN-ReLU-3x3 conv to k=%d), transitions halving channels", denseBottleneck, s.GrowthRate)
}

// registerDenseNets adds the topology and the name patterns densenet<depth> and
// cifar_densenet_bc<depth>_k<growth>.
func registerDenseNets() {
	topologies[densenetTopology] = topology{
		validate: validateDenseNet, features: denseFeatures, classifier: "classifier",
		depth: denseDepth, units: denseUnits, wiring: "densely connected", init: initDenseNet,
	}
	register(&family{prefix: "densenet", depths: []int{121, 161, 169, 201}, rule: "one of 121, 161, 169, 201",
		build: DenseNetSpec})
	register(&family{prefix: "cifar_densenet_bc", depths: []int{100}, valid: denseCIFARDepth, rule: denseCIFARRule,
		nUsage: "N = 6n+4 and K the growth rate", variantUsage: "kK", variants: map[int][]string{100: {"k12"}},
		buildVariant: func(depth int, v string) (Spec, error) {
			k, ok := parseDepth(strings.TrimPrefix(v, "k"))
			if !ok || !strings.HasPrefix(v, "k") {
				return Spec{}, fmt.Errorf("must be cifar_densenet_bc<depth>_k<growth rate>, such as cifar_densenet_bc100_k12")
			}
			return CIFARDenseNetSpec(depth, k)
		}})
}
