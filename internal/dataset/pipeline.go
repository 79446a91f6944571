// This file holds the Pipeline abstraction the loader consumes: a data set that produces ready,
// normalised examples (decoding and transforming them as needed), and the pipeline over a fixed-size
// uint8 Source with the CIFAR augmentation.

package dataset

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"resnet/internal/vision"
)

// Pipeline is an indexable data set that writes examples ready for the network: CHW float32, normalised,
// augmented when training. The loader calls it from several goroutines, each through its own worker.
type Pipeline interface {
	Len() int
	NumClasses() int
	// OutputShape is (channels, height, width) of every example written.
	OutputShape() (c, h, w int)
	// NewWorker returns the per-goroutine state (scratch buffers) that loads examples.
	NewWorker() PipelineWorker
}

// PipelineWorker loads examples for one goroutine.
type PipelineWorker interface {
	// Load writes example index into dst (len c*h*w) and returns its label. All randomness comes from rng,
	// which the loader seeds from (seed, epoch, index), so an example's augmentation does not depend on
	// which worker loads it or when. An example that cannot be decoded returns a *BadExampleError.
	Load(index int, rng *rand.Rand, dst []float32) (label int, err error)
}

// BadExampleError reports an example whose file cannot be used (truncated, corrupt, empty, not an
// image). The loader skips such examples and counts them, unless it runs in strict mode.
type BadExampleError struct {
	Index int
	Path  string
	Err   error
}

func (e *BadExampleError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("bad image %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("bad example %d: %v", e.Index, e.Err)
}

func (e *BadExampleError) Unwrap() error { return e.Err }

// sourcePipeline turns a fixed-size Source into a Pipeline: Get, the optional CIFAR augmentation (pad 4,
// random crop, flip), the optional training augmentations (auto-augment, then random erasing after
// normalisation), and per-channel normalisation.
type sourcePipeline struct {
	src      Source
	cropFlip bool
	aug      augmenter
	norm     *normTable
	c, h, w  int
}

// SourcePipeline wraps a Source with the CIFAR augmentation (when augment is set) and normalisation.
func SourcePipeline(src Source, augment bool, norm Normalization) (Pipeline, error) {
	return AugmentedSourcePipeline(src, augment, Augmentation{}, norm)
}

// AugmentedSourcePipeline is SourcePipeline with the training augmentations of aug after the crop and
// flip (or on the source image, without them).
func AugmentedSourcePipeline(src Source, cropFlip bool, aug Augmentation, norm Normalization) (Pipeline, error) {
	if src == nil {
		return nil, errors.New("dataset: pipeline needs a source (got nil)")
	}
	c, h, w := src.ImageShape()
	if c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("dataset: source has image shape %dx%dx%d; every dimension must be > 0", c, h, w)
	}
	t, err := newNormTable(norm, c)
	if err != nil {
		return nil, err
	}
	a, err := aug.build(c)
	if err != nil {
		return nil, err
	}
	return &sourcePipeline{src: src, cropFlip: cropFlip, aug: a, norm: t, c: c, h: h, w: w}, nil
}

func (p *sourcePipeline) Len() int                   { return p.src.Len() }
func (p *sourcePipeline) NumClasses() int            { return p.src.NumClasses() }
func (p *sourcePipeline) OutputShape() (c, h, w int) { return p.c, p.h, p.w }

func (p *sourcePipeline) NewWorker() PipelineWorker {
	n := p.c * p.h * p.w
	return &sourceWorker{p: p, img: make([]uint8, n), augmented: make([]uint8, n)}
}

type sourceWorker struct {
	p              *sourcePipeline
	img, augmented []uint8
	work           augmentWork
}

func (w *sourceWorker) Load(index int, rng *rand.Rand, dst []float32) (int, error) {
	p := w.p
	label, err := p.src.Get(index, w.img)
	if err != nil {
		return 0, err
	}
	pixels := w.img
	if p.cropFlip {
		if err := RandomCropFlip(w.augmented, w.img, p.c, p.h, p.w, CIFARPad, rng); err != nil {
			return 0, fmt.Errorf("augmenting example %d: %w", index, err)
		}
		pixels = w.augmented
	}
	if p.aug.policy != nil {
		w.work.planes = vision.Planes{C: p.c, H: p.h, W: p.w, Pix: pixels}
		p.aug.autoAugment(&w.work, rng)
	}
	p.norm.apply(dst, pixels, p.h*p.w)
	p.aug.erase(dst, p.c, p.h, p.w, rng)
	return label, nil
}
