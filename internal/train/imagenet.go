package train

import (
	"fmt"
	"path/filepath"

	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/vision"
)

// imagenetData opens root/train and root/val (class folders, or a flat val folder with a label file whose
// classes are the train split's).
func imagenetData(c config.DatasetConfig) (*Data, error) {
	trIdx, err := dataset.ScanFolder(dataset.FolderOptions{Root: c.Root, Split: "train"})
	if err != nil {
		return nil, err
	}
	// ImageNet's test labels are not public: its validation set is what every paper reports on, so both
	// eval_split values read val/.
	const evalSplit = "val"
	evIdx, err := dataset.ScanFolder(dataset.FolderOptions{Root: c.Root, Split: evalSplit, Classes: trIdx.Classes, LabelFile: c.ValLabels})
	if err != nil {
		return nil, err
	}
	if len(evIdx.Classes) != len(trIdx.Classes) {
		return nil, fmt.Errorf("dataset imagenet: %s has %d classes, %s has %d", filepath.Join(c.Root, "train"), len(trIdx.Classes), filepath.Join(c.Root, evalSplit), len(evIdx.Classes))
	}
	for i := range trIdx.Classes {
		if trIdx.Classes[i] != evIdx.Classes[i] {
			return nil, fmt.Errorf("dataset imagenet: class %d is %q in train/ but %q in %s/", i, trIdx.Classes[i], evIdx.Classes[i], evalSplit)
		}
	}
	mean, std := vision.ImageNetMean, vision.ImageNetStd
	if m, s, set := c.Normalization(); set {
		mean, std = m, s
	}
	tr, err := dataset.NewFolderPipeline(filepath.Join(c.Root, "train"), trIdx, dataset.FolderPipelineOptions{
		Transform: trainTransform(c), Size: c.ImageSize, PCALighting: c.PCALighting, Augment: augmentation(c),
		Mean: mean, Std: std,
	})
	if err != nil {
		return nil, err
	}
	ev, err := dataset.NewFolderPipeline(filepath.Join(c.Root, evalSplit), evIdx, dataset.FolderPipelineOptions{
		Transform: dataset.TransformCenter, Size: c.ImageSize, Resize: c.ResizeSize, Mean: mean, Std: std,
	})
	if err != nil {
		return nil, err
	}
	set := &eval.Set{
		Files: &eval.FolderFiles{Dir: filepath.Join(c.Root, evalSplit), Index: evIdx},
		Mean:  mean, Std: std,
		Resize: c.ResizeSize, Crop: c.ImageSize, ClassNames: evIdx.Classes,
	}
	return &Data{Train: tr, Eval: ev, EvalSplit: evalSplit, EvalSet: set}, nil
}

// augmentation is the training augmentation after the crop and flip that dataset.auto_augment and
// dataset.random_erasing set.
func augmentation(c config.DatasetConfig) dataset.Augmentation {
	return dataset.Augmentation{AutoAugment: c.AutoAugment, RandomErasing: c.RandomErasing}
}

// trainTransform is the training transform dataset.train_transform names.
func trainTransform(c config.DatasetConfig) dataset.ImageTransform {
	if c.TrainTransform == "scale" {
		return dataset.TransformScale
	}
	return dataset.TransformRRC
}
