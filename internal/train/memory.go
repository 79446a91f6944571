// This file checks, before the net and the loaders are made, that a training run fits the memory the
// process (and the GPU) may use, and names the setting to lower when it does not.

package train

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/model"
	"resnet/internal/sysmem"
)

// MemoryBudget is what a network on dev may use: host memory as host reports it (sysmem.HostLimit when
// nil), and the device's free memory when dev has memory of its own.
func MemoryBudget(dev backend.Device, host func() sysmem.Limit) (sysmem.Budget, error) {
	if host == nil {
		host = sysmem.HostLimit
	}
	b := sysmem.Budget{Host: host()}
	if r, ok := dev.(backend.MemoryReporter); ok {
		free, err := r.FreeMemory()
		if err != nil {
			return b, err
		}
		b.Device = &sysmem.Limit{Bytes: free, Source: "free GPU memory"}
	}
	return b, nil
}

// WorkspaceImages is how many images' convolution scratch a device holds at once: one per CPU worker when
// the network runs in host memory, one on a GPU.
func WorkspaceImages(b sysmem.Budget) int {
	if b.Device == nil {
		return runtime.GOMAXPROCS(0)
	}
	return 1
}

// RunMemory is what a training run's memory depends on: its config, its net, and the sizes of its data.
type RunMemory struct {
	cfg  config.Config
	spec model.Spec
	// trainN and evalN are the examples of the two splits (0 before the data is opened: their loaders'
	// order arrays are then left out).
	trainN, evalN int
	// ranks is the world size of a data-parallel job, whose rank holds cfg.Train.BatchSize images of
	// each step, its share of a global batch ranks times as large (0 or 1: a single process).
	ranks int
}

// PerRank describes one rank of a job of world ranks running r: it holds its share of every global
// batch (train.batch_size / world), and its errors speak of the global batch.
func (r RunMemory) PerRank(world int) RunMemory {
	if world > 1 {
		r.cfg.Train.BatchSize /= world
		r.ranks = world
	}
	return r
}

// NewRunMemory describes the run of cfg with net spec on data (nil when the data is not opened).
func NewRunMemory(cfg config.Config, spec model.Spec, data *Data) RunMemory {
	r := RunMemory{cfg: cfg, spec: spec}
	if data != nil {
		r.trainN, r.evalN = data.Train.Len(), data.Eval.Len()
	}
	return r
}

// Need estimates the run's memory: the net at the larger of the two batch sizes (training and evaluation
// share it) with its workspace for images images at once, and the training and evaluation loaders.
func (r RunMemory) Need(images int) (sysmem.Need, error) {
	return r.needAt(r.cfg.Train.BatchSize, r.cfg.Eval.BatchSize, r.spec.InputSize, r.cfg.Dataset.ResizeSize, images)
}

// needAt is Need with other batch sizes, image size and evaluation resize.
func (r RunMemory) needAt(trainBatch, evalBatch, size, resize, images int) (sysmem.Need, error) {
	spec := r.spec
	spec.InputSize = size
	// An unknown precision fails config validation first; f32 is the largest.
	act, _ := backend.ParsePrecision(r.cfg.CUDA.Precision)
	// The net holds a micro-batch of training (train.accumulate_steps) or an evaluation batch.
	m, err := model.EstimateMemory(spec, max(trainBatch/max(r.cfg.Train.AccumulateSteps, 1), evalBatch), act)
	if err != nil {
		return nil, err
	}
	d := r.cfg.Dataset
	trainShape := dataset.PipelineSize{Examples: r.trainN, C: spec.InChannels, H: size, W: size}
	evalShape := trainShape
	evalShape.Examples = r.evalN
	if d.Name == "imagenet" {
		trainShape.WorkerBytes = dataset.FolderWorkerBytes(dataset.FolderPipelineOptions{Transform: trainTransform(d), Size: size, Augment: augmentation(d)})
		evalShape.WorkerBytes = dataset.FolderWorkerBytes(dataset.FolderPipelineOptions{Transform: dataset.TransformCenter, Size: size, Resize: resize})
	} else {
		trainShape.WorkerBytes = dataset.SourceWorkerBytes(spec.InChannels, size, size)
		evalShape.WorkerBytes = trainShape.WorkerBytes
	}
	loaders := sysmem.Add(
		dataset.LoaderMemory(trainShape, dataset.LoaderOptions{BatchSize: trainBatch, Workers: d.Workers}),
		dataset.LoaderMemory(evalShape, dataset.LoaderOptions{BatchSize: evalBatch, Workers: d.Workers}))
	need := m.Need(images)
	if r.cfg.Train.AccumulateSteps > 1 {
		// One more copy of the gradients (values, gradients and momentum make up Params).
		need = append(need, sysmem.Part{Name: "accumulated gradients", Bytes: m.Params / 3})
	}
	return append(need, sysmem.Part{Name: "data loaders", Bytes: loaders, Host: true}), nil
}

