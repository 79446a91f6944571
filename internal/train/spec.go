package train

import (
	"errors"
	"fmt"
	"path/filepath"

	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/model"
)

// SpecFor resolves the model section of a config to a spec, for a data set of numClasses classes and
// square images of side inputSize.
func SpecFor(m config.ModelConfig, numClasses, inputSize int) (model.Spec, error) {
	s, err := model.Resolve(m.Arch, m.Depth)
	if err != nil {
		return s, err
	}
	if m.Shortcut != "" {
		s.Shortcut = m.Shortcut[0]
	}
	s.StrideIn1x1 = m.StrideIn1x1
	s.ZeroInitResidual = m.ZeroInitResidual
	s.Dropout = m.Dropout
	s.NumClasses = numClasses
	if m.NumClasses > 0 {
		s.NumClasses = m.NumClasses
	}
	if inputSize > 0 {
		s.InputSize = inputSize
	}
	return s, s.Validate()
}

// InputFor is the class count and the image side of a data set as far as its config tells without
// opening it (an ImageNet folder's class count is taken as ImageNet's 1000).
func InputFor(d config.DatasetConfig) (classes, size int) {
	switch d.Name {
	case "imagenet":
		return 1000, d.ImageSize
	case "cifar100":
		if d.CoarseLabels {
			return 20, 32
		}
		return 100, 32
	}
	return 10, 32
}

// ExplainInputSize adds to an *model.InputSizeError what to change: dataset.image_size for an ImageNet
// folder; other data sets have images of one fixed size. Other errors are returned as they are.
func ExplainInputSize(err error, d config.DatasetConfig) error {
	var ie *model.InputSizeError
	if !errors.As(err, &ie) {
		return err
	}
	switch {
	case d.Name != "imagenet":
		return fmt.Errorf("%w (the %s images are %dx%d)", err, d.Name, ie.W, ie.H)
	case ie.H < ie.Min:
		return fmt.Errorf("%w: raise dataset.image_size to at least %d", err, ie.Min)
	case ie.Below > 0 && ie.Above > 0:
		return fmt.Errorf("%w: set dataset.image_size to %d or %d", err, ie.Below, ie.Above)
	}
	return fmt.Errorf("%w: change dataset.image_size", err)
}

// Data is a run's training pipeline and the pipeline of the split it evaluates on.
type Data struct {
	Train, Eval dataset.Pipeline
	// EvalSplit names the evaluated split (test or val).
	EvalSplit string
	// EvalSet is the same split read image by image, for the ten-crop and multi-scale protocols.
	EvalSet *eval.Set
}

// cifar10Classes are CIFAR-10's class names, in label order (batches.meta.txt).
var cifar10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// ClassNames are the names of a data set's classes in label order, when known without reading the data:
// the synthetic set's and CIFAR-10's, and an ImageNet-style tree's class folders (when root/train is
// there and has the given count); nil otherwise.
func ClassNames(c config.DatasetConfig, classes int) []string {
	var names []string
	switch c.Name {
	case "synthetic":
		names = dataset.SyntheticClassNames[:]
	case "cifar10":
		names = cifar10Classes
	case "imagenet":
		names, _ = dataset.ClassFolders(filepath.Join(c.Root, "train"))
	}
	if len(names) != classes {
		return nil
	}
	return names
}

// OpenData opens the data set named by the config: the training split and the split evaluated on.
func OpenData(c config.DatasetConfig, seed int64) (*Data, error) {
	switch c.Name {
	case "synthetic":
		tr, err := dataset.NewSynthetic(seed, c.TrainSize, "train")
		if err != nil {
			return nil, err
		}
		te, err := dataset.NewSynthetic(seed, c.TestSize, "test")
		if err != nil {
			return nil, err
		}
		return sourceData(tr, te, c, dataset.SyntheticClassNames[:])
	case "cifar10", "cifar100":
		opt := dataset.CIFAROptions{Root: c.Root, Classes: 10, Coarse: c.CoarseLabels, ValSize: c.ValSize}
		if c.Name == "cifar100" {
			opt.Classes = 100
		}
		opt.Split = "train"
		tr, err := dataset.OpenCIFAR(opt)
		if err != nil {
			return nil, err
		}
		opt.Split = c.EvalSplit
		te, err := dataset.OpenCIFAR(opt)
		if err != nil {
			return nil, err
		}
		var names []string
		if opt.Classes == 10 {
			names = cifar10Classes
		}
		return sourceData(tr, te, c, names)
	case "imagenet":
		return imagenetData(c)
	}
	return nil, fmt.Errorf("dataset %q is not known (available: synthetic, cifar10, cifar100, imagenet)", c.Name)
}

// sourceData builds the pipelines of a fixed-size data set, normalised with dataset.mean and dataset.std,
// or else with the per-channel statistics of the whole training split (as the usual CIFAR constants are
// computed).
func sourceData(tr, te dataset.Source, c config.DatasetConfig, classNames []string) (*Data, error) {
	var norm dataset.Normalization
	var given bool
	if norm.Mean, norm.Std, given = c.Normalization(); !given {
		var err error
		if norm, err = dataset.ComputeNormalization(tr, 0); err != nil {
			return nil, err
		}
	}
	trp, err := dataset.AugmentedSourcePipeline(tr, c.Augment, augmentation(c), norm)
	if err != nil {
		return nil, err
	}
	tep, err := dataset.SourcePipeline(te, false, norm)
	if err != nil {
		return nil, err
	}
	set := &eval.Set{Source: te, Mean: norm.Mean, Std: norm.Std, ClassNames: classNames}
	return &Data{Train: trp, Eval: tep, EvalSplit: c.EvalSplit, EvalSet: set}, nil
}
