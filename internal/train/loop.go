// Package train runs training: the loop over epochs and steps, the SGD update and learning-rate schedule,
// evaluation between epochs, metrics.jsonl, checkpoints and exact resume.
package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/model"
)

// ErrInterrupted is returned when a stop request ended training early; a checkpoint was written first.
var ErrInterrupted = errors.New("training interrupted")

// Metrics is one line of metrics.jsonl, written after every evaluation. Errors are fractions in [0, 1].
type Metrics struct {
	Epoch       int     `json:"epoch"` // epochs completed
	Step        int64   `json:"step"`  // optimizer steps taken
	LR          float64 `json:"lr"`    // rate of the epoch's last step
	TrainLoss   float64 `json:"train_loss"`
	TrainErr    float64 `json:"train_err"`
	TestLoss    float64 `json:"test_loss"`
	TestErr     float64 `json:"test_err"`
	TestTop5Err float64 `json:"test_top5_err"`
	// BadImages counts the unreadable images skipped in the epoch's training batches and in the
	// evaluation.
	BadImages int64 `json:"bad_images"`
	// Timing fields: the only ones that differ between identical runs.
	ImagesPerSec float64 `json:"images_per_sec"`
	EpochSeconds float64 `json:"epoch_seconds"`
}

// Options configure a training run.
type Options struct {
	Config config.Config
	// ConfigYAML is the resolved config as written to the run directory and into checkpoints.
	ConfigYAML []byte
	RunDir     string
	// Resume continues the run in RunDir from its newest checkpoint.
	Resume bool
	Device backend.Device
	// Out receives progress: a bar per epoch when Terminal is set, plain log lines otherwise.
	Out      io.Writer
	Terminal bool
	// Stop, when closed, ends training after the current step with a checkpoint.
	Stop <-chan struct{}
	// afterStep is a test hook run after every step; an error from it ends training at once, without a
	// checkpoint, as a kill -9 would.
	afterStep func(st *State) error
}

// Result describes a finished (or interrupted) run.
type Result struct {
	RunDir     string
	Checkpoint string
	Last       Metrics
	Epochs     int
}

