//go:build cuda

package cuda

// Launchers of kernels/batchnorm.cu: batch normalisation with the optional fused residual add and ReLU of
// backend.BatchNormParams. The fused path is the default; backend.Options.Unfused runs the same math one
// step per kernel (see the kernel file for both lists).

import (
	"fmt"
	"math"

	"resnet/internal/backend"
)

// bnGeom is the geometry of one batch-norm call: x (n, c, h, w) and the shortcut input z
// (n, cz, h*zs, w*zs) (cz = c, zs = 1 without one).
type bnGeom struct {
	n, c, h, w int
	cz, zs     int
}

func (g bnGeom) total() int64 { return int64(g.n) * int64(g.c) * int64(g.h) * int64(g.w) }
func (g bnGeom) count() int64 { return int64(g.n) * int64(g.h) * int64(g.w) }

// shortcutGeometry validates z (or dz) against an output of (n, c, h, w) and returns its address, channel
// count and stride.
func (d *Device) shortcutGeometry(op, name string, z backend.Tensor, n, c, h, w int) (uint64, int, int, error) {
	if !z.Valid() {
		return 0, 0, 0, fmt.Errorf("cuda: %s: Residual is set but %s is not allocated", op, name)
	}
	zp, zn, zc, zh, zw, err := d.dims4(op, name, z)
	if err != nil {
		return 0, 0, 0, err
	}
	bad := func(why string) error {
		return fmt.Errorf("cuda: %s: %s has shape %v, want (%d, Cz, H*s, W*s) for the output %v: %s",
			op, name, z.Shape, n, []int{n, c, h, w}, why)
	}
	if zn != n {
		return 0, 0, 0, bad("batch sizes differ")
	}
	if zc > c || (c-zc)%2 != 0 {
		return 0, 0, 0, bad(fmt.Sprintf("Cz must be <= %d and differ from it by an even count", c))
	}
	if h == 0 || w == 0 || zh%h != 0 || zh/h < 1 || zw != w*(zh/h) {
		return 0, 0, 0, bad("the spatial size must be the output's times one integer stride")
	}
	return zp, zc, zh / h, nil
}

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

// bnForwardOperands validates a forward call's tensors.
func (d *Device) bnForwardOperands(op string, p backend.BatchNormParams, t backend.BatchNormTensors, training bool) (g bnGeom, o bnOperands, err error) {
	if o.x, g.n, g.c, g.h, g.w, err = d.dims4(op, "X", t.X); err != nil {
		return g, o, err
	}
	if o.y, err = d.shaped(op, "Y", t.Y, g.n, g.c, g.h, g.w); err != nil {
		return g, o, err
	}
	g.cz, g.zs = g.c, 1
	if p.Residual {
		if o.z, g.cz, g.zs, err = d.shortcutGeometry(op, "Z", t.Z, g.n, g.c, g.h, g.w); err != nil {
			return g, o, err
		}
	}
	if training && g.count() < 2 {
		return g, o, fmt.Errorf("cuda: %s: X %v has %d values per channel; training statistics need at least 2", op, t.X.Shape, g.count())
	}
	if p.Eps < 0 || math.IsNaN(float64(p.Eps)) {
		return g, o, fmt.Errorf("cuda: %s: Eps is %v, want >= 0", op, p.Eps)
	}
	k := checker{d: d, op: op}
	o.gamma, o.beta = k.vec("Gamma", t.Gamma, g.c), k.vec("Beta", t.Beta, g.c)
	o.runMean, o.runVar = k.vec("RunningMean", t.RunningMean, g.c), k.vec("RunningVar", t.RunningVar, g.c)
	if training {
		o.saveMean, o.saveInvStd = k.vec("SaveMean", t.SaveMean, g.c), k.vec("SaveInvStd", t.SaveInvStd, g.c)
	}
	o.eps, o.momentum, o.relu, o.residual = p.Eps, p.Momentum, p.ReLU, p.Residual
	return g, o, k.err
}

// bnChunks is how many pieces a channel's statistics are cut into: enough blocks for a few per SM, each
// summing at least 4096 values.
func (d *Device) bnChunks(g bnGeom) int {
	ch := (4*max(d.info.sms, 1) + g.c - 1) / g.c
	ch = min(ch, int((g.count()+4095)/4096), 1024)
	return max(ch, 1)
}

