package train

// The exponential moving average of the weights (train.ema_decay, train.ema_every), as torchvision's
// classification reference keeps it: an AveragedModel of the parameters and the BN running statistics
// (use_buffers), updated after every ema_every-th step of an epoch (batch index 0, k, 2k, ...) by
// ema += (1 - decay) (w - ema) in float32 (torch's lerp), the first update copying the weights, and
// restarted (the next update copies again) after each update during the learning-rate warm-up. It lives
// on the host: an update downloads the weights, which costs little next to ema_every training steps. It is
// checkpointed beside the raw weights (tensors named ema.<name>), evaluated beside them, and `resnet eval
// --ema` scores it.

import (
	"fmt"

	"resnet/internal/eval"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// emaPrefix names the averaged tensors inside a checkpoint.
const emaPrefix = "ema."

// emaWeights is the average of every tensor of a net (parameters and BN running statistics), in the
// order of net.Params.
type emaWeights struct {
	alpha float32 // 1 - decay
	every int
	vals  [][]float32
	cur   []float32 // scratch for a download
	// valid says vals hold an average (updated or restored at least once).
	valid bool
}

// newEMA is the average a config asks for, or nil.
func newEMA(decay float64, every int, net *model.Net) *emaWeights {
	if decay == 0 {
		return nil
	}
	e := &emaWeights{alpha: float32(1 - decay), every: every}
	for _, p := range net.Params {
		e.vals = append(e.vals, make([]float32, p.Shape.Numel()))
	}
	return e
}

// due reports whether the step of batch index (within its epoch) updates the average.
func (e *emaWeights) due(index int) bool { return index%e.every == 0 }

// update folds the net's current weights into the average (or copies them, the first time since a
// restart) and counts the update in st; during the warm-up it then restarts the average.
func (e *emaWeights) update(net *model.Net, st *State, warmup bool) error {
	for i, p := range net.Params {
		v := e.vals[i]
		if st.EMAUpdates == 0 {
			if err := net.Device().Download(v, p.Value); err != nil {
				return fmt.Errorf("ema: reading %s: %w", p.Name, err)
			}
			continue
		}
		if cap(e.cur) < len(v) {
			e.cur = make([]float32, len(v))
		}
		e.cur = e.cur[:len(v)]
		if err := net.Device().Download(e.cur, p.Value); err != nil {
			return fmt.Errorf("ema: reading %s: %w", p.Name, err)
		}
		for j, w := range e.cur {
			v[j] += float32(e.alpha * (w - v[j])) // torch.lerp's start + weight*(end - start), unfused
		}
	}
	st.EMAUpdates++
	e.valid = true
	if warmup {
		st.EMAUpdates = 0
	}
	return nil
}

// tensors are the average as checkpoint tensors.
func (e *emaWeights) tensors(net *model.Net) []safetensors.Tensor {
	out := make([]safetensors.Tensor, len(net.Params))
	for i, p := range net.Params {
		out[i] = safetensors.F32(emaPrefix+p.Name, p.Shape, e.vals[i])
	}
	return out
}

// restore reads the average from a checkpoint.
func (e *emaWeights) restore(c *Checkpoint, net *model.Net) error {
	for i, p := range net.Params {
		v, err := c.tensor(emaPrefix+p.Name, p)
		if err != nil {
			return fmt.Errorf("%w (the run averages its weights, train.ema_decay, but this checkpoint holds no average)", err)
		}
		copy(e.vals[i], v)
	}
	e.valid = true
	return nil
}

// evaluate scores the average: the net takes the averaged weights for the evaluation and gets its own
// back after it.
func (e *emaWeights) evaluate(net *model.Net, score func() (eval.Scores, error)) (eval.Scores, error) {
	own := make([][]float32, len(net.Params))
	for i, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			return eval.Scores{}, err
		}
		own[i] = v
		if err := net.Set(p, e.vals[i]); err != nil {
			return eval.Scores{}, err
		}
	}
	sc, err := score()
	for i, p := range net.Params {
		if serr := net.Set(p, own[i]); err == nil {
			err = serr
		}
	}
	return sc, err
}
