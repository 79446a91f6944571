//go:build cuda

package cuda

// Launchers of kernels/loss.cu.

import "resnet/internal/backend"

// SoftmaxCrossEntropy implements backend.Device. dlogits may be left invalid to compute the loss only.
// Labels are not checked here (that would need a copy back to the host): the model checks them before
// uploading, and the kernel writes a NaN loss for a label outside [0, K).
func (d *Device) SoftmaxCrossEntropy(logits, labels, loss, dlogits backend.Tensor, gradScale float32) error {
	g, err := backend.CheckSoftmaxCrossEntropy(logits, labels, loss, dlogits)
	return d.crossEntropy("SoftmaxCrossEntropy", kSoftmaxCrossEntropy, g, err, "labels", logits, labels, loss, dlogits, gradScale)
}

// SoftTargetCrossEntropy implements backend.Device. dlogits may be left invalid to compute the loss only.
func (d *Device) SoftTargetCrossEntropy(logits, targets, loss, dlogits backend.Tensor, gradScale float32) error {
	g, err := backend.CheckSoftTargetCrossEntropy(logits, targets, loss, dlogits)
	return d.crossEntropy("SoftTargetCrossEntropy", kSoftTargetCrossEntropy, g, err, "targets", logits, targets, loss, dlogits, gradScale)
}

// crossEntropy launches kernel k of op on its checked operands: logits, the targets (labels or soft
// targets, named target), the per-sample loss and the optional dlogits; one warp per row.
func (d *Device) crossEntropy(op string, k kernelID, g backend.LossGeometry, checked error, target string,
	logits, targets, loss, dlogits backend.Tensor, gradScale float32) error {
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	a := addrs{d: d, op: op, err: named(checked)}
	lp, tp, lossp := a.in("logits", logits), a.in(target, targets), a.of("loss", loss)
	var dlp uint64
	if dlogits.Valid() {
		dlp = a.of("dlogits", dlogits)
	}
	if a.err != nil || g.N == 0 {
		return a.err
	}
	const rowsPerBlock = blockSize / 32
	return d.launch(op, k, (g.N+rowsPerBlock-1)/rowsPerBlock, 1).p(lp).p(tp).p(lossp).p(dlp).i(g.N).i(g.K).f(gradScale).run()
}
