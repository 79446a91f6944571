package train

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// checkpointFormat tags checkpoint files so a future layout change can be recognised.
const checkpointFormat = "resnet-checkpoint/1"

// momentumPrefix names optimizer momentum buffers inside a checkpoint, beside the model's own tensors.
const momentumPrefix = "optimizer.momentum_buffer."

// State is the position of a training run: everything besides tensors that a resumed run needs to continue
// exactly where the interrupted one stopped.
type State struct {
	Epoch int   `json:"epoch"` // epoch in progress, 0-based
	Batch int   `json:"batch"` // next batch index inside Epoch
	Step  int64 `json:"step"`  // optimizer steps taken
	// WarmStart is true while the warm-start rate is still in force.
	WarmStart bool `json:"warm_start"`
	// Running sums over the epoch in progress.
	EpochLoss float64 `json:"epoch_loss"`
	EpochTop1 int64   `json:"epoch_top1"`
	EpochN    int64   `json:"epoch_n"`
	EpochBad  int64   `json:"epoch_bad"` // unreadable images skipped
	// EpochNonFinite counts the epoch's steps with a NaN or an infinity in the loss, BN statistics or
	// gradients, whose update was skipped; NonFiniteInARow the latest run of such steps, which
	// train.max_nonfinite_steps bounds.
	EpochNonFinite  int64 `json:"epoch_nonfinite"`
	NonFiniteInARow int   `json:"nonfinite_in_a_row"`
	// EpochSeconds is the training time spent in the epoch so far, and EpochDataSeconds and
	// EpochCopySeconds the parts of it spent waiting for the loader's batches and handing them to the
	// device (Net.UploadTime); the rest is compute (timing only).
	EpochSeconds     float64 `json:"epoch_seconds"`
	EpochDataSeconds float64 `json:"epoch_data_seconds,omitempty"`
	EpochCopySeconds float64 `json:"epoch_copy_seconds,omitempty"`
	// WallSeconds is the run's wall-clock time so far, training and evaluation, over every process that
	// worked on it (the time between an interruption and its resume is not counted; timing only).
	WallSeconds float64 `json:"wall_seconds"`
	// EMAUpdates counts the updates of the weights' average since it last (re)started (train.ema_decay).
	EMAUpdates int64 `json:"ema_updates,omitempty"`
	// TargetErr is the evaluated error that met train.target_err and ended the run (0 while none has).
	TargetErr float64 `json:"target_err,omitempty"`
	// MetricsBytes is the length of metrics.jsonl when the checkpoint was taken; a resumed run cuts the file
	// back to it, so lines written after the checkpoint (before a kill -9) are not duplicated.
	MetricsBytes   int64 `json:"metrics_bytes"`
	BatchesTracked int64 `json:"batches_tracked"`
	// The loss scale (train.loss_scale; 0 without scaling), whether it is dynamic, and a dynamic scale's
	// steps in a row without overflow: GradScaler's state_dict (scale, _growth_tracker).
	LossScale          float32 `json:"loss_scale,omitempty"`
	LossScaleDynamic   bool    `json:"loss_scale_dynamic,omitempty"`
	LossScaleGoodSteps int     `json:"loss_scale_good_steps,omitempty"`
	// EpochOverflow counts the epoch's steps skipped because their scaled gradients overflowed (dynamic
	// loss scaling).
	EpochOverflow int64 `json:"epoch_overflow_steps,omitempty"`
}

// addResult adds a batch's loss and hits to the epoch's running sums.
func (st *State) addResult(r model.Result) {
	st.EpochLoss += r.LossSum
	st.EpochTop1 += int64(r.Top1)
	st.EpochN += int64(r.N)
}

