// Package train runs training: the loop over epochs and steps, the SGD update and learning-rate schedule,
// evaluation between epochs, metrics.jsonl, checkpoints and exact resume.
package train

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/dist"
	"resnet/internal/eval"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
	"resnet/internal/safetensors"
	"resnet/internal/sysmem"
)

// ErrInterrupted is returned when a stop request ended training early; a checkpoint was written first.
var ErrInterrupted = errors.New("training interrupted")

// ErrDiverged is returned when training met a loss, BN statistic, gradient or weight that is NaN or
// infinite: the run diverged. No checkpoint holding such a value is ever written.
var ErrDiverged = errors.New("the run diverged")

// Metrics is one line of metrics.jsonl, written after every evaluation. Errors are fractions in [0, 1].
// The losses and the training error are null in JSON when they are not finite numbers (an evaluation of
// a net whose outputs overflowed; an epoch that had no update to average over), so every line encodes.
type Metrics struct {
	Epoch       int           `json:"epoch"` // epochs completed
	Step        int64         `json:"step"`  // optimizer steps taken
	LR          float64       `json:"lr"`    // rate of the epoch's last step
	TrainLoss   jsonnum.Float `json:"train_loss"`
	TrainErr    jsonnum.Float `json:"train_err"`
	TestLoss    jsonnum.Float `json:"test_loss"`
	TestErr     float64       `json:"test_err"`
	TestTop5Err float64       `json:"test_top5_err"`
	// TestNonFinite counts the evaluated images whose outputs were NaN or infinite (each counted wrong).
	TestNonFinite int `json:"test_nonfinite_outputs"`
	// BadImages counts the unreadable images skipped in the epoch's training batches and in the
	// evaluation.
	BadImages int64 `json:"bad_images"`
	// NonFiniteSteps counts the epoch's steps whose loss, BN statistics or gradients were not finite and
	// whose update was skipped (train.on_nonfinite: skip).
	NonFiniteSteps int64 `json:"nonfinite_steps"`
	// With loss scaling (train.loss_scale) on: the scale after the epoch's last step, and the epoch's
	// steps skipped because their scaled gradients overflowed (dynamic scaling; they are not in
	// NonFiniteSteps). Absent without scaling.
	LossScale    *float64 `json:"loss_scale,omitempty"`
	SkippedSteps *int64   `json:"skipped_steps,omitempty"`
	// Timing fields: the only ones that differ between identical runs.
	ImagesPerSec float64 `json:"images_per_sec"`
	EpochSeconds float64 `json:"epoch_seconds"`
	// WallSeconds is the run's wall-clock time up to this evaluation, over every process that worked on it
	// (State.WallSeconds): the time the run took to reach this line's errors.
	WallSeconds float64 `json:"wall_seconds"`
	// The scores of the weights' average (train.ema_decay), on the same split; absent without one.
	TestLossEMA    *jsonnum.Float `json:"test_loss_ema,omitempty"`
	TestErrEMA     *float64       `json:"test_err_ema,omitempty"`
	TestTop5ErrEMA *float64       `json:"test_top5_err_ema,omitempty"`
	// Where the epoch's training time (EpochSeconds) went: waiting for the loader's batches, handing them
	// to the device (on a GPU, the copy into pinned staging memory and the queueing of the transfer), and
	// compute (forward, loss, backward, the update and the finiteness checks, until the step's loss is back
	// on the host).
	DataSeconds    float64 `json:"data_seconds"`
	CopySeconds    float64 `json:"copy_seconds"`
	ComputeSeconds float64 `json:"compute_seconds"`
}

