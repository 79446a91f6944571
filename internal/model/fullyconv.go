package model

import "fmt"

// BuildFullyConv returns the fully-convolutional form of base for inputs of h x w pixels (any size the
// network's strides allow, not only the training square), for inference: the classifier is applied as a
// 1x1 convolution at every position of the last feature map, giving a class-score map (ScoreMapShape)
// that is averaged over positions before the FC bias is added. At the training input size this equals
// the ordinary network (the average and the FC commute). The returned net reads base's parameters in
// place (base must outlive it) and allocates only activations, so one can be built per input shape.
func BuildFullyConv(base *Net, h, w, batch int) (*Net, error) {
	if base.shared {
		return nil, fmt.Errorf("model %s: build the fully-convolutional net from the original net", base.Spec.Name)
	}
	if batch < 1 {
		return nil, fmt.Errorf("model %s: batch size must be >= 1 (got %d)", base.Spec.Name, batch)
	}
	g, err := newFullyConvGraph(base.Spec, h, w)
	if err != nil {
		return nil, err
	}
	n := &Net{Spec: base.Spec, Params: g.params, g: g, dev: base.dev, capacity: batch, bnMomentum: base.bnMomentum, shared: true}
	for _, p := range n.Params {
		bp, ok := base.Param(p.Name)
		if !ok || bp.Shape.Numel() != p.Shape.Numel() {
			return nil, fmt.Errorf("model %s: fully-convolutional parameter %s %v has no counterpart in the net", base.Spec.Name, p.Name, p.Shape)
		}
		p.Value = bp.Value
		p.Value.Shape = p.Shape
	}
	fcb, _ := base.Param(base.Spec.ClassifierName() + ".bias")
	if n.fcBias, err = base.Get(fcb); err != nil {
		return nil, err
	}
	if err := n.alloc(); err != nil {
		n.Free()
		return nil, err
	}
	return n, nil
}

// ScoreMapShape is the per-sample shape (classes, height, width) of a fully-convolutional net's class-score
// map; ok is false for an ordinary net.
func (n *Net) ScoreMapShape() (c, h, w int, ok bool) {
	if n.g.scoreMap == nil {
		return 0, 0, 0, false
	}
	return n.g.scoreMap.c, n.g.scoreMap.h, n.g.scoreMap.w, true
}

// ScoreMap downloads the last Forward's class-score maps (nb x classes x h x w, without the FC bias) of a
// fully-convolutional net into dst and returns it.
func (n *Net) ScoreMap(dst []float32) ([]float32, error) {
	if n.g.scoreMap == nil {
		return dst, fmt.Errorf("model %s: not a fully-convolutional net", n.Spec.Name)
	}
	sm := n.g.scoreMap
	dst = append(dst[:0], make([]float32, n.nb*sm.c*sm.h*sm.w)...)
	return dst, n.dev.Download(dst, sm.cur)
}

// SetBNMomentum sets the rate at which training-mode forwards move the BN running statistics towards the
// batch's: running = (1-m)*running + m*batch. Momentum 1/k on the k-th of a series of batches makes the
// running statistics the plain average over the series (how RecomputeBN-style re-estimation works).
func (n *Net) SetBNMomentum(m float64) error {
	if !(m > 0 && m <= 1) {
		return fmt.Errorf("model %s: BN momentum must be in (0, 1] (got %v)", n.Spec.Name, m)
	}
	n.bnMomentum = float32(m)
	return nil
}

// BNMomentum is the current running-statistics update rate (0.1 unless SetBNMomentum changed it).
func (n *Net) BNMomentum() float64 { return float64(n.bnMomentum) }

// ActivationValues is the number of values the net's activations and their gradients' buffers (where
// kept) occupy at its batch capacity.
func (n *Net) ActivationValues() int64 {
	var v int64
	for _, a := range n.g.acts {
		v += int64(a.c) * int64(a.h) * int64(a.w) * int64(n.capacity)
	}
	for _, s := range n.gradSlots {
		v += int64(s.perSample) * int64(n.capacity)
	}
	return v
}
