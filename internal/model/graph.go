package model

import (
	"errors"
	"fmt"

	"resnet/internal/backend"
)

// ParamKind says what a named tensor of the parameter table is.
type ParamKind int

const (
	ConvWeight    ParamKind = iota // (Cout, Cin, kH, kW)
	BNWeight                       // gamma (C)
	BNBias                         // beta (C)
	BNRunningMean                  // (C), not trained
	BNRunningVar                   // (C), not trained
	FCWeight                       // (classes, features)
	FCBias                         // (classes)
	ConvBias                       // (Cout): the SE module's 1x1 convolutions have one
)

// Trainable reports whether the optimizer updates tensors of this kind.
func (k ParamKind) Trainable() bool { return k != BNRunningMean && k != BNRunningVar }

// Param is one named tensor of the parameter table; names follow torchvision's state_dict.
type Param struct {
	Name  string
	Shape backend.Shape
	Kind  ParamKind
	// Value, Grad and Momentum are views into the net's single parameter, gradient and momentum
	// allocations (Grad and Momentum are unused for running statistics).
	Value, Grad, Momentum backend.Tensor
	// zeroInit marks the last BN gamma of a residual branch (the last convolution of a pre-activation
	// branch), set to 0 under Spec.ZeroInitResidual.
	zeroInit bool
	offset   int
}

// act is an activation of the graph: its per-sample shape and, once allocated, its value and gradient.
type act struct {
	name     string
	c, h, w  int
	needGrad bool
	// flat marks the (N, C) activations: the pooled features and the logits. Every other activation is
	// (N, C, H, W), also where its map is 1x1 (the last stages of an ImageNet net on CIFAR-sized inputs).
	flat      bool
	val, grad backend.Tensor // allocated for the net's batch capacity
	cur, dcur backend.Tensor // the same storage viewed with the current batch size
	// gradWritten is set once some node has written this activation's gradient in the current backward
	// pass; later writers accumulate (the residual fork).
	gradWritten bool
	// gradOf, when set, is the activation whose gradient storage this one shares: an input of a residual
	// add, whose gradient is the sum's own.
	gradOf *act
}

func (a *act) shape() string { return fmt.Sprintf("%dx%dx%d", a.c, a.h, a.w) }

// node is one layer of the graph with a hand-written forward and backward.
type node interface {
	forward(n *Net, train bool) error
	backward(n *Net) error
	macs() int64 // multiply-adds per sample
	// acts lists the activations the node reads or writes; its backward touches no other activation's
	// gradient (gradientSlots relies on it).
	acts() []*act
	// trainables lists the trainable parameters whose gradients its backward writes (readyOffsets relies on
	// it).
	trainables() []*Param
}

type convNode struct {
	name    string
	p       backend.ConvParams
	kh, kw  int
	w       *Param
	in, out *act
}

type bnNode struct {
	name                  string
	eps                   float32
	gamma, beta, mean, vr *Param
	x, y, z               *act // z: shortcut input when the BN closes a residual unit
	relu                  bool
	saveMean, saveInvStd  backend.Tensor
}

type maxPoolNode struct {
	p       backend.PoolParams
	in, out *act
}

type avgPoolNode struct{ in, out *act }

type linearNode struct {
	w, b    *Param
	in, out *act
	// wMatrix is w's (Out, In) shape, which a classifier stored as a 1x1 convolution is viewed with.
	wMatrix backend.Shape
}

func (c *convNode) macs() int64 {
	return int64(c.out.c) * int64(c.out.h) * int64(c.out.w) * int64(c.in.c/c.p.GroupCount()) * int64(c.kh*c.kw)
}
func (*bnNode) macs() int64      { return 0 }
func (*maxPoolNode) macs() int64 { return 0 }
func (*avgPoolNode) macs() int64 { return 0 }
func (l *linearNode) macs() int64 {
	return int64(l.in.c) * int64(l.out.c)
}

// graph is a spec turned into layers with known shapes, before any device memory exists.
type graph struct {
	spec   Spec
	params []*Param
	nodes  []node
	acts   []*act
	input  *act
	logits *act
	// scoreMap is the class-score map of a fully-convolutional graph (nil otherwise).
	scoreMap *act
	stages   []StageInfo
}