// Options configure a training run.
type Options struct {
	Config config.Config
	// ConfigYAML is the resolved config as written to the run directory and into checkpoints.
	ConfigYAML []byte
	RunDir     string
	// Resume continues the run in RunDir from its newest intact checkpoint (from step 0 when it has none).
	Resume bool
	// From is the resume point the caller read the config from (RunDir.ResumePoint); the trainer checks
	// under the run's lock that it is still the newest. Nil: the trainer finds it.
	From   *ResumePoint
	Device backend.Device
	// Out receives progress: a bar per epoch when Terminal is set, plain log lines otherwise.
	Out      io.Writer
	Terminal bool
	// Stop, when closed, ends training after the current step with a checkpoint.
	Stop <-chan struct{}
	// HostMemory reports the host memory the run may use (nil: sysmem.HostLimit).
	HostMemory func() sysmem.Limit
	// Version is the program's, for reproducibility.json.
	Version string
	// Comm connects the ranks of a data-parallel job (nil: a single process). Every rank trains on its
	// share of each global batch (train.batch_size) and starts from rank 0's state; rank 0 alone writes
	// the run folder, and only its Out should be shown.
	Comm dist.Communicator
	// Collectives, on a device that runs its own (NCCL), sum the gradients and broadcast the tensors in
	// device memory; Comm still carries the host values.
	Collectives backend.Collectives
	// afterStep is a test hook run after every step; an error from it ends training at once, without a
	// checkpoint, as a kill -9 would.
	afterStep func(st *State) error
	// afterBackward is a test hook run after each step's backward pass, before its gradients are checked
	// and applied.
	afterBackward func(net *model.Net, st *State) error
	// beforeBatch is a test hook run while each step waits for its batch (a slow loader).
	beforeBatch func()
	// bucketFloats, in a test, replaces the size of the gradient buckets of a data-parallel step
	// (bucketFloats); negative: the gradients are summed after backward.
	bucketFloats int
}

// Result describes a finished (or interrupted) run.
type Result struct {
	RunDir     string
	Checkpoint string
	Last       Metrics
	Epochs     int
	// ReachedTarget says the run ended early, its evaluated error at or below train.target_err.
	ReachedTarget bool
}

// Run trains according to opt: a new run in opt.RunDir, or the one there continued from its newest
// checkpoint.
func Run(opt Options) (Result, error) {
	t := &trainer{opt: opt, cfg: opt.Config, dir: NewRunDir(opt.RunDir), par: newParallel(opt)}
	t.res.RunDir = opt.RunDir
	defer t.close()
	if err := t.prepare(); err != nil {
		return t.res, err
	}
	err := t.run()
	return t.res, err
}

// trainer is one run in progress: the net and its optimizer, the loaders, and the position reached (st),
// which is what a checkpoint records.
type trainer struct {
	opt Options
	cfg config.Config
	dir RunDir
	net *model.Net
	// par links the ranks of a data-parallel job (nil for a single process), and buckets sums its
	// gradients while backward runs (nil: after backward).
	par     *parallel
	buckets *gradBuckets
	slots   []backend.SGDSlot
	check   *stepCheck
	scaler  lossScaler
	// mix makes the soft targets of label smoothing, mixup and CutMix (nil without them).
	mix *mixer
	// acc sums the micro-batches' gradients under train.accumulate_steps (Net.GradientStore's shape).
	acc backend.Tensor
	// ema is the average of the weights (nil without train.ema_decay).
	ema     *emaWeights
	sched   Schedule
	train   *dataset.Loader
	test    *dataset.Loader
	batches int // training batches per epoch
	sample  int // floats per input example
	prog    *progress
	st      State
	lr      float64 // rate of the latest step
	res     Result
	lock    *RunLock
	// recorded says reproducibility.json was written by this process, listing recordedConvs algorithms.
	recorded      bool
	recordedConvs int
	// since is when st.WallSeconds was last brought up to date.
	since time.Time
	// waited is how long the step in progress waited for its batch; warnedData says the run was told that
	// waiting for data slows it.
	waited     time.Duration
	warnedData bool
}

