//go:build cuda

package cuda

// Launcher of kernels/loss.cu.

import (
	"fmt"

	"resnet/internal/backend"
)

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
	if len(logits.Shape) != 2 {
		return fmt.Errorf("cuda: %s: logits have shape %v, want (N, K)", op, logits.Shape)
	}
	n, k := logits.Shape[0], logits.Shape[1]
	lp, err := d.view(op, "logits", logits, backend.F32)
	if err != nil {
		return err
	}
	if k == 0 && n > 0 {
		return fmt.Errorf("cuda: %s: logits have shape %v: no classes", op, logits.Shape)
	}
	if !labels.Shape.Equal(backend.Shape{n}) {
		return fmt.Errorf("cuda: %s: labels have shape %v, want [%d]", op, labels.Shape, n)
	}
	labp, err := d.view(op, "labels", labels, backend.I32)
	if err != nil {
		return err
	}
	lossp, err := d.shaped(op, "loss", loss, n)
	if err != nil {
		return err
	}
	var dlp uint64
	if dlogits.Valid() {
		if dlp, err = d.shaped(op, "dlogits", dlogits, n, k); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	const rowsPerBlock = blockSize / 32
	return d.launch(op, kSoftmaxCrossEntropy, (n+rowsPerBlock-1)/rowsPerBlock, 1).p(lp).p(labp).p(lossp).p(dlp).
		i(n).i(k).f(gradScale).run()
}
