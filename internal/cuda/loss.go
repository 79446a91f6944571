//go:build cuda

package cuda

// Launcher of kernels/loss.cu.

import "resnet/internal/backend"

// SoftmaxCrossEntropy implements backend.Device. dlogits may be left invalid to compute the loss only.
// Labels are not checked here (that would need a copy back to the host): the model checks them before
// uploading, and the kernel writes a NaN loss for a label outside [0, K).
func (d *Device) SoftmaxCrossEntropy(logits, labels, loss, dlogits backend.Tensor, gradScale float32) error {
	const op = "SoftmaxCrossEntropy"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckSoftmaxCrossEntropy(logits, labels, loss, dlogits)
	a := addrs{d: d, op: op, err: named(err)}
	lp, labp, lossp := a.of("logits", logits), a.of("labels", labels), a.of("loss", loss)
	var dlp uint64
	if dlogits.Valid() {
		dlp = a.of("dlogits", dlogits)
	}
	if a.err != nil || g.N == 0 {
		return a.err
	}
	const rowsPerBlock = blockSize / 32
	return d.launch(op, kSoftmaxCrossEntropy, (g.N+rowsPerBlock-1)/rowsPerBlock, 1).p(lp).p(labp).p(lossp).p(dlp).
		i(g.N).i(g.K).f(gradScale).run()
}

// SoftTargetCrossEntropy implements backend.Device. dlogits may be left invalid to compute the loss only.
func (d *Device) SoftTargetCrossEntropy(logits, targets, loss, dlogits backend.Tensor, gradScale float32) error {
	const op = "SoftTargetCrossEntropy"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	g, err := backend.CheckSoftTargetCrossEntropy(logits, targets, loss, dlogits)
	a := addrs{d: d, op: op, err: named(err)}
	lp, tp, lossp := a.in("logits", logits), a.in("targets", targets), a.of("loss", loss)
	var dlp uint64
	if dlogits.Valid() {
		dlp = a.of("dlogits", dlogits)
	}
	if a.err != nil || g.N == 0 {
		return a.err
	}
	const rowsPerBlock = blockSize / 32
	return d.launch(op, kSoftTargetCrossEntropy, (g.N+rowsPerBlock-1)/rowsPerBlock, 1).p(lp).p(tp).p(lossp).p(dlp).
		i(g.N).i(g.K).f(gradScale).run()
}
