package model

// Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks"): every unit is
// BN-ReLU-conv, the shortcut is added after the last convolution with no BN or ReLU after the sum, and the
// network ends in a BN-ReLU before the pooling. Names and layout follow timm's ResNetV2 (resnetv2_50,
// resnetv2_101): stem.conv, stages.i.blocks.j.norm1/conv1/norm2/conv2[/norm3/conv3], a projection shortcut
// stages.i.blocks.j.downsample.conv that reads the pre-activated input, norm, and head.fc, a 1x1
// convolution (classes, features, 1, 1) with bias. The identity (and option-A) shortcut reads the unit's
// input before its BN-ReLU.

import (
	"fmt"
	"strconv"
)

// addNode closes a pre-activation unit: y = a + shortcut(z). a's gradient shares y's storage (the sum
// passes it through unchanged), and so does z's when the add is z's only reader (a projection's output).
// When z is the unit's input, which its first BN also reads, z's gradient is added by a shortcutGradNode
// once that BN has written its own (BatchNormBackward writes dx, it cannot add).
type addNode struct {
	a, z, y *act
	// zDeferred: a shortcutGradNode adds z's gradient.
	zDeferred bool
}

// shortcutGradNode is an addNode's shortcut gradient, placed in the graph before the BN that reads the
// unit's input, so that the backward pass runs it after that BN: dz += shortcut^T(dy). Its forward does
// nothing.
type shortcutGradNode struct{ add *addNode }

func (*addNode) macs() int64          { return 0 }
func (*shortcutGradNode) macs() int64 { return 0 }

func (a *addNode) forward(n *Net, _ bool) error {
	return n.dev.ResidualAdd(a.a.cur, a.z.cur, a.y.cur)
}

func (a *addNode) backward(n *Net) error {
	a.a.gradWritten = true
	if a.zDeferred {
		return nil
	}
	if a.z.gradOf == a.y {
		a.z.gradWritten = true
		return nil
	}
	err := n.dev.ResidualAddBackward(a.y.dcur, a.z.dcur, a.z.gradWritten)
	a.z.gradWritten = true
	return err
}

func (*shortcutGradNode) forward(*Net, bool) error { return nil }

func (s *shortcutGradNode) backward(n *Net) error {
	z := s.add.z
	err := n.dev.ResidualAddBackward(s.add.y.dcur, z.dcur, z.gradWritten)
	z.gradWritten = true
	return err
}

// preactStem is the stem without BN or ReLU (the first unit's BN-ReLU follows it): a 7x7/2 convolution and
// a 3x3/2 max-pool on ImageNet, a 3x3 convolution on CIFAR.
func (b *builder) preactStem(in *act) (*act, error) {
	s := b.g.spec
	if s.Family == CIFAR {
		return b.conv("stem.conv", in, s.StemWidth, 3, 1, 1)
	}
	h, err := b.conv("stem.conv", in, s.StemWidth, 7, 2, 3)
	if err != nil {
		return nil, err
	}
	return b.stemPool("stem.pool", h)
}

// preactBlock appends one pre-activation unit and returns its output. The stride is on the first 3x3
// convolution (timm; the paper's Torch code put the bottleneck's on its first 1x1). The first unit of a
// stage projects whenever its width or stride changes (option B), as timm's ResNetV2 does.
func (b *builder) preactBlock(prefix string, in *act, width, stride int) (*act, error) {
	s := b.g.spec
	outC := width * s.Block.Expansion()
	changes := stride != 1 || in.c != outC
	project := s.Shortcut == 'C' || (s.Shortcut == 'B' && changes)
	if !project && changes && (outC < in.c || (outC-in.c)%2 != 0) {
		return nil, fmt.Errorf("model %s: %s: an option-A shortcut cannot map %d to %d channels (needs an even increase)", s.Name, prefix, in.c, outC)
	}
	tap := len(b.g.nodes) // where the identity shortcut's gradient goes, before norm1
	xp := b.bn(prefix+".norm1", in, true, nil).y
	z := in
	var err error
	if project {
		if z, err = b.conv(prefix+".downsample.conv", xp, outC, 1, stride, 0); err != nil {
			return nil, err
		}
	}
	var h *act
	var last *Param
	if s.Block == Basic {
		if h, err = b.conv(prefix+".conv1", xp, width, 3, stride, 1); err != nil {
			return nil, err
		}
		h = b.bn(prefix+".norm2", h, true, nil).y
		if s.Dropout > 0 {
			h = b.dropout(prefix+".dropout", h)
		}
		if h, err = b.conv(prefix+".conv2", h, outC, 3, 1, 1); err != nil {
			return nil, err
		}
	} else {
		if h, err = b.conv(prefix+".conv1", xp, width, 1, 1, 0); err != nil {
			return nil, err
		}
		h = b.bn(prefix+".norm2", h, true, nil).y
		if h, err = b.conv(prefix+".conv2", h, width, 3, stride, 1); err != nil {
			return nil, err
		}
		h = b.bn(prefix+".norm3", h, true, nil).y
		if h, err = b.conv(prefix+".conv3", h, outC, 1, 1, 0); err != nil {
			return nil, err
		}
	}
	last = b.g.params[len(b.g.params)-1]
	last.zeroInit = true // timm's zero_init_last zeroes the last convolution of the branch
	if !project && (in.h != h.h*stride || in.w != h.w*stride) {
		return nil, &spatialError{layer: prefix, what: fmt.Sprintf("an option-A shortcut cannot subsample %s to %s", in.shape(), h.shape())}
	}
	y := b.newAct(prefix, outC, h.h, h.w)
	add := &addNode{a: h, z: z, y: y, zDeferred: z == in}
	h.gradOf = y
	if project {
		z.gradOf = y
	}
	b.g.nodes = append(b.g.nodes, add)
	if add.zDeferred {
		b.g.nodes = append(b.g.nodes[:tap], append([]node{&shortcutGradNode{add: add}}, b.g.nodes[tap:]...)...)
	}
	return y, nil
}

