//go:build cuda

package cuda

// Launchers of kernels/gate.cu: the squeeze-and-excitation gate, fused with the residual add and ReLU
// (backend.Options.Unfused runs the same math one step per kernel; see the kernel file for both lists),
// and the excitation: its GEMMs on cuBLAS as in linear.go, its bias and ReLU steps on the gate file's
// float kernels.

import "resnet/internal/backend"

// ExcitationForward implements backend.Device: H = relu(P W1^T + B1), S = H W2^T + B2.
func (d *Device) ExcitationForward(t backend.ExcitationTensors) error {
	const op = "ExcitationForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckExcitationForward(t)
	a := addrs{d: d, op: op, err: named(err)}
	p, w1, b1 := a.in("P", t.P), a.in("W1", t.W1), a.in("B1", t.B1)
	w2, b2 := a.in("W2", t.W2), a.in("B2", t.B2)
	h, s := a.of("H", t.H), a.of("S", t.S)
	if a.err != nil || g.N == 0 || g.C == 0 {
		return a.err
	}
	n, c, r := g.N, g.C, g.R
	d.gemm(op, true, false, r, n, c, w1, c, p, c, h, r)
	if r > 0 {
		if err := d.launch(op, kExciteBiasReLU, d.blocksFor(int64(n)*int64(r)), 1).p(h).p(b1).i(n).i(r).run(); err != nil {
			return err
		}
	}
	d.gemm(op, true, false, c, n, r, w2, r, h, r, s, c)
	return d.launch(op, kLinearBiasAdd, d.blocksFor(int64(n)*int64(c)), 1).p(s).p(b2).i(n).i(c).run()
}

// ExcitationBackward implements backend.Device; the bias gradients are column sums in double, in row
// order, as on the CPU.
func (d *Device) ExcitationBackward(gr backend.ExcitationGrads) error {
	const op = "ExcitationBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckExcitationBackward(gr)
	a := addrs{d: d, op: op, err: named(err)}
	p, w1, w2, h, ds := a.in("P", gr.P), a.in("W1", gr.W1), a.in("W2", gr.W2), a.in("H", gr.H), a.in("DS", gr.DS)
	dh, dp := a.of("DH", gr.DH), a.of("DP", gr.DP)
	dw1, db1, dw2, db2 := a.of("DW1", gr.DW1), a.of("DB1", gr.DB1), a.of("DW2", gr.DW2), a.of("DB2", gr.DB2)
	if a.err != nil || g.C == 0 {
		return a.err
	}
	n, c, r := g.N, g.C, g.R
	if err := d.launch(op, kLinearBiasGrad, blocksOf(c), 1).p(ds).p(db2).i(n).i(c).run(); err != nil {
		return err
	}
	d.gemm(op, false, true, r, c, n, h, r, ds, c, dw2, r)
	d.gemm(op, false, false, r, n, c, w2, r, ds, c, dh, r)
	if r > 0 {
		if err := d.launch(op, kExciteReLUBiasGrad, blocksOf(r), 1).p(dh).p(h).p(db1).i(n).i(r).run(); err != nil {
			return err
		}
	}
	d.gemm(op, false, true, c, r, n, p, c, dh, r, dw1, c)
	d.gemm(op, false, false, c, n, r, w1, c, dh, r, dp, c)
	return nil
}

// ChannelGateForward implements backend.Device.
func (d *Device) ChannelGateForward(p backend.ChannelGateParams, x, s, z, y backend.Tensor) error {
	const op = "ChannelGateForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckChannelGateForward(p, x, s, z, y)
	a := addrs{d: d, op: op, err: named(err)}
	xp, sp := a.in("x", x), a.in("s", s)
	var zp uint64
	if p.Residual {
		zp = a.in("z", z)
	}
	yp := a.of("y", y)
	if a.err != nil || g.XLen() == 0 {
		return a.err
	}
	blocks := d.blocksFor(int64(g.XLen()))
	if !d.opt.Unfused {
		return d.launchAs(op, kGateForward, g.DType, g.Layout, blocks, 1).p(xp).p(sp).p(zp).p(yp).i(g.N).i(g.C).
			i(g.HW()).i(b2i(p.Residual)).i(b2i(p.ReLU)).run()
	}
	if err := d.launchAs(op, kGateScale, g.DType, g.Layout, blocks, 1).p(xp).p(sp).p(yp).i(g.N).i(g.C).i(g.HW()).run(); err != nil {
		return err
	}
	if p.Residual {
		if err := d.launchAs(op, kResidualAdd, g.DType, g.Layout, blocks, 1).p(yp).p(zp).i(g.N).i(g.C).i(g.H).i(g.W).
			i(g.C).i(1).run(); err != nil {
			return err
		}
	}
	if p.ReLU {
		return d.launchAs(op, kReLUForward, g.DType, g.Layout, blocks, 1).p(yp).p(yp).l(int64(g.XLen())).run()
	}
	return nil
}

