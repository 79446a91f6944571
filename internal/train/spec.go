package train

import (
	"fmt"
	"strings"

	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/model"
)

// SpecFor resolves the model section of a config to a spec, for a data set of numClasses classes and
// square images of side inputSize.
func SpecFor(m config.ModelConfig, numClasses, inputSize int) (model.Spec, error) {
	arch := strings.ToLower(m.Arch)
	var s model.Spec
	var err error
	switch {
	case arch == "cifar_resnet" || arch == "cifar_plain":
		if m.Depth == 0 {
			return s, fmt.Errorf("model.arch %s needs model.depth (6n+2)", m.Arch)
		}
		s, err = model.CIFARSpec(m.Depth, arch == "cifar_resnet")
	case m.Depth != 0 && strings.HasPrefix(arch, "cifar_"):
		s, err = model.CIFARSpec(m.Depth, strings.HasPrefix(arch, "cifar_res"))
	default:
		s, err = model.Lookup(m.Arch)
	}
	if err != nil {
		return s, err
	}
	if m.Shortcut != "" {
		s.Shortcut = m.Shortcut[0]
		if !s.Residual && s.Shortcut != 'A' && s.Shortcut != 'B' && s.Shortcut != 'C' {
			return s, fmt.Errorf("model.shortcut must be A, B or C (got %q)", m.Shortcut)
		}
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

// Data is a run's training and test sources with the normalisation the loader applies.
type Data struct {
	Train, Test dataset.Source
	Norm        dataset.Normalization
}

// OpenData opens the data set named by the config.
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
		norm, err := dataset.ComputeNormalization(tr, 2000)
		if err != nil {
			return nil, err
		}
		return &Data{Train: tr, Test: te, Norm: norm}, nil
	}
	return nil, fmt.Errorf("dataset %q is not readable by this build yet (available: synthetic)", c.Name)
}