// PreActImageNetSpec is timm's resnetv2_<depth> for depth 50 or 101: bottleneck units of widths 64, 128,
// 256, 512 (outputs 4x), 224x224 input, 1000 classes.
func PreActImageNetSpec(depth int, _ bool) (Spec, error) {
	if depth != 50 && depth != 101 {
		return Spec{}, fmt.Errorf("model: pre-activation ImageNet depth must be 50 or 101 (got %d)", depth)
	}
	s, err := ImageNetSpec(depth, true)
	s.Name = "resnetv2_" + strconv.Itoa(depth)
	s.PreAct = true
	return s, err
}

// PreActCIFARSpec is the Identity Mappings paper's CIFAR network: widths 16, 32, 64, a 3x3 stem of 16,
// 32x32 input, 10 classes. Depth 6n+2 below 164 has basic units with option-A shortcuts (ResNet-110, the
// 2015 paper's net made pre-activation); depth 9n+2 from 164 on has bottleneck units (outputs 64, 128,
// 256) with projections where the shape changes (ResNet-164, ResNet-1001).
func PreActCIFARSpec(depth int, _ bool) (Spec, error) {
	if !preactCIFARDepth(depth) {
		return Spec{}, fmt.Errorf("model: pre-activation CIFAR depth must be %s (got %d)", preactCIFARRule, depth)
	}
	s := Spec{
		Name: "cifar_preact_resnet" + strconv.Itoa(depth), Family: CIFAR, Block: Basic, Widths: []int{16, 32, 64},
		Residual: true, Shortcut: 'A', StemWidth: 16, InChannels: 3, InputSize: 32, NumClasses: 10, PreAct: true,
	}
	n := (depth - 2) / 6
	if depth >= 164 {
		s.Block, s.Shortcut, n = Bottleneck, 'B', (depth-2)/9
	}
	s.Layers = []int{n, n, n}
	return s, nil
}

const preactCIFARRule = "6n+2 below 164 (basic units: 20, 56, 110, ...) or 9n+2 from 164 on (bottleneck units: 164, 1001, ...)"

func preactCIFARDepth(d int) bool {
	if d < 164 {
		return d >= 8 && (d-2)%6 == 0
	}
	return (d-2)%9 == 0
}

// registerPreAct adds the pre-activation families to the name table, after the ResNets of 2015.
func registerPreAct() {
	register(&family{prefix: "resnetv2", aliases: []string{"preact_resnet", "resnet_v2"}, residual: true,
		depths: []int{50, 101}, rule: "50 or 101", build: PreActImageNetSpec})
	register(&family{prefix: "cifar_preact_resnet", aliases: []string{"cifar_preact_res", "cifar_preresnet"}, residual: true,
		depths: []int{110, 164, 1001}, valid: preactCIFARDepth, rule: preactCIFARRule,
		nUsage: "N = 6n+2 below 164, 9n+2 from 164", build: PreActCIFARSpec})
}

// ClassifierName is the name of the classifier's weight and bias without ".weight": fc (torchvision), head.fc
// for the pre-activation nets (timm), or the one a topology names.
func (s Spec) ClassifierName() string {
	if t, ok := topologies[s.Topology]; ok {
		return t.classifier
	}
	if s.PreAct {
		return "head.fc"
	}
	return "fc"
}

// ClassifierNames lists the classifier names of the zoo's nets, each once, in the order of the name table:
// fc (torchvision's ResNets), head.fc (timm's pre-activation nets), then the topologies' (torchvision's
// DenseNet's classifier, timm's Inception-ResNet-v2's classif).
func ClassifierNames() []string {
	var out []string
	for _, s := range Zoo() {
		if n := s.ClassifierName(); !contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func (a *addNode) acts() []*act                { return []*act{a.a, a.z, a.y} }
func (s *shortcutGradNode) acts() []*act       { return s.add.acts() }
func (*addNode) trainables() []*Param          { return nil }
func (*shortcutGradNode) trainables() []*Param { return nil }
