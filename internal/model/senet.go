package model

// Squeeze-and-excitation ResNets (Hu et al., "Squeeze-and-Excitation Networks", 2018) as timm defines
// them (timm/models/resnet.py with attn_layer='se', timm/layers/squeeze_excite.py SEModule): torchvision's
// ResNet with an SE module in every residual unit, after the branch's last BN and before the residual
// add. The module pools each channel of the branch (the squeeze), maps the pooled vector through a 1x1
// convolution with bias to width/16 channels, a ReLU, and a 1x1 convolution with bias back (the
// excitation), and scales each channel of the branch by the sigmoid of its result (the gate). Parameter
// names are timm's: layer1.0.se.fc1.weight (R, C, 1, 1), layer1.0.se.fc1.bias (R), se.fc2.*.
//
// On the device the module is three ops: the global average pool, the excitation (both fully connected
// layers, on the pooled (N, C) features in f32), and the gate fused with the unit's residual add and
// ReLU, out = relu(bn3(x) * sigmoid(s) + shortcut). The branch's last BN then runs without ReLU or
// residual.

import (
	"fmt"
	"strconv"

	"resnet/internal/backend"
)

// seReduction is timm's rd_ratio of 1/16.
const seReduction = 16

// seWidth is the SE bottleneck's width for c channels: timm's make_divisible(c/reduction, 8,
// round_limit=0), the nearest multiple of 8 (halves rounding up), at least 8.
func seWidth(c, reduction int) int {
	v := float64(c) / float64(reduction)
	return max(8, int(v+4)/8*8)
}

// SESpec is seresnet<depth> for depth in 50, 101, 152: resnet<depth> with an SE module in every unit.
func SESpec(depth int, _ bool) (Spec, error) {
	if depth != 50 && depth != 101 && depth != 152 {
		return Spec{}, fmt.Errorf("model: SE-ResNet depth must be one of 50, 101, 152 (got %d)", depth)
	}
	s, err := ImageNetSpec(depth, true)
	if err != nil {
		return Spec{}, err
	}
	s.Name = "seresnet" + strconv.Itoa(depth)
	s.SEReduction = seReduction
	return s, nil
}

// SEResNeXtSpec is seresnext<depth>_<groups>x<width>d: resnext<depth>_<groups>x<width>d with an SE
// module in every unit, as timm's seresnext50_32x4d.
func SEResNeXtSpec(depth, groups, width int) (Spec, error) {
	s, err := ResNeXtSpec(depth, groups, width)
	if err != nil {
		return Spec{}, err
	}
	s.Name = "se" + s.Name
	s.SEReduction = seReduction
	return s, nil
}

// registerSENets adds the SE-ResNets and SE-ResNeXts to the name table, after the nets they extend.
func registerSENets() {
	register(&family{prefix: "seresnet", residual: true, depths: []int{50, 101, 152},
		rule: "one of 50, 101, 152", build: SESpec})
	register(&family{prefix: "seresnext", residual: true, depths: []int{50}, rule: "50",
		variants: map[int][]string{50: {"32x4d"}},
		buildVariant: func(depth int, v string) (Spec, error) {
			g, w, err := parseResNeXtWidth(v)
			if err != nil {
				return Spec{}, err
			}
			return SEResNeXtSpec(depth, g, w)
		}})
}

// seNode is an SE module closing a residual unit: out = relu(x * sigmoid(s) + z), with s the excitation
// of x's pooled channels.
type seNode struct {
	name                   string
	fc1w, fc1b, fc2w, fc2b *Param
	// fc1Shape and fc2Shape view the (Cout, Cin, 1, 1) weights as the (Out, In) matrices of the
	// excitation, made once so that a step allocates nothing.
	fc1Shape, fc2Shape     backend.Shape
	x, z, out              *act // x: the branch's last BN output; z: the shortcut
	pooled, hidden, logits *act // (N, C), (N, R), (N, C), f32
}

func (s *seNode) macs() int64 { return 2 * int64(s.hidden.c) * int64(s.x.c) }

