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
// the weights: a NaN or infinite loss, a NaN or infinity (or a negative variance) in the BN running
// statistics that the forward pass updated, or a NaN or infinity in any gradient. The device scans the
// tensors where they are (one backend.Device.FindNonFinite call over the statistics, then the gradients)
// and returns only the index of the first bad one, so a GPU sends back a few bytes per step
// instead of every gradient. Only then is that one tensor downloaded, into one reused buffer, and read by
// model.CheckValues to name its first bad value. Nothing is allocated per step.
//
// For train.on_nonfinite: skip it also keeps a copy of the BN running statistics from before each step,
// since the forward pass has updated them by the time the loss is known: a skipped step then leaves the
// net as it was.
type stepCheck struct {
	net *model.Net
	// checked are the BN running statistics, then the trainable parameters; tensors their statistics'
	// values and their parameters' gradients, in that order, as FindNonFinite takes them, with
	// nonNegative set for the running variances. The first nStats of each are the statistics.
	checked     []*model.Param
	tensors     []backend.Tensor
	nonNegative []bool
	nStats      int
	buf         []float32
	saved       []backend.Tensor // copies of stats from before the step, when a skipped step must restore them
	seen        int64            // net.BatchesTracked before the step
}

func newStepCheck(net *model.Net, keepStats bool) (*stepCheck, error) {
	c := &stepCheck{net: net}
	size := 0
	for _, p := range net.Params {
		if !p.Kind.Trainable() {
			c.checked = append(c.checked, p)
			c.tensors = append(c.tensors, p.Value)
			c.nonNegative = append(c.nonNegative, model.IsVariance(p.Name))
		}
		size = max(size, p.Shape.Numel())
	}
	c.nStats = len(c.checked)
	for _, p := range net.Params {
		if p.Kind.Trainable() {
			c.checked = append(c.checked, p)
			c.tensors = append(c.tensors, p.Grad)
			c.nonNegative = append(c.nonNegative, false)
		}
	}
	c.buf = make([]float32, size)
	if !keepStats {
		return c, nil
	}
	for _, p := range c.checked[:c.nStats] {
		t, err := net.Device().Alloc(p.Shape, backend.F32, backend.NCHW)
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
	for i, t := range c.saved {
		if err := c.net.Device().Copy(t, c.checked[i].Value); err != nil {
			return fmt.Errorf("train: saving %s: %w", c.checked[i].Name, err)
		}
	}
	return nil
}

// restore puts back what save copied, undoing the forward pass of a skipped step.
func (c *stepCheck) restore() error {
	c.net.BatchesTracked = c.seen
	for i, t := range c.saved {
		if err := c.net.Device().Copy(c.checked[i].Value, t); err != nil {
			return fmt.Errorf("train: restoring %s: %w", c.checked[i].Name, err)
		}
	}
	return nil
}

// problem says what is wrong in the step that gave r, in the order the step computed it: "the loss is
// NaN", "after the forward pass, layer1.0.bn1.running_var[3] is +Inf", "the gradient of
// layer1.0.conv1.weight[17] is NaN"; or returns "" when nothing is. inGradient says the loss and the BN
// statistics were finite and a gradient was not: with a dynamic loss scale, an overflow.
func (c *stepCheck) problem(r model.Result) (what string, inGradient bool, err error) {
	if math.IsNaN(r.LossSum) || math.IsInf(r.LossSum, 0) {
		return "the loss is " + strconv.FormatFloat(r.LossSum, 'g', -1, 64), false, nil
	}
	i, err := c.net.Device().FindNonFinite(c.tensors, c.nonNegative)
	if err != nil || i < 0 {
		if err != nil {
			err = fmt.Errorf("train: checking the step's values: %w", err)
		}
		return "", false, err
	}
	p := c.checked[i]
	v := c.buf[:p.Shape.Numel()]
	if err := c.net.Device().Download(v, c.tensors[i]); err != nil {
		return "", false, fmt.Errorf("train: reading %s: %w", p.Name, err)
	}
	if err := model.CheckValues(p.Name, v); err != nil {
		if i < c.nStats {
			return "after the forward pass, " + err.Error(), false, nil
		}
		return "the gradient of " + err.Error(), true, nil
	}
	return "", false, fmt.Errorf("train: the device found a NaN, an infinity or a negative variance in %s, but its values "+
		"read back hold none", p.Name)
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