// Run trains according to opt.
func Run(opt Options) (Result, error) {
	cfg := opt.Config
	res := Result{RunDir: opt.RunDir}
	if err := prepareRunDir(opt); err != nil {
		return res, err
	}
	data, err := OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		return res, err
	}
	_, ih, _ := data.Train.OutputShape()
	spec, err := SpecFor(cfg.Model, data.Train.NumClasses(), ih)
	if err != nil {
		return res, err
	}
	capacity := max(cfg.Train.BatchSize, cfg.Eval.BatchSize)
	net, err := model.Build(opt.Device, spec, capacity)
	if err != nil {
		return res, err
	}
	defer net.Free()
	if err := net.Init(cfg.Seed); err != nil {
		return res, err
	}

	st := State{WarmStart: cfg.Train.Schedule.WarmStartLR > 0}
	if opt.Resume {
		path, err := FindCheckpoint(opt.RunDir)
		if err != nil {
			return res, err
		}
		ck, err := LoadCheckpoint(path)
		if err != nil {
			return res, err
		}
		if err := ck.Restore(net, true); err != nil {
			return res, err
		}
		st = ck.State
		if st.Epoch >= cfg.Train.Epochs {
			return res, fmt.Errorf("resume: %s already finished its %d epochs; to train longer, raise them: --set train.epochs=N", opt.RunDir, cfg.Train.Epochs)
		}
		if err := NewRunDir(opt.RunDir).TruncateMetrics(st.MetricsBytes); err != nil {
			return res, err
		}
		res.Checkpoint = path
		fmt.Fprintf(opt.Out, "resuming %s from %s (epoch %d, batch %d, step %d)\n", opt.RunDir, filepath.Base(path), st.Epoch+1, st.Batch, st.Step)
	}

	workers := cfg.Dataset.Workers
	var staging func(int) []float32
	if s, ok := opt.Device.(backend.HostStager); ok {
		staging = s.PinnedFloat32s
	}
	trainLoader, err := dataset.NewPipelineLoader(data.Train, dataset.LoaderOptions{
		BatchSize: cfg.Train.BatchSize, Shuffle: true, DropLast: true,
		Seed: cfg.Seed, Workers: workers, Strict: cfg.Dataset.Strict, Staging: staging,
	})
	if err != nil {
		return res, err
	}
	defer trainLoader.Close()
	testLoader, err := dataset.NewPipelineLoader(data.Eval, dataset.LoaderOptions{
		BatchSize: cfg.Eval.BatchSize, Seed: cfg.Seed, Workers: workers, Strict: cfg.Dataset.Strict, Staging: staging,
	})
	if err != nil {
		return res, err
	}
	defer testLoader.Close()

	sched := NewSchedule(cfg.Train)
	slots := net.SGDSlots(float32(cfg.Train.WeightDecay), cfg.Train.NoDecayBNBias)
	batches := trainLoader.BatchesPerEpoch()
	if batches == 0 {
		return res, fmt.Errorf("train: %d training examples make no full batch of %d", data.Train.Len(), cfg.Train.BatchSize)
	}
	c, h, w := net.InputShape()
	sample := c * h * w
	prog := newProgress(opt.Out, opt.Terminal, cfg.Train.LogEvery)

	for ; st.Epoch < cfg.Train.Epochs; st.Epoch++ {
		if err := trainLoader.Start(st.Epoch, st.Batch); err != nil {
			return res, err
		}
		prog.startEpoch(st.Epoch, cfg.Train.Epochs, batches, st.Batch)
		var lr float64
		for {
			t0 := time.Now()
			b, err := trainLoader.Next()
			if err != nil {
				return res, err
			}
			if b == nil {
				break
			}
			index, bad := b.Index, int64(len(b.Skipped))
			lr = sched.LR(float64(st.Epoch)+float64(index)/float64(batches), st.WarmStart)
			prog.skipped(b.Skipped)
			if b.N == 0 { // every image of the batch was unreadable
				trainLoader.Release(b)
				st.Batch = index + 1
				st.EpochBad += bad
				continue
			}
			r, err := net.TrainStep(b.X[:b.N*sample], b.Labels[:b.N])
			trainLoader.Release(b)
			if err != nil {
				return res, fmt.Errorf("train: epoch %d step %d: %w", st.Epoch+1, st.Step+1, err)
			}
			p := backend.SGDParams{LR: float32(lr), Momentum: float32(cfg.Train.Momentum), Nesterov: cfg.Train.Nesterov}
			if err := opt.Device.SGDStep(p, slots); err != nil {
				return res, err
			}
			st.Step++
			st.Batch = index + 1
			st.EpochBad += bad
			st.EpochLoss += r.LossSum
			st.EpochTop1 += int64(r.Top1)
			st.EpochN += int64(r.N)
			st.EpochSeconds += time.Since(t0).Seconds()
			trainErr := 1 - float64(st.EpochTop1)/float64(st.EpochN)
			// The ResNet-110 recipe: the small warm-start rate holds until the training error of the epoch
			// (over at least ten batches) is below the threshold.
			if st.WarmStart && st.Batch >= 10 && trainErr < cfg.Train.Schedule.WarmStartUntilErr {
				st.WarmStart = false
			}
			prog.step(st, lr)
			if opt.afterStep != nil {
				if err := opt.afterStep(&st); err != nil {
					return res, err
				}
			}
			if stopRequested(opt.Stop) && st.Batch < batches {
				path, err := saveRun(opt, net, &st, cfg.Checkpoint.Keep)
				if err != nil {
					return res, err
				}
				prog.interrupted(path)
				res.Checkpoint = path
				return res, ErrInterrupted
			}
		}
		prog.endEpoch()

		last := st.Epoch+1 == cfg.Train.Epochs
		if (st.Epoch+1)%cfg.Eval.Every == 0 || last {
			sc, err := eval.OneCrop(net, testLoader, prog.skipped)
			if err != nil {
				return res, err
			}
			m := Metrics{
				Epoch: st.Epoch + 1, Step: st.Step, LR: lr,
				TrainLoss: st.EpochLoss / float64(st.EpochN), TrainErr: 1 - float64(st.EpochTop1)/float64(st.EpochN),
				TestLoss: sc.Loss, TestErr: sc.Top1Err, TestTop5Err: sc.Top5Err,
				BadImages:    st.EpochBad + int64(sc.Skipped),
				ImagesPerSec: float64(st.EpochN) / st.EpochSeconds, EpochSeconds: st.EpochSeconds,
			}
			if err := NewRunDir(opt.RunDir).AppendMetrics(m); err != nil {
				return res, err
			}
			prog.metrics(m)
			res.Last = m
		}
		st.Batch, st.EpochLoss, st.EpochTop1, st.EpochN, st.EpochSeconds, st.EpochBad = 0, 0, 0, 0, 0, 0
		res.Epochs = st.Epoch + 1
		if (st.Epoch+1)%cfg.Checkpoint.Every == 0 || last || stopRequested(opt.Stop) {
			st.Epoch++ // the checkpoint's position is the start of the next epoch
			path, err := saveRun(opt, net, &st, cfg.Checkpoint.Keep)
			st.Epoch--
			if err != nil {
				return res, err
			}
			res.Checkpoint = path
			if stopRequested(opt.Stop) && !last {
				prog.interrupted(path)
				return res, ErrInterrupted
			}
		}
	}
	return res, nil
}

func stopRequested(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// saveRun checkpoints the run, recording how much of metrics.jsonl belongs to it.
func saveRun(opt Options, net *model.Net, st *State, keep int) (string, error) {
	dir := NewRunDir(opt.RunDir)
	size, err := dir.MetricsSize()
	if err != nil {
		return "", err
	}
	st.MetricsBytes = size
	return dir.SaveCheckpoint(net, *st, opt.ConfigYAML, keep)
}

// prepareRunDir creates the run directory for a new run, refusing to overwrite an existing one, and
// writes the resolved config into it.
func prepareRunDir(opt Options) error {
	dir := NewRunDir(opt.RunDir)
	if opt.Resume {
		if _, err := os.Stat(opt.RunDir); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		// --set may have changed keys (train.epochs, say): the run directory shows what the run now uses.
		return dir.WriteConfig(opt.ConfigYAML)
	}
	if err := dir.CheckNew(); err != nil {
		return fmt.Errorf("%w; continue it with --resume %s, or choose another directory with --out", err, opt.RunDir)
	}
	return dir.Create(opt.ConfigYAML)
}