// StageInfo describes the output of the stem, each stage and the head.
type StageInfo struct {
	Name    string
	Blocks  int
	C, H, W int
	Params  int64
	MACs    int64
}

type builder struct {
	g        *graph
	dropouts int // dropout layers so far, the next one's index
}

// topology builds the layers of a net that is not ResNet-shaped, from the input to the last feature map
// (after its last BN-ReLU); the common head, global average pooling and the classifier, follows it.
type topology struct {
	// validate checks the fields of the spec the builder reads (Validate has checked the common ones).
	validate func(s Spec) error
	// features appends the layers after input and returns the last feature map. It calls mark after the
	// stem and after each stage, with the stage's name, its unit count and its output.
	features func(b *builder, input *act, mark func(name string, blocks int, out *act)) (*act, error)
	// classifier is the name of the classifier's weight and bias without ".weight".
	classifier string
	// depth is the net's depth as its paper counts it (Spec.Depth), units the model summary's description
	// of its units (Spec.Units) and wiring how they connect (Spec.Wiring); nil or "" leave the ResNet's.
	depth  func(s Spec) int
	units  func(s Spec) string
	wiring string
	// init is the reference implementation's initialisation that Init follows; the zero value is
	// torchvision's ResNet's.
	init initScheme
}

// initScheme is how Init draws a net's convolutions and classifier, as the reference implementation of its
// topology does. BNs start the same in every scheme (gamma 1, beta 0), and so do convolution biases
// (PyTorch's default, uniform in +-1/sqrt(fan_in)).
type initScheme int

const (
	// initResNet is torchvision's ResNet: convolutions He normal over their fan-out (kaiming_normal_ with
	// mode="fan_out"), the classifier PyTorch's default, weight and bias uniform in +-1/sqrt(fan_in).
	initResNet initScheme = iota
	// initDenseNet is torchvision's DenseNet: convolutions He normal over their fan-in (kaiming_normal_'s
	// default mode), the classifier's weight PyTorch's default and its bias 0.
	initDenseNet
	// initTorchDefault is PyTorch's default for every layer, which timm's Inception-ResNet-v2 keeps (it
	// sets no initialisation of its own): convolutions uniform in +-1/sqrt(fan_in) (kaiming_uniform_ with
	// a = sqrt(5)), the classifier as in initResNet.
	initTorchDefault
)

// topologies are the builders of Spec.Topology, registered by their files' init.
var topologies = map[string]topology{}

func (b *builder) newAct(name string, c, h, w int) *act {
	a := &act{name: name, c: c, h: h, w: w, needGrad: true}
	b.g.acts = append(b.g.acts, a)
	return a
}

func (b *builder) param(name string, kind ParamKind, shape ...int) *Param {
	p := &Param{Name: name, Shape: backend.Shape(shape), Kind: kind}
	b.g.params = append(b.g.params, p)
	return p
}

func (b *builder) conv(name string, in *act, cout, k, stride, pad int) (*act, error) {
	return b.groupedConv(name, in, cout, k, stride, pad, 1)
}

// groupedConv is conv in groups: its weight is (cout, in.c/groups, k, k).
func (b *builder) groupedConv(name string, in *act, cout, k, stride, pad, groups int) (*act, error) {
	p := backend.ConvParams{Stride: stride, Pad: pad}
	if groups > 1 {
		p.Groups = groups
	}
	return b.convNode(name, in, cout, k, k, p)
}

// convNode appends a convolution of a kh x kw kernel with params p, weight (cout, in.c/groups, kh, kw).
func (b *builder) convNode(name string, in *act, cout, kh, kw int, p backend.ConvParams) (*act, error) {
	ph, pw := p.Padding()
	if in.h+2*ph < kh || in.w+2*pw < kw {
		return nil, &spatialError{layer: name, what: fmt.Sprintf("input %s is too small for a %dx%d/%d convolution", in.shape(), kh, kw, p.Stride)}
	}
	out := b.newAct(name, cout, backend.OutSize(in.h, kh, p.Stride, ph), backend.OutSize(in.w, kw, p.Stride, pw))
	w := b.param(name+".weight", ConvWeight, cout, in.c/p.GroupCount(), kh, kw)
	b.g.nodes = append(b.g.nodes, &convNode{name: name, p: p, kh: kh, kw: kw, w: w, in: in, out: out})
	return out, nil
}

