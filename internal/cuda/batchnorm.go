//go:build cuda

package cuda

// Launchers of kernels/batchnorm.cu: batch normalisation with the optional fused residual add and ReLU of
// backend.BatchNormParams. The fused path is the default; backend.Options.Unfused runs the same math one
// step per kernel (see the kernel file for both lists).

import "resnet/internal/backend"

// bnOperands are the addresses of one forward call.
type bnOperands struct {
	x, y, z              uint64
	gamma, beta          uint64
	runMean, runVar      uint64
	saveMean, saveInvStd uint64
	dy, dx, dz           uint64
	dgamma, dbeta        uint64
	eps, momentum        float32
	relu, residual       bool
}

// bnForwardOperands takes the addresses of a forward call's tensors, whose checks ended with checked.
func (d *Device) bnForwardOperands(op string, checked error, p backend.BatchNormParams, t backend.BatchNormTensors,
	training bool) (bnOperands, error) {
	a := addrs{d: d, op: op, err: named(checked)}
	o := bnOperands{x: a.of("X", t.X), y: a.of("Y", t.Y), gamma: a.of("Gamma", t.Gamma), beta: a.of("Beta", t.Beta),
		runMean: a.of("RunningMean", t.RunningMean), runVar: a.of("RunningVar", t.RunningVar),
		eps: p.Eps, momentum: p.Momentum, relu: p.ReLU, residual: p.Residual}
	if p.Residual {
		o.z = a.of("Z", t.Z)
	}
	if training {
		o.saveMean, o.saveInvStd = a.of("SaveMean", t.SaveMean), a.of("SaveInvStd", t.SaveInvStd)
	}
	return o, a.err
}

// bnChunks is how many pieces a channel's statistics are cut into: enough blocks for a few per SM, each
// summing at least 4096 values. The bits of a sum depend on where its pieces start, so the count is the
// same in both layouts: it counts NHWC's blocks (channelTiles), and NCHW, a channel per block, runs as many
// times more blocks as an NHWC tile has channels, over the same pieces.
func (d *Device) bnChunks(g backend.BatchNormGeometry) int {
	tiles := channelTiles(g.DType, backend.NHWC, g.C)
	ch := (4*max(d.info.sms, 1) + tiles - 1) / tiles
	ch = min(ch, (g.PerChannel()+4095)/4096, 1024)
	return max(ch, 1)
}

// ensureCounters makes the zeroed counters of the fused reductions, one per tile of their grid, number at
// least c, the channel count (no layout has more tiles than channels). The kernels leave them zero after
// every launch.
func (d *Device) ensureCounters(op string, c int) error {
	bytes := 4 * int64(c)
	if d.counters.class >= bytes {
		return nil
	}
	if err := d.grow(op, &d.counters, max(bytes, 16<<10)); err != nil {
		return err
	}
	d.enqueue(&cmd{kind: cmdMemset, op: op, dst: d.counters.ptr, n: d.counters.class})
	return nil
}

var bnForwardApply = [2][2]kernelID{{kBNForwardApply, kBNForwardApplyReLU}, {kBNForwardApplyAdd, kBNForwardApplyAddReLU}}
var bnInferenceApply = [2][2]kernelID{{kBNInferenceApply, kBNInferenceApplyReLU}, {kBNInferenceApplyAdd, kBNInferenceApplyAddReLU}}
var bnBackwardDX = [2][2]kernelID{{kBNBackwardDX, kBNBackwardDXReLU}, {kBNBackwardDXAdd, kBNBackwardDXAddReLU}}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BatchNormForwardTraining implements backend.Device.
func (d *Device) BatchNormForwardTraining(p backend.BatchNormParams, t backend.BatchNormTensors) error {
	const op = "BatchNormForwardTraining"
	if p.Synced() {
		return d.bnForwardSynced(p, t)
	}
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckBatchNormForwardTraining(p, t)
	o, err := d.bnForwardOperands(op, err, p, t, true)
	if err != nil || g.C == 0 {
		return err
	}
	chunks := d.bnChunks(g)
	partialBytes := 16 * int64(g.C) * int64(chunks)
	scratch, err := d.tempAlloc(op, partialBytes+4*int64(g.C))
	if err != nil {
		return err
	}
	partial, scale := scratch, scratch+uint64(partialBytes)
	hw, tiles := g.H*g.W, channelTiles(g.DType, g.Layout, g.C)
	if !d.opt.Unfused {
		if err := d.ensureCounters(op, g.C); err != nil {
			return err
		}
		if err := d.launchAs(op, kBNForwardStats, g.DType, g.Layout, chunks, tiles).p(o.x).i(g.N).i(g.C).i(hw).i(chunks).p(partial).
			p(d.counters.ptr).f(o.eps).f(o.momentum).p(o.gamma).p(o.saveMean).p(o.saveInvStd).p(o.runMean).
			p(o.runVar).p(scale).run(); err != nil {
			return err
		}
		return d.bnApply(op, g, o, scale)
	}
	if err := d.launchAs(op, kBNStatsPartial, g.DType, g.Layout, chunks, tiles).p(o.x).i(g.N).i(g.C).i(hw).i(chunks).p(partial).run(); err != nil {
		return err
	}
	if err := d.launchAs(op, kBNStatsFinalize, g.DType, g.Layout, blocksOf(g.C), 1).p(o.x).p(partial).i(g.C).i(hw).i(chunks).l(int64(g.PerChannel())).
		f(o.eps).f(o.momentum).p(o.gamma).p(o.saveMean).p(o.saveInvStd).p(o.runMean).p(o.runVar).p(scale).run(); err != nil {
		return err
	}
	return d.bnApply(op, g, o, scale)
}