// prepare opens the run folder, the data and the net, restores the checkpoint of a resumed run, and
// starts the loaders.
func (t *trainer) prepare() error {
	if err := CheckWorld(t.cfg, t.world()); err != nil {
		return err
	}
	if err := t.openRunDir(); err != nil {
		return err
	}
	data, err := OpenData(t.cfg.Dataset, t.cfg.Seed)
	if err != nil {
		return err
	}
	if err := t.buildNet(data); err != nil {
		return err
	}
	if !t.opt.Resume && t.isRank0() {
		// Only now, with the data and the net in hand, does a new run's folder get its config.yaml: a run
		// refused before (memory, input size, data) leaves no run behind.
		if err := t.dir.Create(t.opt.ConfigYAML); err != nil {
			return err
		}
	}
	t.st = State{WarmStart: t.cfg.Train.Schedule.WarmStartLR > 0}
	restored := false
	if t.opt.Resume && t.isRank0() {
		var err error
		if restored, err = t.resume(); err != nil {
			return err
		}
	}
	if t.par != nil {
		if restored, err = t.syncState(restored); err != nil {
			return err
		}
		if t.cfg.Model.SyncBN {
			t.net.SetBatchNormSync(bnSyncer{t.par})
		}
		t.startBuckets()
	}
	t.scaler = lossScaler{cfg: t.cfg.LossScaling()}
	t.scaler.start(&t.st, restored)
	if err := t.openLoaders(data); err != nil {
		return err
	}
	t.sched = NewSchedule(t.cfg.Train)
	t.slots = t.net.SGDSlots(float32(t.cfg.Train.WeightDecay), t.cfg.Train.NoDecayBNBias)
	if t.check, err = newStepCheck(t.net, t.cfg.Train.OnNonFinite == config.OnNonFiniteSkip); err != nil {
		return err
	}
	t.batches = t.train.BatchesPerEpoch()
	if t.batches == 0 {
		return fmt.Errorf("train: %d training examples make no full batch of %d", data.Train.Len(), t.cfg.Train.BatchSize)
	}
	c, h, w := t.net.InputShape()
	t.sample = c * h * w
	t.mix = newMixer(t.cfg.Train, t.net.Spec.NumClasses)
	t.prog = newProgress(t.opt.Out, t.opt.Terminal, t.cfg.Train.LogEvery)
	t.since = time.Now()
	return nil
}

// clock adds the wall-clock time since it last ran to the run's.
func (t *trainer) clock() {
	now := time.Now()
	t.st.WallSeconds += now.Sub(t.since).Seconds()
	t.since = now
}

// openRunDir locks the run folder; a new run's folder must not hold a run (prepare writes its config.yaml
// once the run is known to fit). A resumed run's config.yaml is rewritten only with its next checkpoint,
// so a run that fails at once leaves the folder as it was.
func (t *trainer) openRunDir() error {
	if !t.isRank0() {
		return nil // the other ranks of a job leave the folder to rank 0
	}
	lock, err := t.dir.Lock()
	if err != nil {
		return err
	}
	t.lock = lock
	if t.opt.Resume {
		return nil
	}
	if err := t.dir.CheckNew(); err != nil {
		return fmt.Errorf("%w; continue it with --resume %s, or choose another directory with --out", err, t.dir.Path())
	}
	return nil
}

// buildNet allocates the net for the training data's classes and image size and initialises it, once
// the run's memory estimate fits.
func (t *trainer) buildNet(data *Data) error {
	_, ih, _ := data.Train.OutputShape()
	spec, err := SpecFor(t.cfg.Model, data.Train.NumClasses(), ih)
	if err != nil {
		return err
	}
	budget, err := MemoryBudget(t.opt.Device, t.opt.HostMemory)
	if err != nil {
		return err
	}
	// A rank of a job of several holds its share of the global batch.
	if err := NewRunMemory(t.cfg, spec, data).PerRank(t.world()).Check(budget); err != nil {
		return ExplainInputSize(err, t.cfg.Dataset)
	}
	share := t.cfg
	share.Train.BatchSize /= t.world()
	capacity := max(share.Train.MicroBatch(), t.cfg.Eval.BatchSize)
	net, err := model.Build(t.opt.Device, spec, capacity)
	if err != nil {
		return ExplainInputSize(err, t.cfg.Dataset)
	}
	t.net = net
	t.ema = newEMA(t.cfg.Train.EMADecay, t.cfg.Train.EMAEvery, net)
	if t.cfg.Train.AccumulateSteps > 1 {
		g := net.GradientStore()
		if t.acc, err = t.opt.Device.Alloc(g.Shape, backend.F32, backend.NCHW); err != nil {
			return fmt.Errorf("train: the accumulated gradients: %w", err)
		}
	}
	return net.Init(t.cfg.Seed)
}

