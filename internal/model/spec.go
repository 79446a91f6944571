// Package model holds the architecture specs of the zoo (ImageNet and CIFAR ResNets and their plain
// counterparts, ResNeXt, Wide ResNet, pre-activation and SE nets, and nets of their own topology:
// DenseNet and Inception-ResNet-v2), the builders that turn a spec into a layer graph, and the
// forward/backward orchestration of that graph on a backend.Device.
package model

import (
	"fmt"
	"strconv"
	"strings"
)

// BlockKind is the residual unit type.
type BlockKind string

const (
	Basic      BlockKind = "basic"      // two 3x3 convs
	Bottleneck BlockKind = "bottleneck" // 1x1, 3x3, 1x1 with expansion 4
)

// Expansion is the ratio of a block's output width to its base width.
func (b BlockKind) Expansion() int {
	if b == Bottleneck {
		return 4
	}
	return 1
}

// Family names the input regime a spec is built for.
const (
	ImageNet = "imagenet" // 224x224, 7x7/2 stem + 3x3/2 max-pool, four stages
	CIFAR    = "cifar"    // 32x32, 3x3 stem, three stages of widths 16/32/64
)

// Spec describes a network. Plain networks are the same spec with Residual false.
type Spec struct {
	Name   string    // zoo name, e.g. resnet50, cifar_plain56
	Family string    // ImageNet or CIFAR
	Block  BlockKind // Basic or Bottleneck
	Layers []int     // blocks per stage
	Widths []int     // base width per stage (output width = width * expansion)
	// Residual adds shortcuts; false gives the plain counterpart.
	Residual bool
	// Shortcut is 'A' (zero-padded identity), 'B' (projection where the shape changes) or 'C'
	// (projection on every block).
	Shortcut byte
	// StrideIn1x1 puts the bottleneck's stride on its first 1x1 conv (the paper's original); false puts
	// it on the 3x3 (torchvision "v1.5").
	StrideIn1x1 bool
	// Groups and WidthPerGroup are torchvision's generalisation of the bottleneck (ResNeXt, Wide ResNet):
	// a stage of base width w has bottlenecks int(w*WidthPerGroup/64)*Groups channels wide, whose 3x3 conv
	// runs in Groups groups. 0 means 1 and 64, the ResNet bottleneck.
	Groups           int
	WidthPerGroup    int
	ZeroInitResidual bool
	StemWidth        int
	InChannels       int
	InputSize        int // square input side
	NumClasses       int
	// PreAct builds pre-activation units (BN-ReLU-conv, preact.go) with timm's ResNetV2 names.
	PreAct bool
	// SEReduction, when not 0, closes every residual unit with a squeeze-and-excitation module whose
	// bottleneck has width/SEReduction channels, rounded as timm rounds them (senet.go).
	SEReduction int
	// WidenFactor is a Wide ResNet's k (wrn.go), 0 in the other nets; its depth counts the projections.
	WidenFactor int
	// Dropout is the probability with which a pre-activation basic unit drops each element between its
	// two convolutions in a training forward (inverted dropout); 0 drops nothing.
	Dropout float64
	// Topology names the builder of a net that is not a stem, stages of units and a head (DenseNet in
	// densenet.go, Inception-ResNet in inception_resnet.go), registered in topologies; "" is the
	// ResNet shape the fields above describe. Such a builder reads the fields it documents and ignores
	// the others.
	Topology string
	// GrowthRate is a DenseNet's k, the channels each dense layer adds (densenet.go); 0 in the other nets.
	GrowthRate int
	// BNEps is the epsilon of every batch norm; 0 means PyTorch's default 1e-5 (timm builds
	// Inception-ResNet-v2 with 1e-3).
	BNEps float64
}

// bnEps is the net's batch-norm epsilon.
func (s Spec) bnEps() float32 {
	if s.BNEps == 0 {
		return bnEps
	}
	return float32(s.BNEps)
}

// Depth is the number of weighted layers (convs on the main path plus the FC layer).
func (s Spec) Depth() int {
	if t, ok := topologies[s.Topology]; ok && t.depth != nil {
		return t.depth(s)
	}
	per := 2
	if s.Block == Bottleneck {
		per = 3
	}
	n := 0
	for _, l := range s.Layers {
		n += l
	}
	if s.WidenFactor > 0 {
		return n*per + 4 // the paper's WRN-n-k counts the stem, the three projections and not the FC
	}
	return n*per + 2
}

