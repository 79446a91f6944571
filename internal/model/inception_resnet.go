package model

// Inception-ResNet-v2 (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual
// Connections on Learning") as timm 1.0.31 defines it (timm/models/inception_resnet_v2.py), with its
// state_dict names. Every convolution but the units' last is timm's ConvNormAct: a convolution without
// bias (name.conv), a BN with epsilon 1e-3 and a ReLU (name.bn). The stem runs conv2d_1a (3x3/2),
// conv2d_2a (3x3), conv2d_2b (3x3, padded), maxpool_3a (3x3/2), conv2d_3b (1x1), conv2d_4a (3x3) and
// maxpool_5a (3x3/2), unpadded where not said. Three runs of residual units follow, each after a block of
// parallel branches whose outputs are concatenated in branch order: mixed_5b, then 10 Inception-ResNet-A
// units (repeat, Block35) at 35x35 for a 299 input; the reduction mixed_6a, then 20 Inception-ResNet-B
// units (repeat_1, Block17) at 17x17; the reduction mixed_7a, then 9 Inception-ResNet-C units (repeat_2,
// Block8) at 8x8 and a tenth (block8) without the final ReLU. A unit concatenates its branches, maps them
// back to its input's width with a 1x1 convolution with bias (name.conv2d), and closes with
// y = relu(scale*(conv + bias) + x), the scale damping the residual (0.17, 0.10, 0.20; 1.0 for block8).
// conv2d_7b (1x1 to 1536) ends the features; the head is the common one, its classifier named classif.
// Max-pools are 3x3/2 without padding; mixed_5b's fourth branch average-pools 3x3/1 with padding 1,
// dividing by the positions inside the input (count_include_pad=False).
//
// On the device a unit's closing convolution runs without its bias, and one op adds the bias, scales,
// adds the input and applies the ReLU (Device.ScaledResidual).

import (
	"fmt"

	"resnet/internal/backend"
)

// inceptionResNet is the topology key of Inception-ResNet-v2.
const inceptionResNet = "inception_resnet"

// irConv is one ConvNormAct layer: a kh x kw convolution to cout channels with stride and padding
// (padH, padW), a BN and a ReLU.
type irConv struct{ cout, kh, kw, stride, padH, padW int }

// conv1x1 is a 1x1 layer; square a k x k one padded by pad; reduce a 3x3/2 unpadded one; rect a kh x kw
// one padded to keep the size (the 1x7 and 7x1, 1x3 and 3x1 pairs).
func conv1x1(cout int) irConv        { return irConv{cout, 1, 1, 1, 0, 0} }
func square(cout, k, pad int) irConv { return irConv{cout, k, k, 1, pad, pad} }
func reduce(cout int) irConv         { return irConv{cout, 3, 3, 2, 0, 0} }
func rect(cout, kh, kw int) irConv   { return irConv{cout, kh, kw, 1, kh / 2, kw / 2} }
func (c irConv) params() backend.ConvParams {
	return backend.ConvParams{Stride: c.stride, PadH: c.padH, PadW: c.padW}
}

// irPool is the pooling a branch starts with.
type irPool int

const (
	noPool  irPool = iota
	maxPool        // 3x3/2, unpadded: the reductions' pooling branch, which has no convolution
	avgPool        // 3x3/1, padded by 1, count_include_pad=False: mixed_5b's fourth branch
)

// irBranch is one branch of a block: an optional pooling followed by ConvNormAct layers.
type irBranch struct {
	pool  irPool
	convs []irConv
}