// resume restores the newest intact checkpoint's tensors and position, and cuts metrics.jsonl back to
// what the checkpoint covers; restored says a checkpoint was found. A run that stopped before its first
// checkpoint starts over from step 0.
func (t *trainer) resume() (restored bool, err error) {
	rp := t.opt.From
	if rp == nil {
		if rp, err = t.dir.ResumePoint(); err != nil {
			return false, err
		}
	} else if err := rp.stillCurrent(t.dir); err != nil {
		return false, err
	}
	for _, s := range rp.Skipped {
		fmt.Fprintf(t.opt.Out, "warning: %s\n", s)
	}
	if rp.Checkpoint == nil {
		fmt.Fprintf(t.opt.Out, "resuming %s from step 0: it stopped before its first checkpoint\n", t.dir.Path())
		return false, t.dir.TruncateMetrics(0)
	}
	ck := rp.Checkpoint
	if err := ck.Restore(t.net, true); err != nil {
		return false, err
	}
	t.st = ck.State
	if t.ema != nil && (ck.HasEMA() || t.st.EMAUpdates > 0) {
		if err := t.ema.restore(ck, t.net); err != nil {
			return false, err
		}
	} else if t.ema != nil {
		t.st.EMAUpdates = 0 // averaging starts with this process: its first update copies the weights
	}
	if target := t.cfg.Train.TargetErr; t.st.TargetErr > 0 && target > 0 && t.st.TargetErr <= target {
		return false, fmt.Errorf("resume: %s reached its target error (%.2f%%, train.target_err %g) at epoch %d; to train on, lower the target or unset it: --set train.target_err=0",
			t.dir.Path(), 100*t.st.TargetErr, target, t.st.Epoch)
	}
	t.st.TargetErr = 0
	if t.st.Epoch >= t.cfg.Train.Epochs {
		return false, fmt.Errorf("resume: %s already finished its %d epochs; to train longer, raise them: --set train.epochs=N", t.dir.Path(), t.cfg.Train.Epochs)
	}
	if err := t.dir.TruncateMetrics(t.st.MetricsBytes); err != nil {
		return false, err
	}
	t.res.Checkpoint = ck.Path
	fmt.Fprintf(t.opt.Out, "resuming %s from %s (epoch %d, batch %d, step %d)\n", t.dir.Path(), filepath.Base(ck.Path), t.st.Epoch+1, t.st.Batch, t.st.Step)
	return true, nil
}

// openLoaders starts the shuffled training loader and the evaluation loader.
func (t *trainer) openLoaders(data *Data) error {
	opt := dataset.LoaderOptions{Seed: t.cfg.Seed, Workers: t.cfg.Dataset.Workers, Strict: t.cfg.Dataset.Strict}
	if s, ok := t.opt.Device.(backend.HostStager); ok {
		opt.Staging = s.PinnedFloat32s
	}
	trainOpt := opt
	trainOpt.BatchSize, trainOpt.Shuffle, trainOpt.DropLast = t.cfg.Train.BatchSize, true, true
	if t.par != nil {
		trainOpt.Rank, trainOpt.World = t.par.rank(), t.par.world()
		opt.Rank, opt.World, opt.Deal = t.par.rank(), t.par.world(), true
	}
	train, err := dataset.NewPipelineLoader(data.Train, trainOpt)
	if err != nil {
		return err
	}
	t.train = train
	opt.BatchSize = t.cfg.Eval.BatchSize
	test, err := dataset.NewPipelineLoader(data.Eval, opt)
	if err != nil {
		return err
	}
	t.test = test
	return nil
}

// close stops the loaders, then frees the net.
func (t *trainer) close() {
	if t.test != nil {
		t.test.Close()
	}
	if t.train != nil {
		t.train.Close()
	}
	if t.check != nil {
		t.check.free()
	}
	t.buckets.close()
	if t.acc.Valid() {
		t.opt.Device.Free(t.acc)
	}
	if t.net != nil {
		t.net.Free()
	}
	t.lock.Unlock() // the only error is from closing the lock file; the OS drops the lock regardless
}

// run trains the remaining epochs.
func (t *trainer) run() error {
	for t.st.Epoch < t.cfg.Train.Epochs && !t.res.ReachedTarget {
		if err := t.runEpoch(); err != nil {
			return err
		}
		if err := t.finishEpoch(); err != nil {
			return err
		}
	}
	return nil
}

