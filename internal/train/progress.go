package train

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"resnet/internal/config"
	"resnet/internal/dataset"
)

// progress reports training: a bar per epoch on a terminal, plain log lines otherwise (CI, pipes).
type progress struct {
	w        io.Writer
	terminal bool
	every    int
	bar      *progressbar.ProgressBar
	epoch    int
	epochs   int
	logged   map[string]bool // bad image paths already reported
}

func newProgress(w io.Writer, terminal bool, every int) *progress {
	return &progress{w: w, terminal: terminal, every: every}
}

func (p *progress) startEpoch(epoch, epochs, batches, start int) {
	p.epoch, p.epochs = epoch, epochs
	if !p.terminal {
		return
	}
	p.bar = progressbar.NewOptions(batches,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(fmt.Sprintf("epoch %d/%d", epoch+1, epochs)),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	if start > 0 {
		_ = p.bar.Set(start)
	}
}

func (p *progress) step(st State, lr float64) {
	loss := st.EpochLoss / float64(st.EpochN)
	errPct := 100 * (1 - float64(st.EpochTop1)/float64(st.EpochN))
	ips := float64(st.EpochN) / st.EpochSeconds
	if p.terminal {
		p.bar.Describe(fmt.Sprintf("epoch %d/%d  loss %.4f  err %5.2f%%  lr %.4g  %.0f img/s", p.epoch+1, p.epochs, loss, errPct, lr, ips))
		_ = p.bar.Add(1)
		return
	}
	if p.every > 0 && st.Step%int64(p.every) == 0 {
		fmt.Fprintf(p.w, "epoch %d/%d step %d  loss %.4f  err %5.2f%%  lr %.4g  %.0f img/s\n", p.epoch+1, p.epochs, st.Step, loss, errPct, lr, ips)
	}
}

// skippedUpdate reports a step whose update was skipped for a value that is not finite (what).
func (p *progress) skippedUpdate(epoch int, step int64, lr float64, what string, inARow, limit int) {
	if p.terminal && p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintf(p.w, "epoch %d step %d (lr %.4g): %s; update skipped (%d in a row; the run stops at %d)\n", epoch, step, lr, what, inARow, limit)
}

func (p *progress) endEpoch() {
	if p.terminal && p.bar != nil {
		_ = p.bar.Finish()
	}
}

func (p *progress) metrics(m Metrics) {
	skipped := ""
	if m.SkippedSteps != nil && *m.SkippedSteps > 0 {
		skipped = fmt.Sprintf("  %d steps skipped for overflow (loss scale now %g)", *m.SkippedSteps, *m.LossScale)
	}
	ema := ""
	if m.TestErrEMA != nil {
		ema = fmt.Sprintf(" (average: err %5.2f%% top-5 %5.2f%%)", 100**m.TestErrEMA, 100**m.TestTop5ErrEMA)
	}
	fmt.Fprintf(p.w, "epoch %d/%d  step %d  train loss %.4f err %5.2f%%  test loss %.4f err %5.2f%% top-5 %5.2f%%%s  %.0f img/s%s%s\n",
		m.Epoch, p.epochs, m.Step, m.TrainLoss, 100*m.TrainErr, m.TestLoss, 100*m.TestErr, 100*m.TestTop5Err, ema, m.ImagesPerSec,
		StepTimeSplit(m.EpochSeconds, m.DataSeconds, m.CopySeconds), skipped)
}

// StepTimeSplit writes where training time went, as the epoch lines and `resnet bench` print it:
// "  (data 12%, copy 3%, compute 85%)", from the total seconds and the parts waiting for data and copying
// to the device; empty when no time was measured.
func StepTimeSplit(total, data, cp float64) string {
	if !(total > 0) {
		return ""
	}
	pct := func(v float64) float64 { return 100 * v / total }
	return fmt.Sprintf("  (data %.0f%%, copy %.0f%%, compute %.0f%%)", pct(data), pct(cp), pct(max(0, total-data-cp)))
}

// dataBound says that epoch waited for its batches a share of its training time, and what to change.
func (p *progress) dataBound(epoch int, share float64, d config.DatasetConfig, cpus int) {
	if p.terminal && p.bar != nil {
		_ = p.bar.Clear()
	}
	workers := fmt.Sprintf("now %d", d.Workers)
	if d.Workers == 0 {
		workers = "now one per CPU"
	}
	fmt.Fprintf(p.w, "epoch %d waited for data %.0f%% of its training time: the input pipeline holds the net back. "+
		"Raise dataset.workers (%s; this machine has %d CPUs), keep the images on a local disk, or store them "+
		"pre-resized (decoding full-size photos dominates); `resnet bench data` measures the pipeline alone.\n",
		epoch, 100*share, workers, cpus)
}

func (p *progress) interrupted(path string) {
	if p.terminal && p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, "interrupted: checkpoint written to %s\n", path)
}

// reachedTarget reports the end of a run whose evaluation after epoch met train.target_err.
func (p *progress) reachedTarget(epoch int, m Metrics, target float64, path string) {
	fmt.Fprintf(p.w, "reached train.target_err %g: test error %.2f%% after epoch %d, %s into the run; checkpoint written to %s\n",
		target, 100*m.TestErr, epoch, time.Duration(m.WallSeconds*float64(time.Second)).Round(time.Second), path)
}

// skipped reports each unreadable image once per run.
func (p *progress) skipped(bad []*dataset.BadExampleError) {
	for _, b := range bad {
		key := b.Error()
		if p.logged[key] {
			continue
		}
		if p.logged == nil {
			p.logged = map[string]bool{}
		}
		p.logged[key] = true
		if p.terminal && p.bar != nil {
			_ = p.bar.Clear()
		}
		fmt.Fprintf(p.w, "skipping %v\n", b)
	}
}