// gateReduceBlocks is the grid of the gate's per-plane reductions: one warp per tile of channels of an
// image, as the average pool runs.
func gateReduceBlocks(g backend.ChannelGateGeometry) int {
	const warpsPerBlock = blockSize / 32
	warps := g.N * channelTiles(g.DType, g.Layout, g.C)
	return (warps + warpsPerBlock - 1) / warpsPerBlock
}

// ChannelGateBackward implements backend.Device.
func (d *Device) ChannelGateBackward(p backend.ChannelGateParams, gr backend.ChannelGateGrads) error {
	const op = "ChannelGateBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckChannelGateBackward(gr)
	a := addrs{d: d, op: op, err: named(err)}
	xp, sp, yp, dyp := a.in("X", gr.X), a.in("S", gr.S), a.in("Y", gr.Y), a.in("DY", gr.DY)
	dgp, dsp := a.of("DG", gr.DG), a.of("DS", gr.DS)
	if a.err != nil || g.N*g.C == 0 {
		return a.err
	}
	if !d.opt.Unfused {
		return d.launchAs(op, kGateBackward, g.DType, g.Layout, gateReduceBlocks(g), 1).p(dyp).p(yp).p(xp).p(sp).
			p(dgp).p(dsp).i(g.N).i(g.C).i(g.HW()).i(b2i(p.ReLU)).run()
	}
	if n := g.XLen(); p.ReLU {
		if err := d.launchAs(op, kReLUBackward, g.DType, g.Layout, d.blocksFor(int64(n)), 1).p(yp).p(dyp).p(dgp).
			l(int64(n)).run(); err != nil {
			return err
		}
	} else if dgp != dyp && n > 0 {
		d.enqueue(&cmd{kind: cmdCopyDtoD, op: op, dst: dgp, src: dyp, n: int64(g.DType.Size()) * int64(n)})
	}
	return d.launchAs(op, kGateGradReduce, g.DType, g.Layout, gateReduceBlocks(g), 1).p(dgp).p(xp).p(sp).p(dsp).
		i(g.N).i(g.C).i(g.HW()).run()
}

// ChannelGateBackwardData implements backend.Device.
func (d *Device) ChannelGateBackwardData(s, dg, dpool, dx backend.Tensor) error {
	const op = "ChannelGateBackwardData"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckChannelGateBackwardData(s, dg, dpool, dx)
	a := addrs{d: d, op: op, err: named(err)}
	sp, dgp := a.in("s", s), a.in("dg", dg)
	var dpp uint64
	if dpool.Valid() {
		dpp = a.in("dpool", dpool)
	}
	dxp := a.of("dx", dx)
	if a.err != nil || g.XLen() == 0 {
		return a.err
	}
	blocks := d.blocksFor(int64(g.XLen()))
	if !d.opt.Unfused {
		return d.launchAs(op, kGateBackwardData, g.DType, g.Layout, blocks, 1).p(dgp).p(sp).p(dpp).p(dxp).i(g.N).
			i(g.C).i(g.HW()).run()
	}
	if err := d.launchAs(op, kGateScale, g.DType, g.Layout, blocks, 1).p(dgp).p(sp).p(dxp).i(g.N).i(g.C).i(g.HW()).run(); err != nil {
		return err
	}
	if dpp == 0 {
		return nil
	}
	return d.launchAs(op, kGatePoolAdd, g.DType, g.Layout, blocks, 1).p(dpp).p(dxp).i(g.N).i(g.C).i(g.HW()).run()
}