// The blocks, their branches in timm's order (which is the concatenation's channel order).
var (
	mixed5b = []irBranch{
		{convs: []irConv{conv1x1(96)}},
		{convs: []irConv{conv1x1(48), square(64, 5, 2)}},
		{convs: []irConv{conv1x1(64), square(96, 3, 1), square(96, 3, 1)}},
		{pool: avgPool, convs: []irConv{conv1x1(64)}},
	}
	block35 = []irBranch{
		{convs: []irConv{conv1x1(32)}},
		{convs: []irConv{conv1x1(32), square(32, 3, 1)}},
		{convs: []irConv{conv1x1(32), square(48, 3, 1), square(64, 3, 1)}},
	}
	mixed6a = []irBranch{
		{convs: []irConv{reduce(384)}},
		{convs: []irConv{conv1x1(256), square(256, 3, 1), reduce(384)}},
		{pool: maxPool},
	}
	block17 = []irBranch{
		{convs: []irConv{conv1x1(192)}},
		{convs: []irConv{conv1x1(128), rect(160, 1, 7), rect(192, 7, 1)}},
	}
	mixed7a = []irBranch{
		{convs: []irConv{conv1x1(256), reduce(384)}},
		{convs: []irConv{conv1x1(256), reduce(288)}},
		{convs: []irConv{conv1x1(256), square(288, 3, 1), reduce(320)}},
		{pool: maxPool},
	}
	block8 = []irBranch{
		{convs: []irConv{conv1x1(192)}},
		{convs: []irConv{conv1x1(192), rect(224, 1, 3), rect(256, 3, 1)}},
	}
)

// irStem are the stem's layers in order; a zero irConv is a 3x3/2 max-pool.
var irStem = []struct {
	name string
	conv irConv
}{
	{"conv2d_1a", reduce(32)}, {"conv2d_2a", square(32, 3, 0)}, {"conv2d_2b", square(64, 3, 1)},
	{"maxpool_3a", irConv{}}, {"conv2d_3b", conv1x1(80)}, {"conv2d_4a", square(192, 3, 0)}, {"maxpool_5a", irConv{}},
}

// irRuns are the three runs of residual units, each after the block that widens (and, after the first,
// reduces) the map.
var irRuns = []struct {
	entry    string // timm's module of the block before the run
	entryBr  []irBranch
	width    int    // channels of that block's output, which the run keeps
	module   string // timm's module of the run
	unit     string // the paper's name of the unit
	branches []irBranch
	units    int
	scale    float32
}{
	{"mixed_5b", mixed5b, 320, "repeat", "Inception-ResNet-A", block35, 10, 0.17},
	{"mixed_6a", mixed6a, 1088, "repeat_1", "Inception-ResNet-B", block17, 20, 0.10},
	{"mixed_7a", mixed7a, 2080, "repeat_2", "Inception-ResNet-C", block8, 9, 0.20},
}

// irFeatures is the width of conv2d_7b, the last feature map.
const irFeatures = 1536

// InceptionResNetV2Spec is timm's inception_resnet_v2: 299x299 input, 1000 classes, BN epsilon 1e-3.
func InceptionResNetV2Spec(int, bool) (Spec, error) {
	return Spec{
		Name: "inception_resnet_v2", Family: ImageNet, Residual: true, InChannels: 3, InputSize: 299,
		NumClasses: 1000, Topology: inceptionResNet, BNEps: 1e-3,
	}, nil
}

// registerInceptionResNet adds inception_resnet_v2 to the name table and its builder to the topologies.
func registerInceptionResNet() {
	topologies[inceptionResNet] = topology{
		validate:   validateInceptionResNet,
		features:   inceptionResNetFeatures,
		classifier: "classif",
		depth:      func(Spec) int { return inceptionResNetDepth() },
		units:      inceptionResNetUnits,
		init:       initTorchDefault, // timm sets no initialisation of its own
	}
	register(&family{prefix: "inception_resnet_v2", aliases: []string{"inceptionresnetv2"}, residual: true,
		fixed: true, build: InceptionResNetV2Spec})
}

// validateInceptionResNet refuses the ResNet options a config can set, which this net has no place for.
func validateInceptionResNet(s Spec) error {
	switch {
	case s.Shortcut != 0:
		return fmt.Errorf("model %s: model.shortcut does not apply (its units add their input as it is); leave it empty", s.Name)
	case s.StrideIn1x1:
		return fmt.Errorf("model %s: model.stride_in_1x1 does not apply (it has no bottlenecks); set it to false", s.Name)
	case s.ZeroInitResidual:
		return fmt.Errorf("model %s: model.zero_init_residual does not apply (no BN closes its residual branches); set it to false", s.Name)
	}
	return nil
}

