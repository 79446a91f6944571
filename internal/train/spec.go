package train

import (
	"fmt"

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
	s.NumClasses = numClasses
	if m.NumClasses > 0 {
		s.NumClasses = m.NumClasses
	}
	if inputSize > 0 {
		s.InputSize = inputSize
	}
	return s, s.Validate()
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

// normSamples is how many training images the per-channel mean and deviation are measured on.
const normSamples = 2000

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

// sourceData builds the pipelines of a fixed-size data set, normalised with the training split's
// per-channel statistics.
func sourceData(tr, te dataset.Source, c config.DatasetConfig, classNames []string) (*Data, error) {
	norm, err := dataset.ComputeNormalization(tr, normSamples)
	if err != nil {
		return nil, err
	}
	trp, err := dataset.SourcePipeline(tr, c.Augment, norm)
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