// accumulationThatFits is the fewest micro-batches (a divisor of train.batch_size above the configured
// train.accumulate_steps) that make the run fit the budget, or 0 when none does.
func (r RunMemory) accumulationThatFits(b sysmem.Budget, images int) int {
	tb := r.cfg.Train.BatchSize
	var divisors []int
	for i := 1; i*i <= tb; i++ {
		if tb%i == 0 {
			divisors = append(divisors, i, tb/i)
		}
	}
	slices.Sort(divisors)
	for _, k := range divisors {
		if k <= max(r.cfg.Train.AccumulateSteps, 1) {
			continue
		}
		q := r
		q.cfg.Train.AccumulateSteps = k
		n, err := q.needAt(tb, r.cfg.Eval.BatchSize, r.spec.InputSize, r.cfg.Dataset.ResizeSize, images)
		if err == nil && b.Fits(n) {
			return k
		}
	}
	return 0
}

// What says what the memory is for: "a training step of resnet18 at 224x224".
func (r RunMemory) What() string {
	return fmt.Sprintf("a training step of %s at %dx%d", r.spec.Name, r.spec.InputSize, r.spec.InputSize)
}

// Check refuses a run whose estimate does not fit the budget, with a config error naming the setting
// that drives it (a batch size, else dataset.image_size, else model.arch) and the largest value that fits.
func (r RunMemory) Check(b sysmem.Budget) error {
	images := WorkspaceImages(b)
	tb, eb, size, resize := r.cfg.Train.BatchSize, r.cfg.Eval.BatchSize, r.spec.InputSize, r.cfg.Dataset.ResizeSize
	need, err := r.needAt(tb, eb, size, resize, images)
	if err != nil {
		return err
	}
	e := b.Refuse(need)
	if e == nil {
		return nil
	}
	e.What = r.What()
	// A smaller image size keeps the evaluation resize in proportion.
	fits := func(tb, eb, s int) bool {
		n, err := r.needAt(tb, eb, s, max(s, resize*s/size), images)
		return err == nil && b.Fits(n)
	}
	switch {
	case fits(1, 1, size):
		key, value := "train.batch_size", tb
		if eb > tb {
			key, value = "eval.batch_size", eb
		}
		top := sysmem.LargestFitting(value, func(n int) bool { return fits(min(tb, n), min(eb, n), size) })
		e.Setting, e.Value = key, strconv.Itoa(value)
		e.Advice = r.batchAdvice(key, top)
		if k := r.accumulationThatFits(b, images); key == "train.batch_size" && k > 0 {
			share := "it"
			if r.ranks > 1 {
				share = "each rank's share"
			}
			e.Advice += fmt.Sprintf(", or keep the batch and run %s as %d micro-batches (train.accumulate_steps: %d)", share, k, k)
		}
		if key == "train.batch_size" && r.ranks > 1 {
			e.Value = fmt.Sprintf("%d (%d per rank over %d ranks)", tb*r.ranks, tb, r.ranks)
		}
	case r.cfg.Dataset.Name == "imagenet":
		e.Setting, e.Value = "dataset.image_size", strconv.Itoa(size)
		top := sysmem.LargestFitting(size, func(s int) bool { return fits(tb, eb, s) })
		switch {
		case top > 0 && resize > top:
			e.Advice = fmt.Sprintf("lower dataset.image_size to at most %s and dataset.resize_size in proportion", sysmem.Approx(top))
		case top > 0:
			e.Advice = fmt.Sprintf("lower dataset.image_size to at most %s", sysmem.Approx(top))
		default:
			e.Advice = "lower dataset.image_size and train.batch_size"
		}
	default:
		e.Setting, e.Value = "model.arch", r.spec.Name
		e.Advice = "choose a smaller model"
	}
	return &config.FieldError{Key: e.Setting, Reason: e.Reason()}
}

// batchAdvice says how far to lower the batch sizes when top images fit in a rank's net: train.batch_size,
// the global batch, to top per rank, a multiple of the ranks; eval.batch_size, which each rank takes
// whole, to top; key is the one that drives the need, and the other is named too when it is over top.
func (r RunMemory) batchAdvice(key string, top int) string {
	trainTop, evalTop := sysmem.ApproxMultiple(top*max(r.ranks, 1), max(r.ranks, 1)), sysmem.Approx(top)
	tb, eb := r.cfg.Train.BatchSize, r.cfg.Eval.BatchSize
	switch {
	case min(tb, eb) > top && trainTop == evalTop:
		return "lower train.batch_size and eval.batch_size to at most " + trainTop
	case min(tb, eb) > top:
		return fmt.Sprintf("lower train.batch_size to at most %s and eval.batch_size to at most %s", trainTop, evalTop)
	case key == "train.batch_size":
		return "lower train.batch_size to at most " + trainTop
	}
	return "lower eval.batch_size to at most " + evalTop
}
