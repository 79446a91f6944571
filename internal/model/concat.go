package model

// Two nodes for nets that are not stages of residual units: the channel concatenation of several
// activations (DenseNet's dense connections, Inception's branches) and average pooling over a window
// (DenseNet's transitions, Inception-ResNet's pooling branch). The global average pool of the head is
// avgPoolNode.

import (
	"fmt"
	"slices"

	"resnet/internal/backend"
)

// concatNode writes its parts one after another along the channels of out. Its backward copies each
// part's slice of out's gradient into the part's gradient, adding to it when another reader of the part
// has written it already (a part may feed several concatenations and convolutions). A part must not also
// be read by a BN that comes before the concatenation in the graph: BatchNormBackward writes its input's
// gradient, so running after this node's backward it would overwrite what the node wrote.
type concatNode struct {
	name  string
	parts []*act
	out   *act
}

func (*concatNode) macs() int64 { return 0 }

func (c *concatNode) forward(n *Net, _ bool) error {
	off := 0
	for _, p := range c.parts {
		if err := n.dev.CopyChannels(backend.ChannelCopyParams{DstOffset: off, Channels: p.c}, p.cur, c.out.cur); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		off += p.c
	}
	return nil
}

func (c *concatNode) backward(n *Net) error {
	off := 0
	for _, p := range c.parts {
		if p.needGrad {
			cp := backend.ChannelCopyParams{SrcOffset: off, Channels: p.c, Accumulate: p.gradWritten}
			if err := n.dev.CopyChannels(cp, c.out.dcur, p.dcur); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			p.gradWritten = true
		}
		off += p.c
	}
	return nil
}

// concat appends the channel concatenation of parts, which must share their height and width (the
// builder's layers decide these, so a mismatch is a bug in the builder, not in the input).
func (b *builder) concat(name string, parts ...*act) *act {
	if len(parts) == 0 {
		panic("model: " + name + ": concatenation of nothing")
	}
	c := 0
	for _, p := range parts {
		if p.h != parts[0].h || p.w != parts[0].w {
			panic(fmt.Sprintf("model: %s: concatenating %s (%s) with %s (%s)", name, p.name, p.shape(), parts[0].name, parts[0].shape()))
		}
		c += p.c
	}
	out := b.newAct(name, c, parts[0].h, parts[0].w)
	b.g.nodes = append(b.g.nodes, &concatNode{name: name, parts: append([]*act(nil), parts...), out: out})
	return out
}

// windowPoolNode is average pooling over a Kernel x Kernel window (PoolParams), with PyTorch's
// count_include_pad unless ExcludePad is set.
type windowPoolNode struct {
	name    string
	p       backend.PoolParams
	in, out *act
}

func (*windowPoolNode) macs() int64 { return 0 }

func (w *windowPoolNode) forward(n *Net, _ bool) error {
	if err := n.dev.AvgPoolForward(w.p, w.in.cur, w.out.cur); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	return nil
}

func (w *windowPoolNode) backward(n *Net) error {
	if !w.in.needGrad {
		return nil
	}
	if err := n.dev.AvgPoolBackward(w.p, w.out.dcur, w.in.dcur, w.in.gradWritten); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	w.in.gradWritten = true
	return nil
}

// avgPool appends average pooling of in over p's window.
func (b *builder) avgPool(name string, in *act, p backend.PoolParams) (*act, error) {
	out, err := b.poolOutput(name, "average pool", in, p)
	if err != nil {
		return nil, err
	}
	b.g.nodes = append(b.g.nodes, &windowPoolNode{name: name, p: p, in: in, out: out})
	return out, nil
}

func (c *concatNode) acts() []*act           { return append(slices.Clip(c.parts), c.out) }
func (w *windowPoolNode) acts() []*act       { return []*act{w.in, w.out} }
func (*concatNode) trainables() []*Param     { return nil }
func (*windowPoolNode) trainables() []*Param { return nil }