// longest is the number of convolutions on a block's longest branch.
func longest(branches []irBranch) int {
	n := 0
	for _, br := range branches {
		n = max(n, len(br.convs))
	}
	return n
}

// inceptionResNetDepth counts the weighted layers on the longest path: the stem's convolutions, each
// block's longest branch, and in each unit its closing convolution too, conv2d_7b and the classifier.
func inceptionResNetDepth() int {
	d := 0
	for _, l := range irStem {
		if l.conv.cout > 0 {
			d++
		}
	}
	for _, r := range irRuns {
		d += longest(r.entryBr) + r.units*(longest(r.branches)+1)
	}
	return d + longest(block8) + 1 + 2
}

// inceptionResNetUnits is the model summary's description of the units: "Inception-ResNet-A x10 (scale
// 0.17), -B x20 (0.10), -C x10 (0.20, the last 1.00 without ReLU), BN eps 0.001".
func inceptionResNetUnits(s Spec) string {
	d := ""
	for i, r := range irRuns {
		n, scale := r.units, fmt.Sprintf("%.2f", r.scale)
		if i == len(irRuns)-1 {
			n++ // block8
			scale += ", the last 1.00 without ReLU"
		}
		switch i {
		case 0:
			d = fmt.Sprintf("%s x%d (scale %s)", r.unit, n, scale)
		default:
			d += fmt.Sprintf(", -%s x%d (%s)", r.unit[len(r.unit)-1:], n, scale)
		}
	}
	return fmt.Sprintf("%s, BN eps %g", d, s.bnEps())
}

// inceptionResNetFeatures builds the stem, the three runs with the blocks before them, block8 and
// conv2d_7b, marking each.
func inceptionResNetFeatures(b *builder, x *act, mark func(name string, blocks int, out *act)) (*act, error) {
	h := x
	var err error
	for _, l := range irStem {
		if l.conv.cout == 0 {
			h, err = b.maxPool(l.name, h, backend.PoolParams{Kernel: 3, Stride: 2})
		} else {
			h, err = b.convNormAct(l.name, h, l.conv)
		}
		if err != nil {
			return nil, err
		}
	}
	mark("stem", 0, h)
	for _, r := range irRuns {
		if h, err = b.inceptionBlock(r.entry, h, r.entryBr); err != nil {
			return nil, err
		}
		if h.c != r.width {
			return nil, fmt.Errorf("model %s: %s produces %s, want %d channels", b.g.spec.Name, r.entry, h.shape(), r.width)
		}
		mark(r.entry, 1, h)
		for j := range r.units {
			if h, err = b.inceptionResidual(fmt.Sprintf("%s.%d", r.module, j), h, r.branches, r.scale, true); err != nil {
				return nil, err
			}
		}
		mark(r.module, r.units, h)
	}
	if h, err = b.inceptionResidual("block8", h, block8, 1, false); err != nil {
		return nil, err
	}
	mark("block8", 1, h)
	if h, err = b.convNormAct("conv2d_7b", h, conv1x1(irFeatures)); err != nil {
		return nil, err
	}
	mark("conv2d_7b", 0, h)
	return h, nil
}

// convNormAct appends timm's ConvNormAct: name.conv without bias, name.bn with its ReLU.
func (b *builder) convNormAct(name string, in *act, c irConv) (*act, error) {
	h, err := b.convNode(name+".conv", in, c.cout, c.kh, c.kw, c.params())
	if err != nil {
		return nil, err
	}
	return b.bn(name+".bn", h, true, nil).y, nil
}

// inceptionBlock appends the branches of a block, all reading in, and concatenates their outputs in
// order.
func (b *builder) inceptionBlock(prefix string, in *act, branches []irBranch) (*act, error) {
	outs, err := b.inceptionBranches(prefix, in, branches)
	if err != nil {
		return nil, err
	}
	return b.concat(prefix, outs...), nil
}