// runEpoch trains on the rest of the current epoch's batches. A stop request ends it after the step in
// progress, with a checkpoint.
func (t *trainer) runEpoch() error {
	if err := t.train.Start(t.st.Epoch, t.st.Batch); err != nil {
		return err
	}
	t.prog.startEpoch(t.st.Epoch, t.cfg.Train.Epochs, t.batches, t.st.Batch)
	t.lr = 0
	for {
		t0 := time.Now()
		if t.opt.beforeBatch != nil {
			t.opt.beforeBatch()
		}
		b, err := t.train.Next()
		if err != nil || b == nil {
			return err
		}
		t.waited = time.Since(t0)
		stepped, err := t.step(b, t0)
		if err != nil {
			return err
		}
		if stepped && t.stopping() && t.st.Batch < t.batches {
			return t.interrupt()
		}
	}
}

// step trains on one batch (forward, backward, SGD update) and moves the position past it; a batch whose
// every image was unreadable only moves the position. A NaN or an infinity in the loss, the BN statistics
// or a gradient stops the run, or, under train.on_nonfinite: skip, leaves the net as it was (the step still
// counts). It reports whether
// a step was taken. Timing counts from t0, before the batch was waited for.
func (t *trainer) step(b *dataset.Batch, t0 time.Time) (bool, error) {
	index, bad := b.Index, int64(len(b.Skipped))
	t.lr = t.sched.LR(float64(t.st.Epoch)+float64(index)/float64(t.batches), t.st.WarmStart)
	t.prog.skipped(b.Skipped)
	if b.N == 0 && t.par == nil {
		t.train.Release(b)
		t.st.Batch = index + 1
		t.st.EpochBad += bad
		return false, nil
	}
	if err := t.check.save(); err != nil {
		return false, err
	}
	t.net.SetDropoutKey(t.cfg.Seed, t.st.Step)
	r, err := t.rankStep(b)
	t.train.Release(b)
	if err == nil && t.opt.afterBackward != nil {
		err = t.opt.afterBackward(t.net, &t.st)
	}
	if err != nil {
		return false, fmt.Errorf("train: epoch %d step %d: %w", t.st.Epoch+1, t.st.Step+1, err)
	}
	what, inGradient, err := t.check.problem(r)
	if err == nil && t.par != nil {
		if r, what, inGradient, bad, err = t.shareStep(r, what, inGradient, bad); err == nil && r.N == 0 {
			// Every image of the global batch was unreadable: only the position moves.
			t.st.Batch = index + 1
			t.st.EpochBad += bad
			return false, nil
		}
	}
	switch {
	case err != nil:
	case what != "" && inGradient && t.scaler.cfg.Dynamic:
		err = t.overflowStep(r, what)
	case what != "":
		err = t.nonFiniteStep(what)
	default:
		err = t.update(r)
	}
	if err != nil {
		return false, err
	}
	t.st.Step++
	t.st.Batch = index + 1
	if t.ema != nil && t.ema.due(index) { // a skipped update folds in the unchanged weights, as torchvision's does
		// torchvision's reference restarts the average after each update of the warm-up epochs.
		warmup := float64(t.st.Epoch) < t.cfg.Train.Schedule.WarmupEpochs
		if err := t.ema.update(t.net, &t.st, warmup); err != nil {
			return false, err
		}
	}
	t.st.EpochBad += bad
	t.st.EpochSeconds += time.Since(t0).Seconds()
	t.st.EpochDataSeconds += t.waited.Seconds()
	t.st.EpochCopySeconds += t.net.UploadTime().Seconds()
	t.endWarmStart()
	t.prog.step(t.st, t.lr)
	if !t.recorded {
		if err := t.record(); err != nil {
			return true, err
		}
	}
	if t.opt.afterStep != nil {
		return true, t.opt.afterStep(&t.st)
	}
	return true, nil
}

// rankStep is trainStep on this process's batch; in a job of several ranks, the gradients are then
// summed over the ranks (a rank whose share of the batch was all unreadable adds zeros).
func (t *trainer) rankStep(b *dataset.Batch) (model.Result, error) {
	var r model.Result
	var err error
	if b.N > 0 {
		r, err = t.trainStep(b.X[:b.N*t.sample], b.Labels[:b.N])
	} else {
		err = t.opt.Device.Zero(t.net.GradientStore())
	}
	if err != nil || t.par == nil {
		return r, err
	}
	if t.buckets != nil {
		err = t.buckets.finish()
	} else {
		err = t.par.allReduce(t.net.GradientStore())
	}
	if err != nil {
		return r, fmt.Errorf("summing the gradients over the ranks: %w", err)
	}
	return r, nil
}