// Validate checks that a spec can be built.
func (s Spec) Validate() error {
	if s.Topology != "" {
		t, ok := topologies[s.Topology]
		switch {
		case !ok:
			return fmt.Errorf("model %s: unknown topology %q", s.Name, s.Topology)
		case s.NumClasses < 1:
			return fmt.Errorf("model %s: num_classes must be >= 1 (got %d)", s.Name, s.NumClasses)
		case s.InputSize < 1 || s.InChannels < 1:
			return fmt.Errorf("model %s: input size and input channels must be >= 1", s.Name)
		case !(s.BNEps >= 0 && s.BNEps < 1):
			return fmt.Errorf("model %s: batch-norm epsilon must be >= 0 and < 1 (got %g)", s.Name, s.BNEps)
		case s.Dropout != 0:
			return fmt.Errorf("model %s: dropout needs pre-activation basic units (cifar_wrn, cifar_preact_resnet below 164); set model.dropout to 0", s.Name)
		}
		return t.validate(s)
	}
	switch {
	case s.BNEps != 0:
		return fmt.Errorf("model %s: a batch-norm epsilon other than 1e-5 is only for the nets of their own topology (got %g)", s.Name, s.BNEps)
	case s.Block != Basic && s.Block != Bottleneck:
		return fmt.Errorf("model %s: block must be basic or bottleneck (got %q)", s.Name, s.Block)
	case len(s.Layers) == 0 || len(s.Layers) != len(s.Widths):
		return fmt.Errorf("model %s: layers and widths must be non-empty and of equal length (got %d and %d)", s.Name, len(s.Layers), len(s.Widths))
	case s.Shortcut != 'A' && s.Shortcut != 'B' && s.Shortcut != 'C':
		return fmt.Errorf("model %s: shortcut must be A, B or C (got %q)", s.Name, string(s.Shortcut))
	case s.NumClasses < 1:
		return fmt.Errorf("model %s: num_classes must be >= 1 (got %d)", s.Name, s.NumClasses)
	case s.InputSize < 1 || s.InChannels < 1 || s.StemWidth < 1:
		return fmt.Errorf("model %s: input size, input channels and stem width must be >= 1", s.Name)
	case s.Family != ImageNet && s.Family != CIFAR:
		return fmt.Errorf("model %s: family must be %s or %s (got %q)", s.Name, ImageNet, CIFAR, s.Family)
	case s.Groups < 0 || s.WidthPerGroup < 0:
		return fmt.Errorf("model %s: groups and width per group must be >= 1, or 0 for the ResNet bottleneck (got %d and %d)", s.Name, s.Groups, s.WidthPerGroup)
	case s.Block == Basic && (s.groups() != 1 || s.widthPerGroup() != 64):
		return fmt.Errorf("model %s: basic blocks take neither groups nor another width per group (got %d and %d)", s.Name, s.Groups, s.WidthPerGroup)
	case s.SEReduction < 0 || (s.SEReduction > 0 && !s.Residual):
		return fmt.Errorf("model %s: se_reduction must be 0, or > 0 on a residual net (got %d)", s.Name, s.SEReduction)
	case !(s.Dropout >= 0 && s.Dropout < 1):
		return fmt.Errorf("model %s: dropout must be >= 0 and < 1 (got %g)", s.Name, s.Dropout)
	case s.Dropout > 0 && !s.TakesDropout():
		return fmt.Errorf("model %s: dropout needs pre-activation basic units (cifar_wrn, cifar_preact_resnet below 164); set model.dropout to 0", s.Name)
	}
	for i, l := range s.Layers {
		if l < 1 || s.Widths[i] < 1 {
			return fmt.Errorf("model %s: stage %d needs at least one block and a positive width", s.Name, i+1)
		}
	}
	return nil
}

// TakesDropout reports whether the net has a place for dropout: pre-activation basic units, between whose
// two convolutions it goes.
func (s Spec) TakesDropout() bool { return s.PreAct && s.Block == Basic }

func (s Spec) groups() int { return max(s.Groups, 1) }

func (s Spec) widthPerGroup() int {
	if s.WidthPerGroup == 0 {
		return 64
	}
	return s.WidthPerGroup
}

// BottleneckWidth is the width of the 1x1 and 3x3 convolutions of a bottleneck of base width w,
// torchvision's int(w * (width_per_group / 64.)) * groups.
func (s Spec) BottleneckWidth(w int) int { return w * s.widthPerGroup() / 64 * s.groups() }

var imagenetLayers = map[int]struct {
	block  BlockKind
	layers []int
}{
	18:  {Basic, []int{2, 2, 2, 2}},
	34:  {Basic, []int{3, 4, 6, 3}},
	50:  {Bottleneck, []int{3, 4, 6, 3}},
	101: {Bottleneck, []int{3, 4, 23, 3}},
	152: {Bottleneck, []int{3, 8, 36, 3}},
}