// ensureCounters makes the zeroed per-channel counters of the fused reductions cover c channels. The
// kernels leave them zero after every launch.
func (d *Device) ensureCounters(op string, c int) error {
	bytes := 4 * int64(c)
	if d.counters.class >= bytes {
		return nil
	}
	if err := d.grow(op, &d.counters, max(bytes, 16<<10)); err != nil {
		return err
	}
	d.enqueue(&cmd{kind: cmdMemset, op: op, dst: d.counters.ptr, n: d.counters.class / 4})
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
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, o, err := d.bnForwardOperands(op, p, t, true)
	if err != nil || g.c == 0 {
		return err
	}
	chunks := d.bnChunks(g)
	partialBytes := 16 * int64(g.c) * int64(chunks)
	scratch, err := d.tempAlloc(op, partialBytes+4*int64(g.c))
	if err != nil {
		return err
	}
	partial, scale := scratch, scratch+uint64(partialBytes)
	hw := g.h * g.w
	if !d.opt.Unfused {
		if err := d.ensureCounters(op, g.c); err != nil {
			return err
		}
		if err := d.launch(op, kBNForwardStats, chunks, g.c).p(o.x).i(g.n).i(g.c).i(hw).i(chunks).p(partial).
			p(d.counters.ptr).f(o.eps).f(o.momentum).p(o.gamma).p(o.saveMean).p(o.saveInvStd).p(o.runMean).
			p(o.runVar).p(scale).run(); err != nil {
			return err
		}
		return d.launch(op, bnForwardApply[b2i(o.residual)][b2i(o.relu)], d.blocksFor(g.total()), 1).
			p(o.x).p(o.z).p(o.y).p(o.saveMean).p(scale).p(o.beta).i(g.n).i(g.c).i(g.h).i(g.w).i(g.cz).i(g.zs).run()
	}
	if err := d.launch(op, kBNStatsPartial, chunks, g.c).p(o.x).i(g.n).i(g.c).i(hw).i(chunks).p(partial).run(); err != nil {
		return err
	}
	if err := d.launch(op, kBNStatsFinalize, blocksOf(g.c), 1).p(o.x).p(partial).i(g.c).i(hw).i(chunks).l(g.count()).
		f(o.eps).f(o.momentum).p(o.gamma).p(o.saveMean).p(o.saveInvStd).p(o.runMean).p(o.runVar).p(scale).run(); err != nil {
		return err
	}
	if err := d.launch(op, kBNNormalize, d.blocksFor(g.total()), 1).p(o.x).p(o.y).p(o.saveMean).p(scale).p(o.beta).
		i(g.n).i(g.c).i(g.h).i(g.w).run(); err != nil {
		return err
	}
	return d.unfusedEpilogue(op, g, o)
}