// shareStep adds up the ranks' results of a step, their unreadable images and what their checks found,
// so that every rank takes the same decision; the gradients every rank checked were already the sum.
func (t *trainer) shareStep(r model.Result, what string, inGradient bool, bad int64) (model.Result, string, bool, int64, error) {
	mine := stepShare{result: r, bad: bad, problem: what, stop: t.par.rank() == 0 && stopRequested(t.opt.Stop)}
	switch {
	case what != "" && inGradient:
		mine.kind = stepGradient
	case what != "":
		mine.kind = stepLossOrStats
	}
	sum, err := t.par.shareStep(mine)
	if err != nil {
		return r, "", false, 0, fmt.Errorf("train: epoch %d step %d: %w", t.st.Epoch+1, t.st.Step+1, err)
	}
	return sum.result, sum.problem, sum.kind == stepGradient, sum.bad, nil
}

// world is the number of ranks training together.
func (t *trainer) world() int {
	if t.par == nil {
		return 1
	}
	return t.par.world()
}

// trainStep runs the net's forward and backward on a batch: against its labels, or with label smoothing,
// mixup or CutMix on, against the soft targets of the step's draw (the images mixed in place first). With
// train.accumulate_steps k the batch runs as k micro-batches, each loss weighted 1/k and the gradients
// added up, so the update sees the batch's gradient.
func (t *trainer) trainStep(x []float32, labels []int32) (model.Result, error) {
	scale := t.scaler.scale(&t.st)
	var targets []float32
	c, h, w := t.net.InputShape()
	if t.mix != nil {
		targets = t.mix.apply(t.mix.draw(t.cfg.Seed, t.st.Step, h, w), x, labels, c, h, w)
	}
	k, n := t.cfg.Train.AccumulateSteps, len(labels)
	if k <= 1 {
		return t.microStep(x, labels, targets, scale)
	}
	var total model.Result
	first := true
	grads := t.net.GradientStore()
	for i := range k {
		lo, hi := i*n/k, (i+1)*n/k // a batch shortened by unreadable images splits as evenly as it can
		if lo == hi {
			continue
		}
		var tg []float32
		if targets != nil {
			tg = targets[lo*t.net.Spec.NumClasses : hi*t.net.Spec.NumClasses]
		}
		r, err := t.microStep(x[lo*t.sample:hi*t.sample], labels[lo:hi], tg, scale/float32(k))
		if err != nil {
			return total, err
		}
		total.N, total.LossSum, total.Top1, total.Top5 = total.N+r.N, total.LossSum+r.LossSum, total.Top1+r.Top1, total.Top5+r.Top5
		total.NonFinite += r.NonFinite
		// The sum so far lives in t.acc; the last micro-batch adds it into the net's own gradients, which
		// the update reads.
		p := backend.ChannelCopyParams{Channels: grads.Shape[1]}
		switch last := hi == n; {
		case first && last: // one micro-batch after all: its gradients are the batch's
		case last:
			p.Accumulate = true
			err = t.opt.Device.CopyChannels(p, t.acc, grads)
		default:
			p.Accumulate = !first
			err = t.opt.Device.CopyChannels(p, grads, t.acc)
		}
		if err != nil {
			return total, err
		}
		first = false
	}
	return total, nil
}

// microStep is one forward and backward pass, against labels or soft targets.
func (t *trainer) microStep(x []float32, labels []int32, targets []float32, scale float32) (model.Result, error) {
	if targets == nil {
		return t.net.TrainStepScaled(x, labels, scale)
	}
	return t.net.TrainStepSoft(x, labels, targets, scale)
}

// update applies the SGD step of a batch whose loss, BN statistics and gradients are finite, and adds it
// to the epoch's sums.
func (t *trainer) update(r model.Result) error {
	// The gradients are the sum over the ranks: their mean takes a factor 1/world, exact for a power of two.
	p := backend.SGDParams{LR: float32(t.lr), Momentum: float32(t.cfg.Train.Momentum), Nesterov: t.cfg.Train.Nesterov,
		GradScale: float32(float64(t.scaler.unscale(&t.st)) / float64(t.world()))}
	if err := t.opt.Device.SGDStep(p, t.slots); err != nil {
		return err
	}
	t.scaler.after(&t.st, false)
	t.st.NonFiniteInARow = 0
	t.st.addResult(r)
	return nil
}

