// This file holds the training augmentations that follow the crop and flip of both pipelines, in the order
// of torchvision's classification presets: an automatic augmentation policy on the 8-bit image, then (after
// normalisation) random erasing.

package dataset

import (
	"fmt"
	"math/rand/v2"

	"resnet/internal/vision"
)

// Augmentation configures the training augmentations after the crop and flip. The zero value adds none.
type Augmentation struct {
	// AutoAugment names the policy, as vision.ParseAutoAugment reads it: none (or empty), rand-m<M>-n<N>
	// (RandAugment), trivial (TrivialAugmentWide), autoaugment-imagenet or autoaugment-cifar10.
	AutoAugment string
	// RandomErasing is the probability of torchvision's RandomErasing on the normalised image (0: never).
	RandomErasing float64
}

// augmenter is an Augmentation ready to run; its zero value does nothing.
type augmenter struct {
	policy  *vision.AutoAugment // nil: none
	erasing float64
}

func (a Augmentation) build(channels int) (augmenter, error) {
	policy, err := vision.ParseAutoAugment(a.AutoAugment)
	if err != nil {
		return augmenter{}, fmt.Errorf("dataset: %w", err)
	}
	if !(a.RandomErasing >= 0 && a.RandomErasing <= 1) {
		return augmenter{}, fmt.Errorf("dataset: random erasing probability must be in [0, 1] (got %v)", a.RandomErasing)
	}
	if policy != nil && channels != 1 && channels != 3 {
		return augmenter{}, fmt.Errorf("dataset: auto-augment %s needs images of 1 or 3 channels (got %d)", policy, channels)
	}
	return augmenter{policy: policy, erasing: a.RandomErasing}, nil
}

// augmentWork is a worker's state for its pipeline's augmenter: the 8-bit planar image the policy works
// on and the policy's scratch.
type augmentWork struct {
	planes  vision.Planes
	scratch vision.AugmentScratch
}

// autoAugment applies the policy to w.planes, drawing from rng.
func (a *augmenter) autoAugment(w *augmentWork, rng *rand.Rand) {
	a.policy.Apply(&w.planes, rng, &w.scratch)
}

// erase applies random erasing, if on, to the normalised planar image chw (c x h x w).
func (a *augmenter) erase(chw []float32, c, h, w int, rng *rand.Rand) {
	if a.erasing > 0 {
		vision.RandomErasing(chw, c, h, w, a.erasing, rng)
	}
}
