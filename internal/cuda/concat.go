//go:build cuda

package cuda

// Launchers of kernels/concat.cu (channel concatenation) and kernels/scaled_residual.cu (the scaled
// residual sum of Inception-ResNet, fused with its bias and ReLU; backend.Options.Unfused runs the same
// math one step per kernel, as the kernel file lists).

import "resnet/internal/backend"

// CopyChannels implements backend.Device.
func (d *Device) CopyChannels(p backend.ChannelCopyParams, src, dst backend.Tensor) error {
	const op = "CopyChannels"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckCopyChannels(p, src, dst)
	a := addrs{d: d, op: op, err: named(err)}
	sp, dp := a.in("src", src), a.of("dst", dst)
	n := int64(g.N) * int64(p.Channels) * int64(g.H) * int64(g.W)
	if a.err != nil || n == 0 {
		return a.err
	}
	return d.launchAs(op, kCopyChannels, g.DType, g.Layout, d.blocksFor(n), 1).p(sp).p(dp).i(g.N).i(g.H * g.W).
		i(g.SrcC).i(g.DstC).i(p.SrcOffset).i(p.DstOffset).i(p.Channels).i(b2i(p.Accumulate)).run()
}

// ScaledResidual implements backend.Device.
func (d *Device) ScaledResidual(p backend.ScaledResidualParams, a, bias, z, y backend.Tensor) error {
	const op = "ScaledResidual"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckScaledResidual(p, a, bias, z, y)
	ad := addrs{d: d, op: op, err: named(err)}
	ap, bp, zp, yp := ad.in("a", a), ad.in("bias", bias), ad.in("z", z), ad.of("y", y)
	if ad.err != nil || g.XLen() == 0 {
		return ad.err
	}
	blocks, hw := d.blocksFor(int64(g.XLen())), g.H*g.W
	if !d.opt.Unfused {
		return d.launchAs(op, kScaledResidualForward, g.DType, g.Layout, blocks, 1).p(ap).p(bp).p(zp).p(yp).
			i(g.N).i(g.C).i(hw).f(p.Scale).i(b2i(p.ReLU)).run()
	}
	if err := d.launchAs(op, kScaledBias, g.DType, g.Layout, blocks, 1).p(ap).p(bp).p(yp).i(g.N).i(g.C).i(hw).
		f(p.Scale).run(); err != nil {
		return err
	}
	if err := d.launchAs(op, kResidualAddOut, g.DType, g.Layout, blocks, 1).p(yp).p(zp).p(yp).i(g.N).i(g.C).
		i(g.H).i(g.W).i(g.C).i(1).run(); err != nil {
		return err
	}
	if p.ReLU {
		return d.launchAs(op, kReLUForward, g.DType, g.Layout, blocks, 1).p(yp).p(yp).l(int64(g.XLen())).run()
	}
	return nil
}

// ScaledResidualBackward implements backend.Device. The bias gradient is reduced first, from DY and Y,
// before DA (which may be DY) is written.
func (d *Device) ScaledResidualBackward(p backend.ScaledResidualParams, gr backend.ScaledResidualGrads) error {
	const op = "ScaledResidualBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckScaledResidualBackward(p, gr)
	ad := addrs{d: d, op: op, err: named(err)}
	yp, dyp := ad.in("Y", gr.Y), ad.in("DY", gr.DY)
	dap, dbp, dzp := ad.of("DA", gr.DA), ad.of("DBias", gr.DBias), ad.of("DZ", gr.DZ)
	if ad.err != nil || g.C == 0 {
		return ad.err
	}
	hw := g.H * g.W
	if err := d.launchAs(op, kScaledResidualBiasGrad, g.DType, g.Layout, channelTiles(g.DType, g.Layout, g.C), 1).
		p(yp).p(dyp).p(dbp).i(g.N).i(g.C).i(hw).f(p.Scale).i(b2i(p.ReLU)).run(); err != nil {
		return err
	}
	n := g.XLen()
	if n == 0 {
		return nil
	}
	blocks := d.blocksFor(int64(n))
	if !d.opt.Unfused {
		return d.launchAs(op, kScaledResidualBackward, g.DType, g.Layout, blocks, 1).p(yp).p(dyp).p(dap).p(dzp).
			i(g.N).i(g.C).i(hw).f(p.Scale).i(b2i(p.ReLU)).i(b2i(gr.Accumulate)).run()
	}
	// g = DY masked by Y > 0 into DA, then DZ = g (or += g), then DA = Scale*g.
	bytes := int64(g.DType.Size()) * int64(n)
	if p.ReLU {
		if err := d.launchAs(op, kReLUBackward, g.DType, g.Layout, blocks, 1).p(yp).p(dyp).p(dap).l(int64(n)).run(); err != nil {
			return err
		}
	} else if dap != dyp {
		d.enqueue(&cmd{kind: cmdCopyDtoD, op: op, dst: dap, src: dyp, n: bytes})
	}
	if gr.Accumulate {
		if err := d.launchAs(op, kResidualBackwardAccumulate, g.DType, g.Layout, blocks, 1).p(dap).p(dzp).i(g.N).
			i(g.C).i(g.H).i(g.W).i(g.C).i(1).run(); err != nil {
			return err
		}
	} else if dzp != dap {
		d.enqueue(&cmd{kind: cmdCopyDtoD, op: op, dst: dzp, src: dap, n: bytes})
	}
	return d.launchAs(op, kScaledBias, g.DType, g.Layout, blocks, 1).p(dap).p(0).p(dap).i(g.N).i(g.C).i(hw).
		f(p.Scale).run()
}
