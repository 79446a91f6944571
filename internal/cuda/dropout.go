//go:build cuda

package cuda

// Launchers of kernels/dropout.cu: inverted dropout, forward and backward, one kernel drawing the mask
// from (seed, step, layer, element) in both.

import "resnet/internal/backend"

// DropoutForward implements backend.Device.
func (d *Device) DropoutForward(p backend.DropoutParams, x, y backend.Tensor) error {
	g, err := backend.CheckDropoutForward(p, x, y)
	return d.dropout("DropoutForward", p, g, err, "x", x, "y", y)
}

// DropoutBackward implements backend.Device.
func (d *Device) DropoutBackward(p backend.DropoutParams, dy, dx backend.Tensor) error {
	g, err := backend.CheckDropoutBackward(p, dy, dx)
	return d.dropout("DropoutBackward", p, g, err, "dy", dy, "dx", dx)
}

func (d *Device) dropout(op string, p backend.DropoutParams, g backend.DropoutGeometry, checked error,
	inName string, in backend.Tensor, outName string, out backend.Tensor) error {
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	if err := d.notRecording(op, "draws the mask of one step, which every replay would draw again"); err != nil {
		return err
	}
	ad := addrs{d: d, op: op, err: named(checked)}
	inP, outP := ad.in(inName, in), ad.of(outName, out)
	if ad.err != nil || g.Len() == 0 {
		return ad.err
	}
	m := p.Mask()
	return d.launchAs(op, kDropoutApply, g.DType, g.Layout, d.blocksFor(int64(g.Len())), 1).p(inP).p(outP).
		i(g.N).i(g.C).i(g.H).i(g.W).l(int64(m.Key)).i(int(m.Threshold)).f(m.Scale).run()
}