// bnApply writes y from the saved mean and scale = gamma*invstd: one fused kernel, or the unfused
// normalize and epilogue.
func (d *Device) bnApply(op string, g backend.BatchNormGeometry, o bnOperands, scale uint64) error {
	if !d.opt.Unfused {
		return d.launchAs(op, bnForwardApply[b2i(o.residual)][b2i(o.relu)], g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).
			p(o.x).p(o.z).p(o.y).p(o.saveMean).p(scale).p(o.beta).i(g.N).i(g.C).i(g.H).i(g.W).i(g.ZC).i(g.ZStride).run()
	}
	if err := d.launchAs(op, kBNNormalize, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(o.x).p(o.y).p(o.saveMean).p(scale).p(o.beta).
		i(g.N).i(g.C).i(g.H).i(g.W).run(); err != nil {
		return err
	}
	return d.unfusedEpilogue(op, g, o)
}

// unfusedEpilogue adds the shortcut and applies the ReLU to y in place, each as its own kernel.
func (d *Device) unfusedEpilogue(op string, g backend.BatchNormGeometry, o bnOperands) error {
	if o.residual {
		if err := d.launchAs(op, kResidualAdd, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(o.y).p(o.z).i(g.N).i(g.C).i(g.H).i(g.W).
			i(g.ZC).i(g.ZStride).run(); err != nil {
			return err
		}
	}
	if o.relu {
		return d.launchAs(op, kReLUForward, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(o.y).p(o.y).l(int64(g.XLen())).run()
	}
	return nil
}

// BatchNormForwardInference implements backend.Device.
func (d *Device) BatchNormForwardInference(p backend.BatchNormParams, t backend.BatchNormTensors) error {
	const op = "BatchNormForwardInference"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckBatchNormForwardInference(p, t)
	o, err := d.bnForwardOperands(op, err, p, t, false)
	if err != nil || g.XLen() == 0 {
		return err
	}
	if !d.opt.Unfused {
		return d.launchAs(op, bnInferenceApply[b2i(o.residual)][b2i(o.relu)], g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).
			p(o.x).p(o.z).p(o.y).p(o.runMean).p(o.runVar).p(o.gamma).p(o.beta).f(o.eps).
			i(g.N).i(g.C).i(g.H).i(g.W).i(g.ZC).i(g.ZStride).run()
	}
	scale, err := d.tempAlloc(op, 4*int64(g.C))
	if err != nil {
		return err
	}
	if err := d.launch(op, kBNInferenceParams, blocksOf(g.C), 1).p(o.runVar).p(o.gamma).f(o.eps).i(g.C).p(scale).run(); err != nil {
		return err
	}
	if err := d.launchAs(op, kBNNormalize, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(o.x).p(o.y).p(o.runMean).p(scale).p(o.beta).
		i(g.N).i(g.C).i(g.H).i(g.W).run(); err != nil {
		return err
	}
	return d.unfusedEpilogue(op, g, o)
}

// BatchNormBackward implements backend.Device. With xhat = (x - mean)*invstd and gy the output gradient
// masked by y > 0 when ReLU is fused:
//
//	dbeta = sum gy,  dgamma = sum gy*xhat,  dx = gamma*invstd*(gy - dbeta/M - xhat*dgamma/M)
//
// and dz = gy read back through the shortcut mapping (0 where the shortcut reads nothing).
func (d *Device) BatchNormBackward(p backend.BatchNormParams, gr backend.BatchNormGrads) error {
	const op = "BatchNormBackward"
	if p.Synced() {
		return d.bnBackwardSynced(p, gr)
	}
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, o, err := d.bnBackwardOperands(op, p, gr)
	if err != nil || g.C == 0 {
		return err
	}

	chunks := d.bnChunks(g)
	partialBytes := 16 * int64(g.C) * int64(chunks)
	scratch, err := d.tempAlloc(op, partialBytes+12*int64(g.C))
	if err != nil {
		return err
	}
	partial, coef := scratch, scratch+uint64(partialBytes)
	hw, tiles := g.H*g.W, channelTiles(g.DType, g.Layout, g.C)
	if !d.opt.Unfused {
		if err := d.ensureCounters(op, g.C); err != nil {
			return err
		}
		reduce := kBNBackwardReduce
		if o.relu {
			reduce = kBNBackwardReduceReLU
		}
		if err := d.launchAs(op, reduce, g.DType, g.Layout, chunks, tiles).p(o.x).p(o.y).p(o.dy).p(o.saveMean).i(g.N).i(g.C).i(hw).i(chunks).
			p(partial).p(d.counters.ptr).p(o.gamma).p(o.saveInvStd).p(o.dgamma).p(o.dbeta).p(coef).run(); err != nil {
			return err
		}
		return d.bnBackwardDXFused(op, g, o, coef)
	}

	gy, err := d.bnMaskedGrad(op, g, o)
	if err != nil {
		return err
	}
	if err := d.launchAs(op, kBNBackwardReducePartial, g.DType, g.Layout, chunks, tiles).p(o.x).p(gy).p(o.saveMean).i(g.N).i(g.C).i(hw).
		i(chunks).p(partial).run(); err != nil {
		return err
	}
	if err := d.launch(op, kBNBackwardFinalize, blocksOf(g.C), 1).p(partial).i(g.C).i(chunks).l(int64(g.PerChannel())).
		p(o.gamma).p(o.saveInvStd).p(o.dgamma).p(o.dbeta).p(coef).run(); err != nil {
		return err
	}
	return d.bnBackwardInput(op, g, o, gy, coef)
}

// bnBackwardOperands checks a backward's operands and takes their addresses.
func (d *Device) bnBackwardOperands(op string, p backend.BatchNormParams, gr backend.BatchNormGrads) (backend.BatchNormGeometry,
	bnOperands, error) {
	g, err := backend.CheckBatchNormBackward(p, gr)
	a := addrs{d: d, op: op, err: named(err)}
	o := bnOperands{x: a.of("X", gr.X), dy: a.of("DY", gr.DY), dx: a.of("DX", gr.DX), gamma: a.of("Gamma", gr.Gamma),
		saveMean: a.of("SaveMean", gr.SaveMean), saveInvStd: a.of("SaveInvStd", gr.SaveInvStd),
		dgamma: a.of("DGamma", gr.DGamma), dbeta: a.of("DBeta", gr.DBeta), relu: p.ReLU, residual: p.Residual}
	if p.ReLU {
		o.y = a.of("Y", gr.Y)
	}
	if p.Residual {
		o.dz = a.of("DZ", gr.DZ)
	}
	return g, o, a.err
}

// bnBackwardDXFused writes dx, and dz with a residual, from the coefficients in one kernel.
func (d *Device) bnBackwardDXFused(op string, g backend.BatchNormGeometry, o bnOperands, coef uint64) error {
	return d.launchAs(op, bnBackwardDX[b2i(o.residual)][b2i(o.relu)], g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).
		p(o.x).p(o.y).p(o.dy).p(o.saveMean).p(coef).p(o.dx).p(o.dz).i(g.N).i(g.C).i(g.H).i(g.W).i(g.ZC).i(g.ZStride).run()
}

// bnMaskedGrad is the unfused path's first steps: the output gradient masked by the ReLU (dy itself
// without one, else a scratch buffer) and, with a residual, the shortcut gradient dz written from it.
func (d *Device) bnMaskedGrad(op string, g backend.BatchNormGeometry, o bnOperands) (uint64, error) {
	gy := o.dy
	if o.relu {
		var err error
		if gy, err = d.tempAlloc(op, int64(g.DType.Size())*int64(g.XLen())); err != nil {
			return 0, err
		}
		if err := d.launchAs(op, kReLUBackward, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(o.y).p(o.dy).p(gy).l(int64(g.XLen())).run(); err != nil {
			return 0, err
		}
	}
	if o.residual && g.ZLen() > 0 {
		if err := d.launchAs(op, kResidualBackward, g.DType, g.Layout, d.blocksFor(int64(g.ZLen())), 1).p(gy).p(o.dz).i(g.N).i(g.C).i(g.H).i(g.W).
			i(g.ZC).i(g.ZStride).run(); err != nil {
			return 0, err
		}
	}
	return gy, nil
}

// bnBackwardInput is the unfused path's last step: dx from the masked gradient gy and the coefficients.
func (d *Device) bnBackwardInput(op string, g backend.BatchNormGeometry, o bnOperands, gy, coef uint64) error {
	return d.launchAs(op, kBNBackwardInput, g.DType, g.Layout, d.blocksFor(int64(g.XLen())), 1).p(o.x).p(gy).p(o.saveMean).p(coef).p(o.dx).
		i(g.N).i(g.C).i(g.H).i(g.W).run()
}