// poolOutput adds the output of a pool (what: "max-pool", "average pool") of window p over in, named name;
// a window that does not fit the padded input is a spatial error.
func (b *builder) poolOutput(name, what string, in *act, p backend.PoolParams) (*act, error) {
	if in.h+2*p.Pad < p.Kernel || in.w+2*p.Pad < p.Kernel {
		return nil, &spatialError{layer: name, what: fmt.Sprintf("input %s is too small for a %dx%d/%d %s", in.shape(), p.Kernel, p.Kernel, p.Stride, what)}
	}
	return b.newAct(name, in.c, backend.OutSize(in.h, p.Kernel, p.Stride, p.Pad), backend.OutSize(in.w, p.Kernel, p.Stride, p.Pad)), nil
}

// maxPool appends a max-pool of window p over in, named name.
func (b *builder) maxPool(name string, in *act, p backend.PoolParams) (*act, error) {
	out, err := b.poolOutput(name, "max-pool", in, p)
	if err != nil {
		return nil, err
	}
	b.g.nodes = append(b.g.nodes, &maxPoolNode{p: p, in: in, out: out})
	return out, nil
}

// stemPool appends the 3x3/2 max-pool with padding 1 that ends an ImageNet stem (the ResNets', the
// pre-activation nets', DenseNet's).
func (b *builder) stemPool(name string, in *act) (*act, error) {
	return b.maxPool(name, in, backend.PoolParams{Kernel: 3, Stride: 2, Pad: 1})
}

func (b *builder) bn(name string, x *act, relu bool, z *act) *bnNode {
	y := b.newAct(name, x.c, x.h, x.w)
	n := &bnNode{
		name:  name,
		eps:   b.g.spec.bnEps(),
		gamma: b.param(name+".weight", BNWeight, x.c),
		beta:  b.param(name+".bias", BNBias, x.c),
		mean:  b.param(name+".running_mean", BNRunningMean, x.c),
		vr:    b.param(name+".running_var", BNRunningVar, x.c),
		x:     x, y: y, z: z, relu: relu,
	}
	b.g.nodes = append(b.g.nodes, n)
	return n
}

// block appends one residual (or plain) unit and returns its output.
func (b *builder) block(prefix string, in *act, width, stride int) (*act, error) {
	s := b.g.spec
	outC := width * s.Block.Expansion()
	var h *act
	var err error
	if s.Block == Basic {
		if h, err = b.conv(prefix+".conv1", in, width, 3, stride, 1); err != nil {
			return nil, err
		}
		h = b.bn(prefix+".bn1", h, true, nil).y
		if h, err = b.conv(prefix+".conv2", h, outC, 3, 1, 1); err != nil {
			return nil, err
		}
	} else {
		s1, s3 := 1, stride
		if s.StrideIn1x1 {
			s1, s3 = stride, 1
		}
		mid := s.BottleneckWidth(width)
		if h, err = b.conv(prefix+".conv1", in, mid, 1, s1, 0); err != nil {
			return nil, err
		}
		h = b.bn(prefix+".bn1", h, true, nil).y
		if h, err = b.groupedConv(prefix+".conv2", h, mid, 3, s3, 1, s.groups()); err != nil {
			return nil, err
		}
		h = b.bn(prefix+".bn2", h, true, nil).y
		if h, err = b.conv(prefix+".conv3", h, outC, 1, 1, 0); err != nil {
			return nil, err
		}
	}
	last := prefix + ".bn2"
	if s.Block == Bottleneck {
		last = prefix + ".bn3"
	}
	if !s.Residual {
		return b.bn(last, h, true, nil).y, nil
	}
	changes := stride != 1 || in.c != outC
	z := in
	if s.Shortcut == 'C' || (s.Shortcut == 'B' && changes) {
		d, err := b.conv(prefix+".downsample.0", in, outC, 1, stride, 0)
		if err != nil {
			return nil, err
		}
		z = b.bn(prefix+".downsample.1", d, false, nil).y
	} else if changes && (outC < in.c || (outC-in.c)%2 != 0) {
		return nil, fmt.Errorf("model %s: %s: an option-A shortcut cannot map %d to %d channels (needs an even increase)", s.Name, prefix, in.c, outC)
	}
	if s.SEReduction > 0 {
		return b.seClose(prefix, last, h, z)
	}
	n := b.bn(last, h, true, z)
	n.gamma.zeroInit = true
	if z != in {
		return n.y, nil
	}
	if in.h != n.y.h*stride || in.w != n.y.w*stride {
		return nil, &spatialError{layer: prefix, what: fmt.Sprintf("an option-A shortcut cannot subsample %s to %s", in.shape(), n.y.shape())}
	}
	return n.y, nil
}