// inceptionBranches appends the branches of a block, all reading in, and returns their outputs. A branch
// of one layer is named prefix.branchK; the layers of a longer one, its pooling included, prefix.branchK.i.
// A pooling branch comes last in every block, so that in the backward pass the max-pool, which writes its
// input's gradient, runs before the convolutions that add to it.
func (b *builder) inceptionBranches(prefix string, in *act, branches []irBranch) ([]*act, error) {
	outs := make([]*act, len(branches))
	for k, br := range branches {
		name := fmt.Sprintf("%s.branch%d", prefix, k)
		layer := func(i int) string {
			if len(br.convs) == 1 && br.pool == noPool || len(br.convs) == 0 {
				return name
			}
			return fmt.Sprintf("%s.%d", name, i)
		}
		h, i := in, 0
		var err error
		switch br.pool {
		case maxPool:
			h, err = b.maxPool(layer(i), h, backend.PoolParams{Kernel: 3, Stride: 2})
			i++
		case avgPool:
			h, err = b.avgPool(layer(i), h, backend.PoolParams{Kernel: 3, Stride: 1, Pad: 1, ExcludePad: true})
			i++
		}
		if err != nil {
			return nil, err
		}
		for _, c := range br.convs {
			if h, err = b.convNormAct(layer(i), h, c); err != nil {
				return nil, err
			}
			i++
		}
		outs[k] = h
	}
	return outs, nil
}

// inceptionResidual appends a residual unit: its branches concatenated, the closing 1x1 convolution
// prefix.conv2d with its bias, and the scaled sum with the unit's input.
func (b *builder) inceptionResidual(prefix string, in *act, branches []irBranch, scale float32, relu bool) (*act, error) {
	outs, err := b.inceptionBranches(prefix, in, branches)
	if err != nil {
		return nil, err
	}
	a, err := b.convNode(prefix+".conv2d", b.concat(prefix+".cat", outs...), in.c, 1, 1, backend.ConvParams{Stride: 1})
	if err != nil {
		return nil, err
	}
	if a.h != in.h || a.w != in.w {
		return nil, fmt.Errorf("model %s: %s: the branches give %s, the input is %s", b.g.spec.Name, prefix, a.shape(), in.shape())
	}
	n := &scaledResidualNode{
		name: prefix,
		p:    backend.ScaledResidualParams{Scale: scale, ReLU: relu},
		bias: b.param(prefix+".conv2d.bias", ConvBias, in.c),
		a:    a, z: in,
		y: b.newAct(prefix, in.c, in.h, in.w),
	}
	a.gradOf = n.y // the backward writes a's gradient over y's (the op allows DA to be DY)
	b.g.nodes = append(b.g.nodes, n)
	return n.y, nil
}

// scaledResidualNode closes an Inception-ResNet unit: y = act(scale*(a + bias) + z), with a the closing
// convolution's output before its bias and z the unit's input.
type scaledResidualNode struct {
	name    string
	p       backend.ScaledResidualParams
	bias    *Param
	a, z, y *act
}

func (*scaledResidualNode) macs() int64 { return 0 }

func (s *scaledResidualNode) forward(n *Net, _ bool) error {
	if err := n.dev.ScaledResidual(s.p, s.a.cur, s.bias.Value, s.z.cur, s.y.cur); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// backward writes the gradients of a (into y's storage), of the bias, and of z, added to what z's
// branches wrote, which is nothing yet: the sum is z's last reader, so it runs first.
func (s *scaledResidualNode) backward(n *Net) error {
	if err := n.dev.ScaledResidualBackward(s.p, backend.ScaledResidualGrads{
		Y: s.y.cur, DY: s.y.dcur, DA: s.a.dcur, DBias: s.bias.Grad, DZ: s.z.dcur, Accumulate: s.z.gradWritten,
	}); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.a.gradWritten, s.z.gradWritten = true, true
	return nil
}

func (s *scaledResidualNode) acts() []*act         { return []*act{s.a, s.z, s.y} }
func (s *scaledResidualNode) trainables() []*Param { return []*Param{s.bias} }