// nonFiniteStep handles a step whose loss, BN statistics or gradients are not finite (what says which): it stops the run with
// ErrDiverged, or under train.on_nonfinite: skip, undoes the step's forward pass and counts it, until
// train.max_nonfinite_steps of them come in a row.
func (t *trainer) nonFiniteStep(what string) error {
	epoch, step := t.st.Epoch+1, t.st.Step+1
	if t.cfg.Train.OnNonFinite != config.OnNonFiniteSkip {
		return t.diverged(epoch, step, fmt.Errorf("%s: %w", what, ErrDiverged))
	}
	t.st.NonFiniteInARow++
	if n, limit := t.st.NonFiniteInARow, t.cfg.Train.MaxNonFiniteSteps; n >= limit {
		return t.diverged(epoch, step, fmt.Errorf("%s; %d steps in a row were not finite (train.max_nonfinite_steps %d): %w", what, n, limit, ErrDiverged))
	}
	if err := t.check.restore(); err != nil {
		return err
	}
	t.st.EpochNonFinite++
	t.prog.skippedUpdate(epoch, step, t.lr, what, t.st.NonFiniteInARow, t.cfg.Train.MaxNonFiniteSteps)
	return nil
}

// endWarmStart applies the ResNet-110 recipe: the small warm-start rate holds until the training error of
// the epoch (over at least ten batches) is below the threshold.
func (t *trainer) endWarmStart() {
	trainErr := 1 - float64(t.st.EpochTop1)/float64(t.st.EpochN)
	if t.st.WarmStart && t.st.Batch >= 10 && trainErr < t.cfg.Train.Schedule.WarmStartUntilErr {
		t.st.WarmStart = false
	}
}

// finishEpoch evaluates when due, moves the position to the start of the next epoch, and checkpoints
// there when due or when a stop was requested (which then ends training unless this was the last epoch).
func (t *trainer) finishEpoch() error {
	t.prog.endEpoch()
	done := t.st.Epoch + 1
	reached := false
	if t.due(done, t.cfg.Eval.Every) {
		if err := t.evaluate(); err != nil {
			return err
		}
		if target := t.cfg.Train.TargetErr; target > 0 && t.res.Last.TestErr <= target {
			reached = true
			t.st.TargetErr = max(t.res.Last.TestErr, math.SmallestNonzeroFloat64)
		}
	}
	t.warnDataBound()
	t.st = t.st.nextEpoch()
	t.res.Epochs = done
	if !reached && !t.due(done, t.cfg.Checkpoint.Every) && !t.stopping() {
		return nil
	}
	path, err := t.checkpoint()
	if err != nil {
		return err
	}
	if reached {
		t.res.ReachedTarget = true
		t.prog.reachedTarget(done, t.res.Last, t.cfg.Train.TargetErr, path)
		return nil
	}
	if t.stopping() && done < t.cfg.Train.Epochs {
		t.prog.interrupted(path)
		return ErrInterrupted
	}
	return nil
}

// dataBoundShare is the share of the training time spent waiting for data above which a run says, once,
// that the input pipeline holds it back.
const dataBoundShare = 0.10

// warnDataBound tells, once per process, that the epoch just trained waited for its batches more than
// dataBoundShare of its time, with what to change. Epochs of a few steps are left alone: their time is
// mostly the loader's start.
func (t *trainer) warnDataBound() {
	st := t.st
	if t.warnedData || st.Batch < 20 || !(st.EpochDataSeconds > dataBoundShare*st.EpochSeconds) {
		return
	}
	t.warnedData = true
	t.prog.dataBound(st.Epoch+1, st.EpochDataSeconds/st.EpochSeconds, t.cfg.Dataset, runtime.NumCPU())
}

// due reports whether something done every `every` epochs falls after epoch done (counted from 1); the
// last epoch always has it.
func (t *trainer) due(done, every int) bool {
	return done%every == 0 || done == t.cfg.Train.Epochs
}