// newGraph builds the layer graph of a spec and checks the shape after every stage.
func newGraph(s Spec) (*graph, error) { return newGraphFor(s, s.InputSize, s.InputSize, false) }

// newGraphFor builds the graph for inputs of h x w pixels. With fullyConv the head is the fully-
// convolutional form of the classifier: the FC weights applied as a 1x1 convolution at every position of
// the last feature map (the class-score map), then averaged over positions. Its "fc.weight" parameter is
// shaped (classes, features, 1, 1) and "fc.bias" is left for the caller to add after the average.
// An input size the strides cannot take gives an *InputSizeError.
func newGraphFor(s Spec, inH, inW int, fullyConv bool) (*graph, error) {
	g, err := buildGraph(s, inH, inW, fullyConv)
	var se *spatialError
	if errors.As(err, &se) {
		return nil, newInputSizeError(s, inH, inW, se)
	}
	return g, err
}

// buildGraph is newGraphFor without the search for the sizes that work.
func buildGraph(s Spec, inH, inW int, fullyConv bool) (*graph, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	g := &graph{spec: s}
	b := &builder{g: g}
	g.input = b.newAct("input", s.InChannels, inH, inW)
	g.input.needGrad = false
	mark := func(name string, blocks int, a *act, p0, n0 int) {
		st := StageInfo{Name: name, Blocks: blocks, C: a.c, H: a.h, W: a.w}
		for _, p := range g.params[p0:] {
			if p.Kind.Trainable() {
				st.Params += int64(p.Shape.Numel())
			}
		}
		for _, n := range g.nodes[n0:] {
			st.MACs += n.macs()
		}
		g.stages = append(g.stages, st)
	}

	h := g.input
	var err error
	if t, ok := topologies[s.Topology]; ok {
		p0, n0 := 0, 0
		h, err = t.features(b, h, func(name string, blocks int, out *act) {
			mark(name, blocks, out, p0, n0)
			p0, n0 = len(g.params), len(g.nodes)
		})
		if err != nil {
			return nil, err
		}
		return g.head(b, h, fullyConv, mark)
	}
	if s.PreAct {
		if h, err = b.preactStem(h); err != nil {
			return nil, err
		}
	} else if s.Family == ImageNet {
		if h, err = b.conv("conv1", h, s.StemWidth, 7, 2, 3); err != nil {
			return nil, err
		}
		if h, err = b.stemPool("maxpool", b.bn("bn1", h, true, nil).y); err != nil {
			return nil, err
		}
	} else {
		if h, err = b.conv("conv1", h, s.StemWidth, 3, 1, 1); err != nil {
			return nil, err
		}
		h = b.bn("bn1", h, true, nil).y
	}
	mark("stem", 0, h, 0, 0)

	sideH, sideW := h.h, h.w
	for i, blocks := range s.Layers {
		p0, n0 := len(g.params), len(g.nodes)
		stride := 1
		if i > 0 {
			stride = 2
		}
		for j := 0; j < blocks; j++ {
			st := 1
			if j == 0 {
				st = stride
			}
			if s.PreAct {
				h, err = b.preactBlock(fmt.Sprintf("stages.%d.blocks.%d", i, j), h, s.Widths[i], st)
			} else {
				h, err = b.block(fmt.Sprintf("layer%d.%d", i+1, j), h, s.Widths[i], st)
			}
			if err != nil {
				return nil, err
			}
		}
		sideH, sideW = backend.OutSize(sideH, 1, stride, 0), backend.OutSize(sideW, 1, stride, 0)
		wantC := s.Widths[i] * s.Block.Expansion()
		if h.c != wantC || h.h != sideH || h.w != sideW {
			return nil, fmt.Errorf("model %s: stage %d produces %s, want %dx%dx%d", s.Name, i+1, h.shape(), wantC, sideH, sideW)
		}
		mark(fmt.Sprintf("layer%d", i+1), blocks, h, p0, n0)
	}

	if s.PreAct {
		p0, n0 := len(g.params), len(g.nodes)
		h = b.bn("norm", h, true, nil).y
		return g.head(b, h, fullyConv, func(name string, blocks int, a *act, _, _ int) {
			mark(name, blocks, a, p0, n0)
		})
	}
	return g.head(b, h, fullyConv, mark)
}