// seClose appends the last BN of a unit's branch h (named last) without ReLU, and the SE module that
// gates it and adds the shortcut z; it returns the unit's output.
func (b *builder) seClose(prefix, last string, h, z *act) (*act, error) {
	if z.c != h.c || z.h != h.h || z.w != h.w {
		return nil, fmt.Errorf("model %s: %s: the SE gate adds a shortcut of the branch's shape %s, got %s (use shortcut B or C)",
			b.g.spec.Name, prefix, h.shape(), z.shape())
	}
	bn := b.bn(last, h, false, nil)
	bn.gamma.zeroInit = true
	x := bn.y
	c, r := x.c, seWidth(x.c, b.g.spec.SEReduction)
	name := prefix + ".se"
	flat := func(n string, c int) *act {
		a := b.newAct(n, c, 1, 1)
		a.flat = true
		return a
	}
	n := &seNode{name: name, x: x, z: z, fc1Shape: backend.Shape{r, c}, fc2Shape: backend.Shape{c, r}}
	n.pooled = flat(name+".pool", c)
	n.fc1w = b.param(name+".fc1.weight", ConvWeight, r, c, 1, 1)
	n.fc1b = b.param(name+".fc1.bias", ConvBias, r)
	n.hidden = flat(name+".fc1", r)
	n.fc2w = b.param(name+".fc2.weight", ConvWeight, c, r, 1, 1)
	n.fc2b = b.param(name+".fc2.bias", ConvBias, c)
	n.logits = flat(name+".fc2", c)
	n.out = b.newAct(prefix, c, x.h, x.w)
	b.g.nodes = append(b.g.nodes, n)
	return n.out, nil
}

// gate is the op configuration of the module's gate: it closes a residual unit.
var gate = backend.ChannelGateParams{ReLU: true, Residual: true}

// matrix is a weight's tensor viewed with the shape of a matrix.
func matrix(t backend.Tensor, shape backend.Shape) backend.Tensor {
	t.Shape = shape
	return t
}

func (s *seNode) forward(n *Net, _ bool) error {
	if err := n.dev.GlobalAvgPoolForward(s.x.cur, s.pooled.cur); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := n.dev.ExcitationForward(backend.ExcitationTensors{
		P:  s.pooled.cur,
		W1: matrix(s.fc1w.Value, s.fc1Shape), B1: s.fc1b.Value,
		W2: matrix(s.fc2w.Value, s.fc2Shape), B2: s.fc2b.Value,
		H: s.hidden.cur, S: s.logits.cur,
	}); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := n.dev.ChannelGateForward(gate, s.x.cur, s.logits.cur, s.z.cur, s.out.cur); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// backward runs the gate's backward, which writes the gradient of x*sigmoid(s) + z straight into z's
// gradient (the module must be the first consumer of z to run backward, as for the BN that closes a
// plain unit), then the excitation's, then the gradient of x: through the gate and through the squeeze,
// in one pass.
func (s *seNode) backward(n *Net) error {
	if s.z.gradWritten {
		return fmt.Errorf("%s: shortcut gradient already written (graph order broken)", s.name)
	}
	dg := s.z.dcur
	if err := n.dev.ChannelGateBackward(gate, backend.ChannelGateGrads{
		X: s.x.cur, S: s.logits.cur, Y: s.out.cur, DY: s.out.dcur, DG: dg, DS: s.logits.dcur,
	}); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.z.gradWritten = true
	if err := n.dev.ExcitationBackward(backend.ExcitationGrads{
		P: s.pooled.cur, W1: matrix(s.fc1w.Value, s.fc1Shape), W2: matrix(s.fc2w.Value, s.fc2Shape), H: s.hidden.cur,
		DS: s.logits.dcur, DH: s.hidden.dcur, DP: s.pooled.dcur,
		DW1: matrix(s.fc1w.Grad, s.fc1Shape), DB1: s.fc1b.Grad, DW2: matrix(s.fc2w.Grad, s.fc2Shape), DB2: s.fc2b.Grad,
	}); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := n.dev.ChannelGateBackwardData(s.logits.cur, dg, s.pooled.dcur, s.x.dcur); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.x.gradWritten = true
	return nil
}

func (s *seNode) acts() []*act         { return []*act{s.x, s.z, s.out, s.pooled, s.hidden, s.logits} }
func (s *seNode) trainables() []*Param { return []*Param{s.fc1w, s.fc1b, s.fc2w, s.fc2b} }
