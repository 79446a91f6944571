package model

// Dropout between a pre-activation basic unit's two convolutions (Wide ResNets). The mask of a layer in a
// training step is a hash of (run seed, step, layer index, element) (backend.DropoutParams), so the
// backward pass draws the forward's mask again and a resumed run draws what the uninterrupted run would.

import (
	"fmt"

	"resnet/internal/backend"
)

// dropoutNode is inverted dropout from in to out in a training forward, and a copy in inference. Its
// input is the unit's second BN-ReLU, whose output that BN's backward still reads, so out has storage of
// its own.
type dropoutNode struct {
	name    string
	p       float64
	layer   int // index among the net's dropout layers, from 0
	in, out *act
}

func (*dropoutNode) macs() int64 { return 0 }

// params are the node's mask coordinates in the net's current training step (SetDropoutKey).
func (d *dropoutNode) params(n *Net) backend.DropoutParams {
	return backend.DropoutParams{P: d.p, Seed: n.dropoutSeed, Step: n.dropoutStep, Layer: d.layer}
}

func (d *dropoutNode) forward(n *Net, train bool) error {
	var err error
	if train {
		err = n.dev.DropoutForward(d.params(n), d.in.cur, d.out.cur)
	} else {
		err = n.dev.Copy(d.out.cur, d.in.cur)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	return nil
}

func (d *dropoutNode) backward(n *Net) error {
	// The dropout is its input's only reader: the gradient is written, never added.
	if err := n.dev.DropoutBackward(d.params(n), d.out.dcur, d.in.dcur); err != nil {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	d.in.gradWritten = true
	return nil
}

// dropout appends a dropout layer of the spec's probability after in and returns its output.
func (b *builder) dropout(name string, in *act) *act {
	out := b.newAct(name, in.c, in.h, in.w)
	b.g.nodes = append(b.g.nodes, &dropoutNode{name: name, p: b.g.spec.Dropout, layer: b.dropouts, in: in, out: out})
	b.dropouts++
	return out
}

// SetDropoutKey sets the run seed and the training step that the dropout masks of the following training
// forwards are drawn for. A trainer calls it before each step with the step's index, so a resumed run draws
// the masks of the run it continues.
func (n *Net) SetDropoutKey(seed, step int64) { n.dropoutSeed, n.dropoutStep = uint64(seed), step }

// DropoutKey is what SetDropoutKey last set.
func (n *Net) DropoutKey() (seed, step int64) { return int64(n.dropoutSeed), n.dropoutStep }

func (d *dropoutNode) acts() []*act       { return []*act{d.in, d.out} }
func (*dropoutNode) trainables() []*Param { return nil }
