package train

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// stepCheck finds what says a run has diverged in a training step, before the SGD update writes it into
// the weights: a NaN or infinite loss, then a NaN or infinity in any gradient. Gradients are downloaded
// one tensor at a time into one reused buffer and read once, the same code for every backend, with
// nothing allocated per step.
//
// For train.on_nonfinite: skip it also keeps a copy of the BN running statistics from before each step,
// since the forward pass has updated them by the time the loss is known: a skipped step then leaves the
// net as it was.
type stepCheck struct {
	net    *model.Net
	params []*model.Param // trainable: those with a gradient
	buf    []float32
	stats  []*model.Param   // BN running statistics ...
	saved  []backend.Tensor // ... and their copies, when a skipped step must restore them
	seen   int64            // net.BatchesTracked before the step
}

func newStepCheck(net *model.Net, keepStats bool) (*stepCheck, error) {
	c := &stepCheck{net: net}
	size := 0
	for _, p := range net.Params {
		if p.Kind.Trainable() {
			c.params = append(c.params, p)
			size = max(size, p.Shape.Numel())
		} else if keepStats {
			c.stats = append(c.stats, p)
		}
	}
	c.buf = make([]float32, size)
	dev := net.Device()
	for _, p := range c.stats {
		t, err := dev.Alloc(p.Shape, backend.F32, backend.NCHW)
		if err != nil {
			c.free()
			return nil, fmt.Errorf("train: a copy of %s: %w", p.Name, err)
		}
		c.saved = append(c.saved, t)
	}
	return c, nil
}

// save copies the BN running statistics (when kept) before a step's forward pass updates them.
func (c *stepCheck) save() error {
	c.seen = c.net.BatchesTracked
	for i, p := range c.stats {
		if err := c.net.Device().Copy(c.saved[i], p.Value); err != nil {
			return fmt.Errorf("train: saving %s: %w", p.Name, err)
		}
	}
	return nil
}

// restore puts back what save copied, undoing the forward pass of a skipped step.
func (c *stepCheck) restore() error {
	c.net.BatchesTracked = c.seen
	for i, p := range c.stats {
		if err := c.net.Device().Copy(p.Value, c.saved[i]); err != nil {
			return fmt.Errorf("train: restoring %s: %w", p.Name, err)
		}
	}
	return nil
}

// problem says what is not finite in the step that gave r, "the loss is NaN" or "the gradient of
// layer1.0.conv1.weight[17] is +Inf", or returns "" when everything is.
func (c *stepCheck) problem(r model.Result) (string, error) {
	if math.IsNaN(r.LossSum) || math.IsInf(r.LossSum, 0) {
		return "the loss is " + strconv.FormatFloat(r.LossSum, 'g', -1, 64), nil
	}
	for _, p := range c.params {
		g := c.buf[:p.Shape.Numel()]
		if err := c.net.Device().Download(g, p.Grad); err != nil {
			return "", fmt.Errorf("train: reading the gradient of %s: %w", p.Name, err)
		}
		if err := model.CheckValues(p.Name, g); err != nil {
			return "the gradient of " + err.Error(), nil
		}
	}
	return "", nil
}

func (c *stepCheck) free() {
	for _, t := range c.saved {
		c.net.Device().Free(t)
	}
	c.saved = nil
}

// diverged is the error that ends a run at epoch and step (counted from 1), where cause (wrapping
// ErrDiverged) found a loss, a gradient or a weight not finite. It says what to change, the rate, and
// where to continue from.
func (t *trainer) diverged(epoch int, step int64, cause error) error {
	lower := t.cfg.Train.LR / 10
	hint := fmt.Sprintf("lower train.lr (e.g. --set train.lr=%.3g) and start a new run", lower)
	if t.res.Checkpoint != "" {
		hint = fmt.Sprintf("lower train.lr and continue from the last checkpoint, %s: resnet train --resume %s --set train.lr=%.3g",
			filepath.Base(t.res.Checkpoint), t.dir.Path(), lower)
	}
	return fmt.Errorf("train: epoch %d step %d (lr %.4g): %w; %s", epoch, step, t.lr, cause, hint)
}
