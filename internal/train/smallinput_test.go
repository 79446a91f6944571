package train

import (
	"path/filepath"
	"testing"

	"resnet/internal/config"
)

// An ImageNet net trains on CIFAR files (32x32 images: 1x1 maps in its last stage), the common first
// experiment with it.
func TestImageNetNetTrainsOnCIFAR(t *testing.T) {
	root := t.TempDir()
	writeCIFAR10(t, filepath.Join(root, "cifar-10-batches-bin"), 4, 8)
	cfg := smallConfig(1)
	cfg.Model.Arch = "resnet18"
	cfg.Dataset = config.Default().Dataset
	cfg.Dataset.Name, cfg.Dataset.Root, cfg.Dataset.Workers = "cifar10", root, 2
	cfg.Train.BatchSize, cfg.Eval.BatchSize = 8, 8
	cfg.Train.Schedule = config.ScheduleConfig{Type: "constant"}
	res, err := runOnce(t, cfg, filepath.Join(root, "run"), false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 20 training records: 2 batches of 8 (the last 4 dropped).
	if res.Last.Step != 2 || res.Last.Epoch != 1 {
		t.Errorf("last metrics %+v, want epoch 1 after 2 steps", res.Last)
	}
}

// An image size the model's strides cannot take is refused naming dataset.image_size and the smallest
// size that works.
func TestImageSizeTooSmallForModel(t *testing.T) {
	root := t.TempDir()
	writeJPEGTree(t, root, 2)
	cfg := smallConfig(1)
	cfg.Model.Arch, cfg.Model.Shortcut = "resnet18", "A"
	cfg.Dataset = config.Default().Dataset
	cfg.Dataset.Name, cfg.Dataset.Root, cfg.Dataset.ImageSize, cfg.Dataset.ResizeSize = "imagenet", root, 16, 16
	cfg.Train.BatchSize, cfg.Eval.BatchSize = 2, 2
	_, err := runOnce(t, cfg, filepath.Join(root, "run"), false, nil, nil)
	want := "model resnet18 needs inputs of at least 29x29 (got 16x16: layer4.0: an option-A shortcut cannot subsample 256x1x1 to 512x1x1): raise dataset.image_size to at least 29"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
