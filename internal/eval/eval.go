// Package eval scores networks on a data set: the 1-crop protocol used during training (OneCrop), and
// the paper's protocols (Collect): ten-crop, the multi-scale fully-convolutional test, ensembles of
// models (Average), and BN statistics recomputed over training batches (RecomputeBN).
package eval

import (
	"fmt"

	"resnet/internal/dataset"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
)

// Scores are the results of one evaluation pass.
type Scores struct {
	N int `json:"n"`
	// Loss is NaN or infinite when some image's output was (JSON: null).
	Loss    jsonnum.Float `json:"loss"`
	Top1Err float64       `json:"top1_err"`
	Top5Err float64       `json:"top5_err"`
	// NonFinite counts the images with a NaN or infinite output (a logit, or a probability averaged over
	// views or models): each is wrong at top-1 and top-5.
	NonFinite int `json:"nonfinite_outputs"`
	// Skipped counts unreadable images left out of the scores.
	Skipped int `json:"skipped"`
}

// OneCrop evaluates net on every example of the loader's epoch 0, in inference mode (running BN
// statistics), each image as its pipeline prepares it (for CIFAR-sized data, the whole 32x32 image; for
// ImageNet, the centre crop). onSkip, when not nil, hears of every unreadable image left out.
func OneCrop(net *model.Net, l *dataset.Loader, onSkip func([]*dataset.BadExampleError)) (Scores, error) {
	results, skipped, err := OneCropBatches(net, l, onSkip)
	if err != nil {
		return Scores{}, err
	}
	return Combine(results, skipped)
}

// OneCropBatches is OneCrop's work before the totals: the result of each of the loader's batches, in
// order (zero for a batch whose every image was unreadable), and the count of unreadable images left out.
// A data-parallel job gathers every rank's, puts them in the single-process batch order and combines
// them, so that its scores are those of one process.
func OneCropBatches(net *model.Net, l *dataset.Loader, onSkip func([]*dataset.BadExampleError)) ([]model.Result, int, error) {
	c, h, w := net.InputShape()
	sample := c * h * w
	results := make([]model.Result, l.BatchesPerEpoch())
	skipped, err := forEachBatch(l, onSkip, func(b *dataset.Batch) error {
		var err error
		results[b.Index], err = net.Evaluate(b.X[:b.N*sample], b.Labels[:b.N])
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return results, skipped, nil
}

// Combine adds up batch results in their order into the scores of the whole set, of which skipped
// unreadable images were left out.
func Combine(batches []model.Result, skipped int) (Scores, error) {
	s := Scores{Skipped: skipped}
	var lossSum float64
	var top1, top5 int
	for _, b := range batches {
		s.N += b.N
		lossSum += b.LossSum
		top1 += b.Top1
		top5 += b.Top5
		s.NonFinite += b.NonFinite
	}
	if s.N == 0 {
		return Scores{}, fmt.Errorf("eval: the data set is empty")
	}
	s.Loss = jsonnum.Float(lossSum / float64(s.N))
	s.Top1Err = 1 - float64(top1)/float64(s.N)
	s.Top5Err = 1 - float64(top5)/float64(s.N)
	return s, nil
}