// ImageNetSpec is resnet<depth> or plain<depth> for depth in 18, 34, 50, 101, 152: 224x224 input,
// 1000 classes, option B shortcuts.
func ImageNetSpec(depth int, residual bool) (Spec, error) {
	l, ok := imagenetLayers[depth]
	if !ok {
		return Spec{}, fmt.Errorf("model: ImageNet depth must be one of 18, 34, 50, 101, 152 (got %d)", depth)
	}
	name := "resnet"
	if !residual {
		name = "plain"
	}
	return Spec{
		Name:       name + strconv.Itoa(depth),
		Family:     ImageNet,
		Block:      l.block,
		Layers:     append([]int(nil), l.layers...),
		Widths:     []int{64, 128, 256, 512},
		Residual:   residual,
		Shortcut:   'B',
		StemWidth:  64,
		InChannels: 3,
		InputSize:  224,
		NumClasses: 1000,
	}, nil
}

// CIFARSpec is the paper's CIFAR-10 network of depth 6n+2: a 3x3 stem of 16 channels, three stages of n
// basic blocks of widths 16, 32, 64, option A shortcuts, 32x32 input and 10 classes.
func CIFARSpec(depth int, residual bool) (Spec, error) {
	if depth < 8 || (depth-2)%6 != 0 {
		return Spec{}, fmt.Errorf("model: CIFAR depth must be 6n+2 with n >= 1, e.g. 20, 32, 44, 56, 110 (got %d)", depth)
	}
	n := (depth - 2) / 6
	name := "cifar_resnet"
	if !residual {
		name = "cifar_plain"
	}
	return Spec{
		Name:       name + strconv.Itoa(depth),
		Family:     CIFAR,
		Block:      Basic,
		Layers:     []int{n, n, n},
		Widths:     []int{16, 32, 64},
		Residual:   residual,
		Shortcut:   'A',
		StemWidth:  16,
		InChannels: 3,
		InputSize:  32,
		NumClasses: 10,
	}, nil
}

// The ResNets of He et al. (2015) and their plain counterparts, in the order `resnet models` lists them.
func init() {
	imagenetDepths := []int{18, 34, 50, 101, 152}
	const imagenetRule = "one of 18, 34, 50, 101, 152"
	cifarValid := func(d int) bool { return d >= 8 && (d-2)%6 == 0 }
	const cifarRule = "6n+2 with n >= 1 (8, 14, 20, 26, 32, ...)"
	const cifarN = "N = 6n+2 (20, 32, 44, 56, 110, ...)"
	register(&family{prefix: "resnet", aliases: []string{"res"}, residual: true,
		depths: imagenetDepths, rule: imagenetRule, build: ImageNetSpec})
	register(&family{prefix: "plain", depths: imagenetDepths, rule: imagenetRule, build: ImageNetSpec})
	register(&family{prefix: "cifar_resnet", aliases: []string{"cifar_res"}, residual: true,
		depths: []int{20, 32, 44, 56, 110, 1202}, valid: cifarValid, rule: cifarRule, nUsage: cifarN, build: CIFARSpec})
	register(&family{prefix: "cifar_plain", depths: []int{20, 32, 44, 56, 110}, valid: cifarValid,
		rule: cifarRule, nUsage: cifarN, build: CIFARSpec})
	registerWider() // after the ResNets, so that they list first
	registerPreAct()
	registerWide()
	registerSENets()
	registerDenseNets()
	registerInceptionResNet()
}

// Wiring says how the net's units connect, for a model summary: residual, plain, or a topology's own
// ("densely connected").
func (s Spec) Wiring() string {
	if t, ok := topologies[s.Topology]; ok && t.wiring != "" {
		return t.wiring
	}
	if s.Residual {
		return "residual"
	}
	return "plain"
}

// Units describes the net's units for a model summary: "bottleneck blocks", "pre-activation basic blocks
// (widen factor 10, dropout 0.3)", "bottleneck blocks (3x3 in 32 groups of 4 channels; squeeze-and-
// excitation, reduction 16)".
func (s Spec) Units() string {
	if t, ok := topologies[s.Topology]; ok && t.units != nil {
		return t.units(s)
	}
	d := string(s.Block) + " blocks"
	if s.PreAct {
		d = "pre-activation " + d
	}
	var notes []string
	if s.Block == Bottleneck && (s.groups() > 1 || s.widthPerGroup() != 64) {
		w := s.BottleneckWidth(64) / s.groups()
		if s.groups() > 1 {
			notes = append(notes, fmt.Sprintf("3x3 in %d groups of %d channels", s.groups(), w))
		} else {
			notes = append(notes, fmt.Sprintf("%gx wide inside", float64(w)/64))
		}
	}
	if s.WidenFactor > 0 {
		notes = append(notes, fmt.Sprintf("widen factor %d", s.WidenFactor))
	}
	if s.Dropout > 0 {
		notes = append(notes, fmt.Sprintf("dropout %g", s.Dropout))
	}
	if s.SEReduction > 0 {
		notes = append(notes, fmt.Sprintf("squeeze-and-excitation, reduction %d", s.SEReduction))
	}
	if len(notes) > 0 {
		d += " (" + strings.Join(notes, "; ") + ")"
	}
	return d
}