// unfusedEpilogue adds the shortcut and applies the ReLU to y in place, each as its own kernel.
func (d *Device) unfusedEpilogue(op string, g bnGeom, o bnOperands) error {
	if o.residual {
		if err := d.launch(op, kResidualAdd, d.blocksFor(g.total()), 1).p(o.y).p(o.z).i(g.n).i(g.c).i(g.h).i(g.w).
			i(g.cz).i(g.zs).run(); err != nil {
			return err
		}
	}
	if o.relu {
		return d.launch(op, kReLUForward, d.blocksFor(g.total()), 1).p(o.y).p(o.y).l(g.total()).run()
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
	g, o, err := d.bnForwardOperands(op, p, t, false)
	if err != nil {
		return err
	}
	if g.total() == 0 {
		return nil
	}
	if !d.opt.Unfused {
		return d.launch(op, bnInferenceApply[b2i(o.residual)][b2i(o.relu)], d.blocksFor(g.total()), 1).
			p(o.x).p(o.z).p(o.y).p(o.runMean).p(o.runVar).p(o.gamma).p(o.beta).f(o.eps).
			i(g.n).i(g.c).i(g.h).i(g.w).i(g.cz).i(g.zs).run()
	}
	scale, err := d.tempAlloc(op, 4*int64(g.c))
	if err != nil {
		return err
	}
	if err := d.launch(op, kBNInferenceParams, blocksOf(g.c), 1).p(o.runVar).p(o.gamma).f(o.eps).i(g.c).p(scale).run(); err != nil {
		return err
	}
	if err := d.launch(op, kBNNormalize, d.blocksFor(g.total()), 1).p(o.x).p(o.y).p(o.runMean).p(scale).p(o.beta).
		i(g.n).i(g.c).i(g.h).i(g.w).run(); err != nil {
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
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	var g bnGeom
	var o bnOperands
	var err error
	if o.x, g.n, g.c, g.h, g.w, err = d.dims4(op, "X", gr.X); err != nil {
		return err
	}
	if o.dy, err = d.shaped(op, "DY", gr.DY, g.n, g.c, g.h, g.w); err != nil {
		return err
	}
	if o.dx, err = d.shaped(op, "DX", gr.DX, g.n, g.c, g.h, g.w); err != nil {
		return err
	}
	if p.ReLU {
		if o.y, err = d.shaped(op, "Y", gr.Y, g.n, g.c, g.h, g.w); err != nil {
			return err
		}
	}
	g.cz, g.zs = g.c, 1
	if p.Residual {
		if o.dz, g.cz, g.zs, err = d.shortcutGeometry(op, "DZ", gr.DZ, g.n, g.c, g.h, g.w); err != nil {
			return err
		}
	}
	if g.count() == 0 {
		return fmt.Errorf("cuda: %s: X %v is empty", op, gr.X.Shape)
	}
	k := checker{d: d, op: op}
	o.gamma, o.saveMean, o.saveInvStd = k.vec("Gamma", gr.Gamma, g.c), k.vec("SaveMean", gr.SaveMean, g.c), k.vec("SaveInvStd", gr.SaveInvStd, g.c)
	o.dgamma, o.dbeta = k.vec("DGamma", gr.DGamma, g.c), k.vec("DBeta", gr.DBeta, g.c)
	if k.err != nil {
		return k.err
	}
	o.relu, o.residual = p.ReLU, p.Residual
	if g.c == 0 {
		return nil
	}

	chunks := d.bnChunks(g)
	partialBytes := 16 * int64(g.c) * int64(chunks)
	scratch, err := d.tempAlloc(op, partialBytes+12*int64(g.c))
	if err != nil {
		return err
	}
	partial, coef := scratch, scratch+uint64(partialBytes)
	hw := g.h * g.w
	if !d.opt.Unfused {
		if err := d.ensureCounters(op, g.c); err != nil {
			return err
		}
		reduce := kBNBackwardReduce
		if o.relu {
			reduce = kBNBackwardReduceReLU
		}
		if err := d.launch(op, reduce, chunks, g.c).p(o.x).p(o.y).p(o.dy).p(o.saveMean).i(g.n).i(g.c).i(hw).i(chunks).
			p(partial).p(d.counters.ptr).p(o.gamma).p(o.saveInvStd).p(o.dgamma).p(o.dbeta).p(coef).run(); err != nil {
			return err
		}
		return d.launch(op, bnBackwardDX[b2i(o.residual)][b2i(o.relu)], d.blocksFor(g.total()), 1).
			p(o.x).p(o.y).p(o.dy).p(o.saveMean).p(coef).p(o.dx).p(o.dz).i(g.n).i(g.c).i(g.h).i(g.w).i(g.cz).i(g.zs).run()
	}

	gy := o.dy
	if o.relu {
		if gy, err = d.tempAlloc(op, 4*g.total()); err != nil {
			return err
		}
		if err := d.launch(op, kReLUBackward, d.blocksFor(g.total()), 1).p(o.y).p(o.dy).p(gy).l(g.total()).run(); err != nil {
			return err
		}
	}
	if o.residual {
		ztotal := int64(g.n) * int64(g.cz) * int64(g.h*g.zs) * int64(g.w*g.zs)
		if ztotal > 0 {
			if err := d.launch(op, kResidualBackward, d.blocksFor(ztotal), 1).p(gy).p(o.dz).i(g.n).i(g.c).i(g.h).i(g.w).
				i(g.cz).i(g.zs).run(); err != nil {
				return err
			}
		}
	}
	if err := d.launch(op, kBNBackwardReducePartial, chunks, g.c).p(o.x).p(gy).p(o.saveMean).i(g.n).i(g.c).i(hw).
		i(chunks).p(partial).run(); err != nil {
		return err
	}
	if err := d.launch(op, kBNBackwardFinalize, blocksOf(g.c), 1).p(partial).i(g.c).i(chunks).l(g.count()).
		p(o.gamma).p(o.saveInvStd).p(o.dgamma).p(o.dbeta).p(coef).run(); err != nil {
		return err
	}
	return d.launch(op, kBNBackwardInput, d.blocksFor(g.total()), 1).p(o.x).p(gy).p(o.saveMean).p(coef).p(o.dx).
		i(g.n).i(g.c).i(g.h).i(g.w).run()
}
