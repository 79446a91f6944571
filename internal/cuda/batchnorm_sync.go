//go:build cuda

package cuda

// Synchronised batch norm (backend.BatchNormParams.Sync): each op runs in two parts around the syncer's
// exchange, which runs outside the device's lock because the syncer calls the device itself (Download and
// Upload, or collectives on its stream). The exchanged tensor is the device's own; its layouts are
// backend.BatchNormSyncer's.

import (
	"fmt"

	"resnet/internal/backend"
)

// syncTensor returns the device's exchange tensor with shape, zeroed on the stream. d.opMu is held.
func (d *Device) syncTensor(op string, shape backend.Shape) (backend.Tensor, error) {
	bytes := 4 * int64(shape.Numel())
	if err := d.grow(op, &d.syncBlk, bytes); err != nil {
		return backend.Tensor{}, err
	}
	if d.syncBuf == nil {
		d.syncBuf = &buffer{dev: d, dt: backend.F32}
	}
	d.syncBuf.blk, d.syncBuf.n = d.syncBlk, shape.Numel()
	d.enqueue(&cmd{kind: cmdMemset, op: op, dst: d.syncBlk.ptr, n: bytes})
	return backend.Tensor{Shape: shape, DType: backend.F32, Layout: backend.NCHW, Buf: d.syncBuf}, nil
}

// synced runs a synchronised op: local, under the device's lock, writes this rank's part into the
// exchange tensor it returns (not allocated: nothing to exchange); then SumStats runs without the lock;
// then global, under the lock again, finishes the op from the sums.
func (d *Device) synced(op string, s backend.BatchNormSyncer, local func() (backend.Tensor, error), global func() error) error {
	var ex backend.Tensor
	err := d.locked(op, func() (err error) {
		ex, err = local()
		return err
	})
	if err != nil || !ex.Valid() {
		return err
	}
	if err := s.SumStats(ex); err != nil {
		return fmt.Errorf("cuda: %s: Sync.SumStats: %w", op, err)
	}
	return d.locked(op, global)
}

// locked runs fn under the device's lock.
func (d *Device) locked(op string, fn func() error) error {
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	return fn()
}

// bnForwardSynced is BatchNormForwardTraining with p.Synced(): this rank's (count, mean, M2) into its slot,
// the exchange, then the slots merged into the global statistics and the apply.
func (d *Device) bnForwardSynced(p backend.BatchNormParams, t backend.BatchNormTensors) error {
	const op = "BatchNormForwardTraining"
	operands := func() (backend.BatchNormGeometry, bnOperands, error) {
		g, err := backend.CheckBatchNormForwardTraining(p, t)
		o, err := d.bnForwardOperands(op, err, p, t, true)
		return g, o, err
	}
	return d.synced(op, p.Sync, func() (backend.Tensor, error) {
		g, o, err := operands()
		if err != nil || g.C == 0 {
			return backend.Tensor{}, err
		}
		return d.bnSyncStats(op, p.Sync, g, o)
	}, func() error {
		g, o, err := operands()
		if err != nil {
			return err
		}
		scale, err := d.tempAlloc(op, 4*int64(g.C))
		if err != nil {
			return err
		}
		if err := d.launch(op, kBNSyncFinalize, blocksOf(g.C), 1).p(d.syncBlk.ptr).i(g.C).i(p.Sync.WorldSize()).f(o.eps).
			f(o.momentum).p(o.gamma).p(o.saveMean).p(o.saveInvStd).p(o.runMean).p(o.runVar).p(scale).run(); err != nil {
			return err
		}
		return d.bnApply(op, g, o, scale)
	})
}

// bnSyncStats writes this rank's slot of the forward's exchange tensor, which it returns.
func (d *Device) bnSyncStats(op string, s backend.BatchNormSyncer, g backend.BatchNormGeometry, o bnOperands) (backend.Tensor, error) {
	ex, err := d.syncTensor(op, backend.Shape{s.WorldSize(), 3, g.C})
	if err != nil {
		return backend.Tensor{}, err
	}
	chunks := d.bnChunks(g)
	partial, err := d.bnSyncScratch(op, g, chunks)
	if err != nil {
		return backend.Tensor{}, err
	}
	slot := d.syncBlk.ptr + 12*uint64(g.C)*uint64(s.Rank())
	err = d.launchAs(op, kBNSyncStats, g.DType, g.Layout, chunks, channelTiles(g.DType, g.Layout, g.C)).p(o.x).i(g.N).i(g.C).
		i(g.H * g.W).i(chunks).p(partial).p(d.counters.ptr).p(slot).run()
	return ex, err
}

// bnSyncScratch makes the partial sums and the counters of a synchronised op's reduction.
func (d *Device) bnSyncScratch(op string, g backend.BatchNormGeometry, chunks int) (uint64, error) {
	partial, err := d.tempAlloc(op, 16*int64(g.C)*int64(chunks))
	if err != nil {
		return 0, err
	}
	return partial, d.ensureCounters(op, g.C)
}

// bnBackwardSynced is BatchNormBackward with p.Synced(): this rank's gradient sums and count, the
// exchange, then dgamma, dbeta and dx from the global sums.
func (d *Device) bnBackwardSynced(p backend.BatchNormParams, gr backend.BatchNormGrads) error {
	const op = "BatchNormBackward"
	return d.synced(op, p.Sync, func() (backend.Tensor, error) {
		g, o, err := d.bnBackwardOperands(op, p, gr)
		if err != nil || g.C == 0 {
			return backend.Tensor{}, err
		}
		return d.bnSyncGradSums(op, p.Sync, g, o)
	}, func() error {
		g, o, err := d.bnBackwardOperands(op, p, gr)
		if err != nil {
			return err
		}
		coef, err := d.tempAlloc(op, 12*int64(g.C))
		if err != nil {
			return err
		}
		if err := d.launch(op, kBNSyncGradFinalize, blocksOf(g.C), 1).p(d.syncBlk.ptr).i(g.C).i(p.Sync.WorldSize()).p(o.gamma).
			p(o.saveInvStd).p(o.dgamma).p(o.dbeta).p(coef).run(); err != nil {
			return err
		}
		if !d.opt.Unfused {
			return d.bnBackwardDXFused(op, g, o, coef)
		}
		gy, err := d.bnMaskedGrad(op, g, o)
		if err != nil {
			return err
		}
		return d.bnBackwardInput(op, g, o, gy, coef)
	})
}

// bnSyncGradSums writes this rank's sums and count into the backward's exchange tensor, which it returns.
func (d *Device) bnSyncGradSums(op string, s backend.BatchNormSyncer, g backend.BatchNormGeometry, o bnOperands) (backend.Tensor, error) {
	ex, err := d.syncTensor(op, backend.Shape{2*g.C + s.WorldSize()})
	if err != nil {
		return backend.Tensor{}, err
	}
	chunks := d.bnChunks(g)
	partial, err := d.bnSyncScratch(op, g, chunks)
	if err != nil {
		return backend.Tensor{}, err
	}
	err = d.launchAs(op, kBNSyncGradReduce, g.DType, g.Layout, chunks, channelTiles(g.DType, g.Layout, g.C)).p(o.x).p(o.y).p(o.dy).
		p(o.saveMean).i(b2i(o.relu)).i(g.N).i(g.C).i(g.H * g.W).i(chunks).p(partial).p(d.counters.ptr).i(s.Rank()).
		p(d.syncBlk.ptr).run()
	return ex, err
}