// evaluate scores the net on the evaluation split and appends the epoch's metrics line.
func (t *trainer) evaluate() error {
	if err := t.syncBuffers(); err != nil {
		return err
	}
	sc, err := t.score(t.prog.skipped)
	if err != nil {
		return err
	}
	t.clock()
	st := t.st
	m := Metrics{
		Epoch: st.Epoch + 1, Step: st.Step, LR: t.lr,
		TrainLoss: jsonnum.Float(st.EpochLoss / float64(st.EpochN)), TrainErr: jsonnum.Float(1 - float64(st.EpochTop1)/float64(st.EpochN)),
		TestLoss: sc.Loss, TestErr: sc.Top1Err, TestTop5Err: sc.Top5Err, TestNonFinite: sc.NonFinite,
		BadImages: st.EpochBad + int64(sc.Skipped), NonFiniteSteps: st.EpochNonFinite,
		EpochSeconds: st.EpochSeconds, WallSeconds: st.WallSeconds,
		DataSeconds: st.EpochDataSeconds, CopySeconds: st.EpochCopySeconds,
		ComputeSeconds: max(0, st.EpochSeconds-st.EpochDataSeconds-st.EpochCopySeconds),
	}
	if t.scaler.cfg.Enabled() {
		scale, skipped := float64(st.LossScale), st.EpochOverflow
		m.LossScale, m.SkippedSteps = &scale, &skipped
	}
	if st.EpochSeconds > 0 {
		m.ImagesPerSec = float64(st.EpochN) / st.EpochSeconds
	}
	if t.ema != nil && t.ema.valid {
		esc, err := t.ema.evaluate(t.net, func() (eval.Scores, error) { return t.score(nil) })
		if err != nil {
			return fmt.Errorf("evaluating the weights' average: %w", err)
		}
		m.TestLossEMA, m.TestErrEMA, m.TestTop5ErrEMA = &esc.Loss, &esc.Top1Err, &esc.Top5Err
	}
	t.res.Last = m
	if !t.isRank0() {
		return nil
	}
	if err := t.dir.AppendMetrics(m); err != nil {
		return err
	}
	t.prog.metrics(m)
	return t.record() // the evaluation's batch sizes may have made the device choose more algorithms
}

// record writes reproducibility.json, unless this process wrote it already and the device has chosen no
// convolution algorithm since.
func (t *trainer) record() error {
	if !t.isRank0() {
		return nil
	}
	rec := NewReproducibility(t.opt.Version, t.st.Step, t.opt.Device, t.net)
	if t.par != nil {
		// The BN running statistics are those of rank 0's share of each batch.
		rec.Environment["world_size"] = strconv.Itoa(t.world())
	}
	if t.recorded && len(rec.Convolutions) == t.recordedConvs {
		return nil
	}
	if err := t.dir.WriteReproducibility(rec); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.recorded, t.recordedConvs = true, len(rec.Convolutions)
	return nil
}

// checkpoint saves the net at the current position, recording how much of metrics.jsonl belongs to it.
// A net holding a NaN or an infinity (weights that overflowed, BN statistics of a diverged forward pass)
// ends the run instead, with the checkpoints before it kept.
func (t *trainer) checkpoint() (string, error) {
	if err := t.syncBuffers(); err != nil {
		return "", err
	}
	if !t.isRank0() {
		t.clock()
		return "", nil
	}
	size, err := t.dir.MetricsSize()
	if err != nil {
		return "", err
	}
	t.st.MetricsBytes = size
	t.clock()
	var extra []safetensors.Tensor
	if t.ema != nil {
		extra = t.ema.tensors(t.net)
	}
	path, err := t.dir.SaveCheckpoint(t.net, t.st, t.opt.ConfigYAML, t.cfg.Checkpoint.Keep, extra...)
	if errors.Is(err, ErrDiverged) {
		epoch := t.st.Epoch // the position is the start of the next epoch, or inside one
		if t.st.Batch > 0 {
			epoch++
		}
		return "", t.diverged(epoch, t.st.Step, err)
	}
	if err != nil {
		return "", err
	}
	t.res.Checkpoint = path
	return path, nil
}

// interrupt ends training in the middle of an epoch, with a checkpoint.
func (t *trainer) interrupt() error {
	path, err := t.checkpoint()
	if err != nil {
		return err
	}
	t.prog.interrupted(path)
	return ErrInterrupted
}

func stopRequested(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}
