//go:build cuda

package cuda

// Launchers of kernels/residual.cu: the residual add that closes a pre-activation unit and its shortcut
// gradient.

import "resnet/internal/backend"

// ResidualAdd implements backend.Device.
func (d *Device) ResidualAdd(a, z, y backend.Tensor) error {
	const op = "ResidualAdd"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckResidualAdd(a, z, y)
	ad := addrs{d: d, op: op, err: named(err)}
	ap, zp, yp := ad.in("a", a), ad.in("z", z), ad.of("y", y)
	if ad.err != nil || g.XLen() == 0 {
		return ad.err
	}
	return d.launchAs(op, kResidualAddOut, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(ap).p(zp).p(yp).
		i(g.N).i(g.C).i(g.H).i(g.W).i(g.ZC).i(g.ZStride).run()
}

// ResidualAddBackward implements backend.Device: written, dz is batchnorm.cu's residual_backward (every
// element of z once, 0 where the shortcut reads nothing); accumulated, each element z's shortcut reads gets
// dy added and the others are left alone.
func (d *Device) ResidualAddBackward(dy, dz backend.Tensor, accumulate bool) error {
	const op = "ResidualAddBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckResidualAddBackward(dy, dz)
	ad := addrs{d: d, op: op, err: named(err)}
	dyp, dzp := ad.in("dy", dy), ad.of("dz", dz)
	if ad.err != nil || g.ZLen() == 0 {
		return ad.err
	}
	k := kResidualBackward
	if accumulate {
		k = kResidualBackwardAccumulate
	}
	return d.launchAs(op, k, g.DType, g.Layout, d.blocksFor(int64(g.ZLen())), 1).p(dyp).p(dzp).
		i(g.N).i(g.C).i(g.H).i(g.W).i(g.ZC).i(g.ZStride).run()
}
