package eval

import (
	"fmt"

	"resnet/internal/dataset"
	"resnet/internal/model"
)

// RecomputeBN re-estimates every BN layer's running mean and variance as the plain average of the batch
// statistics over the first batches training batches (shuffled by seed, in the training pipeline's
// augmentation), replacing the moving averages kept during training. He et al. evaluated with statistics
// recomputed over the training set this way. The net must hold batches of batchSize.
func RecomputeBN(net *model.Net, train dataset.Pipeline, batches, batchSize int, seed int64, workers int) error {
	if batches < 1 {
		return fmt.Errorf("eval: recomputing BN statistics needs at least one batch (got %d)", batches)
	}
	if batchSize > net.Capacity() {
		return fmt.Errorf("eval: BN recomputation batches of %d exceed the net's capacity %d", batchSize, net.Capacity())
	}
	l, err := dataset.NewPipelineLoader(train, dataset.LoaderOptions{BatchSize: batchSize, Shuffle: true, DropLast: true, Seed: seed, Workers: workers})
	if err != nil {
		return err
	}
	defer l.Close()
	if have := l.BatchesPerEpoch(); batches > have {
		return fmt.Errorf("eval: %d batches of %d requested for BN recomputation, the training set has %d", batches, batchSize, have)
	}
	old := net.BNMomentum()
	defer net.SetBNMomentum(old) //nolint:errcheck // restoring a value it accepted before
	c, h, w := net.InputShape()
	k := 0
	_, err = forEachBatch(l, nil, func(b *dataset.Batch) error {
		k++
		if err := net.SetBNMomentum(1 / float64(k)); err != nil {
			return err
		}
		if err := net.Forward(b.X[:b.N*c*h*w], b.N, true); err != nil {
			return err
		}
		if k == batches {
			return errStop
		}
		return nil
	})
	return err
}