// check rejects a position no run can reach: negative counters, more correct images than images, or a
// non-finite running loss.
func (st State) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"epoch", int64(st.Epoch)}, {"batch", int64(st.Batch)}, {"step", st.Step}, {"epoch_top1", st.EpochTop1},
		{"epoch_n", st.EpochN}, {"epoch_bad", st.EpochBad}, {"metrics_bytes", st.MetricsBytes},
		{"batches_tracked", st.BatchesTracked}, {"epoch_nonfinite", st.EpochNonFinite},
		{"nonfinite_in_a_row", int64(st.NonFiniteInARow)}, {"loss_scale_good_steps", int64(st.LossScaleGoodSteps)},
		{"epoch_overflow_steps", st.EpochOverflow}, {"ema_updates", st.EMAUpdates},
	} {
		if f.v < 0 {
			return fmt.Errorf("has %s %d (must be >= 0)", f.name, f.v)
		}
	}
	switch {
	case st.EpochTop1 > st.EpochN:
		return fmt.Errorf("has epoch_top1 %d above epoch_n %d", st.EpochTop1, st.EpochN)
	case math.IsNaN(st.EpochLoss) || math.IsInf(st.EpochLoss, 0) || st.EpochLoss < 0:
		return fmt.Errorf("has epoch_loss %v (must be a finite number >= 0)", st.EpochLoss)
	case !(st.LossScale >= 0) || math.IsInf(float64(st.LossScale), 0):
		return fmt.Errorf("has loss_scale %v (must be a finite number >= 0)", st.LossScale)
	case !(st.WallSeconds >= 0) || math.IsInf(st.WallSeconds, 0):
		return fmt.Errorf("has wall_seconds %v (must be a finite number >= 0)", st.WallSeconds)
	case !(st.TargetErr >= 0 && st.TargetErr <= 1):
		return fmt.Errorf("has target_err %v (must be in [0, 1])", st.TargetErr)
	}
	return nil
}

// nextEpoch is the position at the start of the epoch after st's: its running sums start over.
func (st State) nextEpoch() State {
	st.Epoch++
	st.Batch, st.EpochLoss, st.EpochTop1, st.EpochN, st.EpochSeconds, st.EpochBad = 0, 0, 0, 0, 0, 0
	st.EpochNonFinite, st.EpochOverflow = 0, 0
	st.EpochDataSeconds, st.EpochCopySeconds = 0, 0
	return st
}

// Checkpoint is a checkpoint file read back.
type Checkpoint struct {
	Path   string
	State  State
	Arch   string
	Config []byte // the run's resolved config, YAML
	file   *safetensors.File
}

// encodeCheckpoint lays out the net's weights, BN statistics and momentum buffers with the run state and
// config as a checkpoint file.
func encodeCheckpoint(net *model.Net, st State, configYAML []byte, extra []safetensors.Tensor) (*safetensors.File, error) {
	f := &safetensors.File{Metadata: map[string]string{}}
	st.BatchesTracked = net.BatchesTracked
	stateJSON, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	f.Metadata["format"] = checkpointFormat
	f.Metadata["arch"] = net.Spec.Name
	f.Metadata["state"] = string(stateJSON)
	f.Metadata["config"] = string(configYAML)
	// The 8-byte counters go first so that every tensor stays aligned to its element size.
	for _, p := range net.Params {
		if p.Kind == model.BNRunningVar {
			prefix := strings.TrimSuffix(p.Name, "running_var")
			f.Tensors = append(f.Tensors, safetensors.I64(prefix+"num_batches_tracked", []int{}, []int64{net.BatchesTracked}))
		}
	}
	// A value that no trained net holds means the run diverged: such a checkpoint is not written, so the
	// good ones before it stay (rotation only follows a written checkpoint).
	add := func(name string, shape []int, v []float32) error {
		if err := model.CheckValues(name, v); err != nil {
			return fmt.Errorf("checkpoint at step %d not written: %w: %w", st.Step, err, ErrDiverged)
		}
		f.Tensors = append(f.Tensors, safetensors.F32(name, shape, v))
		return nil
	}
	for _, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: reading %s: %w", p.Name, err)
		}
		if err := add(p.Name, p.Shape, v); err != nil {
			return nil, err
		}
	}
	for _, p := range net.Params {
		if !p.Kind.Trainable() {
			continue
		}
		v := make([]float32, p.Shape.Numel())
		if err := net.Device().Download(v, p.Momentum); err != nil {
			return nil, fmt.Errorf("checkpoint: reading momentum of %s: %w", p.Name, err)
		}
		if err := add(momentumPrefix+p.Name, p.Shape, v); err != nil {
			return nil, err
		}
	}
	for _, x := range extra {
		v, err := x.Float32s()
		if err != nil {
			return nil, err
		}
		if err := add(x.Name, x.Shape, v); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// LoadCheckpoint reads a checkpoint file and its metadata, and refuses one holding a NaN, an infinity or
// a negative running variance.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if got := f.Metadata["format"]; got != checkpointFormat {
		return nil, fmt.Errorf("checkpoint %s: format %q, want %q", path, got, checkpointFormat)
	}
	c := &Checkpoint{Path: path, Arch: f.Metadata["arch"], Config: []byte(f.Metadata["config"]), file: f}
	if err := json.Unmarshal([]byte(f.Metadata["state"]), &c.State); err != nil {
		return nil, fmt.Errorf("checkpoint %s: state metadata: %w", path, err)
	}
	if err := c.State.check(); err != nil {
		return nil, fmt.Errorf("checkpoint %s: state metadata %w: the file is damaged or was not written by resnet", path, err)
	}
	if err := c.checkValues(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkValues refuses a checkpoint holding a NaN, an infinity or a negative running variance, which
// this program no longer writes but an older one wrote for a diverged run: every output of the net would
// be NaN.
func (c *Checkpoint) checkValues() error {
	for _, t := range c.file.Tensors {
		if t.DType != safetensors.Float32 {
			continue
		}
		v, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %s: %w", c.Path, t.Name, err)
		}
		if err := model.CheckValues(t.Name, v); err != nil {
			return fmt.Errorf("checkpoint %s: %w: the run had diverged when it was written, or the file is damaged; use an earlier checkpoint", c.Path, err)
		}
	}
	return nil
}

