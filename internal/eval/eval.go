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
	c, h, w := net.InputShape()
	sample := c * h * w
	var s Scores
	var lossSum float64
	var top1, top5 int
	skipped, err := forEachBatch(l, onSkip, func(b *dataset.Batch) error {
		r, err := net.Evaluate(b.X[:b.N*sample], b.Labels[:b.N])
		if err != nil {
			return err
		}
		s.N += r.N
		lossSum += r.LossSum
		top1 += r.Top1
		top5 += r.Top5
		s.NonFinite += r.NonFinite
		return nil
	})
	if err != nil {
		return Scores{}, err
	}
	if s.N == 0 {
		return Scores{}, fmt.Errorf("eval: the data set is empty")
	}
	s.Skipped = skipped
	s.Loss = jsonnum.Float(lossSum / float64(s.N))
	s.Top1Err = 1 - float64(top1)/float64(s.N)
	s.Top5Err = 1 - float64(top5)/float64(s.N)
	return s, nil
}
