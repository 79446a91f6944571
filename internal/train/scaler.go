package train

// Loss scaling (train.loss_scale). The loss gradient is multiplied by the scale before the backward pass
// and the SGD step multiplies every gradient by the scale's reciprocal (backend.SGDParams.GradScale), so
// that fp16 gradients too small for its range do not flush to zero. The dynamic scale follows
// torch.amp.GradScaler exactly: its constants, the float32 arithmetic of torch._amp_update_scale_, and the
// order of a step (scale, backward, check the scaled gradients, step or skip, update the scale).

import (
	"fmt"
	"math"

	"resnet/internal/config"
	"resnet/internal/model"
)

// GradScaler's defaults. init_scale and growth_interval are config keys; the factors are fixed.
const (
	scaleGrowthFactor  = 2.0
	scaleBackoffFactor = 0.5
)

// minLossScale is the smallest dynamic scale a run goes on with: a scale backed off this far (about 140
// overflowing steps in a row from 65536) means the gradients are not finite at any scale, which is
// divergence, not overflow. GradScaler has no floor and would skip steps for ever.
const minLossScale = 0x1p-126 // the smallest normal float32

// lossScaler applies train.loss_scale. Its state (the scale and the count of steps in a row without
// overflow) lives in State, so that checkpoints carry it and a resumed run continues bit for bit.
type lossScaler struct {
	cfg config.LossScaling
}

// start sets the scale of a new run, or of a resumed one whose checkpoint holds none (it ran without
// scaling, or with a static scale): the static scale, or the dynamic scale's initial value. A dynamic
// scale restored from a checkpoint is kept, as GradScaler.load_state_dict keeps it over init_scale.
func (s lossScaler) start(st *State, restored bool) {
	switch {
	case !s.cfg.Enabled():
		st.LossScale, st.LossScaleGoodSteps = 0, 0
	case s.cfg.Static > 0:
		st.LossScale, st.LossScaleGoodSteps = float32(s.cfg.Static), 0
	case !restored || st.LossScale == 0 || !st.LossScaleDynamic:
		st.LossScale, st.LossScaleGoodSteps = float32(s.cfg.Init), 0
	}
	st.LossScaleDynamic = s.cfg.Dynamic
}

// scale is the factor the loss gradient is multiplied by (1 without scaling).
func (s lossScaler) scale(st *State) float32 {
	if st.LossScale == 0 {
		return 1
	}
	return st.LossScale
}

// unscale is the factor SGD multiplies each gradient by: float32(1/scale), computed in float64 as
// GradScaler.unscale_ computes its inv_scale (self._scale.double().reciprocal().float()).
func (s lossScaler) unscale(st *State) float32 {
	if st.LossScale == 0 {
		return 1
	}
	return float32(1 / float64(st.LossScale))
}

// update is GradScaler.update after a step whose scaled gradients overflowed (found) or did not, as
// torch._amp_update_scale_ computes it in float32: an overflow multiplies the scale by the backoff factor
// and restarts the count; growthInterval good steps in a row multiply it by the growth factor (unless that
// would overflow float32) and restart the count.
func updateScale(scale float32, goodSteps int, found bool, growthInterval int) (float32, int) {
	if found {
		return float32(float64(scale) * scaleBackoffFactor), 0
	}
	goodSteps++
	if goodSteps < growthInterval {
		return scale, goodSteps
	}
	if grown := float32(float64(scale) * scaleGrowthFactor); !math.IsInf(float64(grown), 0) {
		scale = grown
	}
	return scale, 0
}

// after updates a dynamic scale after a step; found says its gradients overflowed. A static scale or
// none does not change.
func (s lossScaler) after(st *State, found bool) {
	if !s.cfg.Dynamic {
		return
	}
	st.LossScale, st.LossScaleGoodSteps = updateScale(st.LossScale, st.LossScaleGoodSteps, found, s.cfg.GrowthInterval)
}

// overflowStep handles a step whose scaled gradients hold an infinity or a NaN (what says where) under a
// dynamic scale: as GradScaler.step does, the update is skipped (the BN running statistics keep what the
// forward pass gave them, as in PyTorch), the step counts, and the scale backs off. The loss was finite,
// so the batch counts in the epoch's training loss and error.
func (t *trainer) overflowStep(r model.Result, what string) error {
	before := t.st.LossScale
	t.scaler.after(&t.st, true)
	t.st.EpochOverflow++
	t.st.addResult(r)
	if t.st.LossScale < minLossScale {
		return t.diverged(t.st.Epoch+1, t.st.Step+1, fmt.Errorf("%s at loss scale %g, after backing off below %g: %w",
			what, before, minLossScale, ErrDiverged))
	}
	return nil
}