// Tensor returns one tensor of the checkpoint file by name.
func (c *Checkpoint) Tensor(name string) (safetensors.Tensor, bool) { return c.file.Get(name) }

// tensor reads the checkpoint's tensor name, which must have p's shape.
func (c *Checkpoint) tensor(name string, p *model.Param) ([]float32, error) {
	t, ok := c.file.Get(name)
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: missing tensor %s", c.Path, name)
	}
	if !model.SameShape(t.Shape, p.Shape) {
		return nil, fmt.Errorf("checkpoint %s: %s has shape %v, the net needs %v", c.Path, name, t.Shape, p.Shape)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", c.Path, name, err)
	}
	return v, nil
}

// HasEMA reports whether the checkpoint holds an average of the weights (train.ema_decay).
func (c *Checkpoint) HasEMA() bool {
	for _, t := range c.file.Tensors {
		if strings.HasPrefix(t.Name, emaPrefix) {
			return true
		}
	}
	return false
}

// RestoreEMA loads the checkpoint's average of the weights and BN statistics into net, instead of the
// weights themselves.
func (c *Checkpoint) RestoreEMA(net *model.Net) error {
	if c.Arch != net.Spec.Name {
		return fmt.Errorf("checkpoint %s holds %s, the net is %s", c.Path, c.Arch, net.Spec.Name)
	}
	if !c.HasEMA() {
		return fmt.Errorf("checkpoint %s holds no average of its weights: its run trained without train.ema_decay", c.Path)
	}
	for _, p := range net.Params {
		v, err := c.tensor(emaPrefix+p.Name, p)
		if err != nil {
			return err
		}
		if err := net.Set(p, v); err != nil {
			return err
		}
	}
	net.BatchesTracked = c.State.BatchesTracked
	return nil
}

// Restore loads the checkpoint's weights and BN statistics into net, and its momentum buffers when
// withOptimizer is set. Every tensor of the net must be present with its shape.
func (c *Checkpoint) Restore(net *model.Net, withOptimizer bool) error {
	if c.Arch != net.Spec.Name {
		return fmt.Errorf("checkpoint %s holds %s, the net is %s", c.Path, c.Arch, net.Spec.Name)
	}
	load := func(name string, p *model.Param, dst func([]float32) error) error {
		v, err := c.tensor(name, p)
		if err != nil {
			return err
		}
		return dst(v)
	}
	for _, p := range net.Params {
		if err := load(p.Name, p, func(v []float32) error { return net.Set(p, v) }); err != nil {
			return err
		}
		if withOptimizer && p.Kind.Trainable() {
			if err := load(momentumPrefix+p.Name, p, func(v []float32) error { return net.Device().Upload(p.Momentum, v) }); err != nil {
				return err
			}
		}
	}
	net.BatchesTracked = c.State.BatchesTracked
	return nil
}
