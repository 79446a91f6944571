//go:build cuda

package cuda

// Launchers of kernels/pooling.cu: max pooling (PyTorch semantics) and global average pooling.

import "resnet/internal/backend"

// MaxPoolForward implements backend.Device.
func (d *Device) MaxPoolForward(p backend.PoolParams, x, y backend.Tensor) error {
	const op = "MaxPoolForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckMaxPoolForward(p, x, y)
	a := addrs{d: d, op: op, err: named(err)}
	xp, yp := a.of("x", x), a.of("y", y)
	if a.err != nil || g.YLen() == 0 {
		return a.err
	}
	return d.launchAs(op, kMaxPoolForward, g.DType, g.Layout, d.blocksFor(int64(g.YLen())), 1).p(xp).p(yp).i(g.N).i(g.C).
		i(g.H).i(g.W).i(g.OH).i(g.OW).i(g.Kernel).i(g.Stride).i(g.Pad).run()
}

// MaxPoolBackward implements backend.Device. It overwrites dx; each input element gathers the gradients
// of the windows whose first maximum it is, so nothing from the forward is stored.
func (d *Device) MaxPoolBackward(p backend.PoolParams, x, y, dy, dx backend.Tensor) error {
	const op = "MaxPoolBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckMaxPoolBackward(p, x, y, dy, dx)
	a := addrs{d: d, op: op, err: named(err)}
	xp, _, dyp, dxp := a.of("x", x), a.of("y", y), a.of("dy", dy), a.of("dx", dx) // y is not read
	if a.err != nil || g.XLen() == 0 {
		return a.err
	}
	return d.launchAs(op, kMaxPoolBackward, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(xp).p(dyp).p(dxp).
		i(g.N).i(g.C).i(g.H).i(g.W).i(g.OH).i(g.OW).i(g.Kernel).i(g.Stride).i(g.Pad).run()
}

// GlobalAvgPoolForward implements backend.Device: y (N, C) is the mean of each (H, W) plane of x, summed
// in double.
func (d *Device) GlobalAvgPoolForward(x, y backend.Tensor) error {
	const op = "GlobalAvgPoolForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckGlobalAvgPoolForward(x, y)
	a := addrs{d: d, op: op, err: named(err)}
	xp, yp := a.of("x", x), a.of("y", y)
	if a.err != nil || g.Planes() == 0 {
		return a.err
	}
	// One warp per tile of channels of an image.
	const warpsPerBlock = blockSize / 32
	warps := g.N * channelTiles(g.DType, g.Layout, g.C)
	return d.launchAs(op, kAvgPoolForward, g.DType, g.Layout, (warps+warpsPerBlock-1)/warpsPerBlock, 1).p(xp).
		p(yp).i(g.N).i(g.C).i(g.H * g.W).run()
}

// GlobalAvgPoolBackward implements backend.Device: every element of plane (n, c) of dx gets dy[n, c]/(H*W).
func (d *Device) GlobalAvgPoolBackward(dy, dx backend.Tensor) error {
	const op = "GlobalAvgPoolBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckGlobalAvgPoolBackward(dy, dx)
	a := addrs{d: d, op: op, err: named(err)}
	dyp, dxp := a.of("dy", dy), a.of("dx", dx)
	if a.err != nil || g.XLen() == 0 {
		return a.err
	}
	return d.launchAs(op, kAvgPoolBackward, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(dyp).p(dxp).i(g.N).
		i(g.C).i(g.H * g.W).run()
}

// AvgPoolForward implements backend.Device: windowed average pooling (avgpool_window_forward).
func (d *Device) AvgPoolForward(p backend.PoolParams, x, y backend.Tensor) error {
	const op = "AvgPoolForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckAvgPoolForward(p, x, y)
	a := addrs{d: d, op: op, err: named(err)}
	xp, yp := a.in("x", x), a.of("y", y)
	if a.err != nil || g.YLen() == 0 {
		return a.err
	}
	return d.launchAs(op, kAvgPoolWindowForward, g.DType, g.Layout, d.blocksFor(int64(g.YLen())), 1).p(xp).p(yp).
		i(g.N).i(g.C).i(g.H).i(g.W).i(g.OH).i(g.OW).i(g.Kernel).i(g.Stride).i(g.Pad).i(b2i(g.ExcludePad)).run()
}

// AvgPoolBackward implements backend.Device: each element of dx gathers the gradients of the windows that
// cover it (avgpool_window_backward), written or added.
func (d *Device) AvgPoolBackward(p backend.PoolParams, dy, dx backend.Tensor, accumulate bool) error {
	const op = "AvgPoolBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckAvgPoolBackward(p, dy, dx)
	a := addrs{d: d, op: op, err: named(err)}
	dyp, dxp := a.in("dy", dy), a.of("dx", dx)
	if a.err != nil || g.XLen() == 0 {
		return a.err
	}
	return d.launchAs(op, kAvgPoolWindowBackward, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(dyp).p(dxp).
		i(g.N).i(g.C).i(g.H).i(g.W).i(g.OH).i(g.OW).i(g.Kernel).i(g.Stride).i(g.Pad).i(b2i(g.ExcludePad)).
		i(b2i(accumulate)).run()
}