// head appends global average pooling and the classifier to the last feature map h and marks them as the
// head stage.
func (g *graph) head(b *builder, h *act, fullyConv bool, mark func(name string, blocks int, a *act, p0, n0 int)) (*graph, error) {
	s := g.spec
	p0, n0 := len(g.params), len(g.nodes)
	fc := s.ClassifierName()
	if fullyConv {
		w := b.param(fc+".weight", ConvWeight, s.NumClasses, h.c, 1, 1)
		b.param(fc+".bias", FCBias, s.NumClasses)
		scores := b.newAct("fc", s.NumClasses, h.h, h.w)
		g.nodes = append(g.nodes, &convNode{name: "fc", p: backend.ConvParams{Stride: 1}, kh: 1, kw: 1, w: w, in: h, out: scores})
		g.scoreMap = scores
		g.logits = b.newAct("avgpool", s.NumClasses, 1, 1)
		g.logits.flat = true
		g.nodes = append(g.nodes, &avgPoolNode{in: scores, out: g.logits})
		mark("head", 0, g.logits, p0, n0)
		return g, nil
	}
	pooled := b.newAct("avgpool", h.c, 1, 1)
	pooled.flat = true
	g.nodes = append(g.nodes, &avgPoolNode{in: h, out: pooled})
	g.logits = b.newAct("fc", s.NumClasses, 1, 1)
	g.logits.flat = true
	wShape := []int{s.NumClasses, h.c}
	if s.PreAct {
		wShape = append(wShape, 1, 1) // timm's head is a 1x1 convolution
	}
	g.nodes = append(g.nodes, &linearNode{
		w:  b.param(fc+".weight", FCWeight, wShape...),
		b:  b.param(fc+".bias", FCBias, s.NumClasses),
		in: pooled, out: g.logits, wMatrix: backend.Shape{s.NumClasses, h.c},
	})
	mark("head", 0, g.logits, p0, n0)
	return g, nil
}

// Stats are a spec's size and cost per sample.
type Stats struct {
	Params int64 // trainable: conv weights, BN gamma and beta, FC weight and bias
	MACs   int64 // convolutions and the FC layer
	Stages []StageInfo
}

// Describe computes a spec's parameter count, MACs and per-stage shapes without allocating anything.
func Describe(s Spec) (Stats, error) {
	g, err := newGraph(s)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Stages: g.stages}
	for _, x := range g.stages {
		st.Params += x.Params
		st.MACs += x.MACs
	}
	return st, nil
}

// SameShape reports whether a shape given as ints equals a parameter's shape.
func SameShape(a []int, b backend.Shape) bool { return backend.Shape(a).Equal(b) }

func (c *convNode) acts() []*act         { return []*act{c.in, c.out} }
func (c *convNode) trainables() []*Param { return []*Param{c.w} }
func (b *bnNode) trainables() []*Param   { return []*Param{b.gamma, b.beta} }
func (l *linearNode) trainables() []*Param {
	return []*Param{l.w, l.b}
}
func (*maxPoolNode) trainables() []*Param { return nil }
func (*avgPoolNode) trainables() []*Param { return nil }
func (b *bnNode) acts() []*act            { return []*act{b.x, b.y, b.z} }
func (m *maxPoolNode) acts() []*act       { return []*act{m.in, m.out} }
func (a *avgPoolNode) acts() []*act       { return []*act{a.in, a.out} }
func (l *linearNode) acts() []*act        { return []*act{l.in, l.out} }
