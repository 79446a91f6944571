package train

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/sysmem"
)

// A run whose estimate exceeds the memory the process may use is refused before the net or the loaders
// are made, naming the setting that drives it, the estimate, the limit and the largest value that fits.
func TestRunRefusedOverMemoryLimit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // the workspace counts one image per CPU worker
	root := t.TempDir()
	writeJPEGTree(t, root, 2)
	limit := func() sysmem.Limit { return sysmem.Limit{Bytes: 8 << 30, Source: "MemAvailable"} }
	imagenet := func(c *config.Config) {
		c.Dataset = config.Default().Dataset
		c.Dataset.Name, c.Dataset.Root, c.Dataset.Workers = "imagenet", root, 2
		c.Model.Arch = "resnet18"
	}
	for _, tc := range []struct {
		name string
		set  func(c *config.Config)
		want string
	}{
		{"train.batch_size", func(c *config.Config) { c.Train.BatchSize = 100000000 },
			"config: train.batch_size 100000000 needs about 77.2 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 4.5 TiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~10000"},
		{"train.batch_size, fitting as micro-batches", func(c *config.Config) { c.Train.BatchSize = 16384 },
			"config: train.batch_size 16384 needs about 13.0 GiB for a training step of cifar_resnet8 at 32x32 (activations 12.2 GiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 769.9 KiB, host copies 704.0 KiB, data loaders 770.3 MiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~10000, or keep the batch and run it as 2 micro-batches (train.accumulate_steps: 2)"},
		{"eval.batch_size", func(c *config.Config) { c.Eval.BatchSize = 100000000 },
			"config: eval.batch_size 100000000 needs about 77.2 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 4.5 TiB); the limit is 8.0 GiB (MemAvailable); lower eval.batch_size to at most ~10000"},
		{"both batch sizes", func(c *config.Config) { c.Train.BatchSize, c.Eval.BatchSize = 100000000, 50000000 },
			"config: train.batch_size 100000000 needs about 79.4 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 6.7 TiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size and eval.batch_size to at most ~9500"},
		{"dataset.image_size", func(c *config.Config) {
			imagenet(c)
			c.Dataset.ImageSize, c.Dataset.ResizeSize = 100000, 100000
		}, "config: dataset.image_size 100000 needs about 189.7 TiB for a training step of resnet18 at 100000x100000 (activations 165.3 TiB, parameters 128.0 MiB, workspace 2.7 TiB, labels and statistics 38.1 KiB, host copies 512 B, data loaders 21.7 TiB); the limit is 8.0 GiB (MemAvailable); lower dataset.image_size to at most ~630 and dataset.resize_size in proportion"},
		{"model.arch", func(c *config.Config) { c.Model.Arch = "cifar_resnet1202" },
			"config: model.arch cifar_resnet1202 needs about 3.0 GiB for a training step of cifar_resnet1202 at 32x32 (activations 2.7 GiB, parameters 223.3 MiB, workspace 1.1 MiB, labels and statistics 351.6 KiB, host copies 1.4 KiB, data loaders 2.3 MiB); the limit is 64.0 MiB (cgroup memory.max); choose a smaller model"},
	} {
		cfg := smallConfig(1)
		tc.set(&cfg)
		lim := limit
		if tc.name == "model.arch" {
			lim = func() sysmem.Limit { return sysmem.Limit{Bytes: 64 << 20, Source: "cgroup memory.max"} }
		}
		dir := filepath.Join(t.TempDir(), "run")
		_, err := Run(Options{Config: cfg, RunDir: dir, Device: cpu.New(), Out: io.Discard, HostMemory: lim})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
		if _, err := os.Stat(NewRunDir(dir).ConfigPath()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the refused run left %s (%v)", tc.name, NewRunDir(dir).ConfigPath(), err)
		}
	}
	// The small config itself fits.
	cfg := smallConfig(1)
	spec, err := SpecFor(cfg.Model, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewRunMemory(cfg, spec, nil).Check(sysmem.Budget{Host: limit()}); err != nil {
		t.Error(err)
	}
}

// gpuLike is a CPU device that reports memory of its own, as a GPU does.
type gpuLike struct {
	*cpu.Device
	free int64
}

func (g gpuLike) FreeMemory() (int64, error) { return g.free, nil }

// On a device with memory of its own the net counts against the device's free memory, the loaders
// against the host's.
func TestRunRefusedOverDeviceMemory(t *testing.T) {
	cfg := smallConfig(1)
	cfg.Train.BatchSize = 20000
	host := func() sysmem.Limit { return sysmem.Limit{Bytes: 8 << 30, Source: "MemAvailable"} }
	dev := gpuLike{Device: cpu.New(), free: 4 << 30}
	_, err := Run(Options{Config: cfg, RunDir: filepath.Join(t.TempDir(), "run"), Device: dev, Out: io.Discard, HostMemory: host})
	want := "config: train.batch_size 20000 needs about 14.9 GiB of GPU memory for a training step of cifar_resnet8 at 32x32 (activations 14.9 GiB, parameters 887.9 KiB, workspace 576.0 KiB, labels and statistics 939.4 KiB); the limit is 4.0 GiB (free GPU memory); lower train.batch_size to at most ~5300, or keep the batch and run it as 4 micro-batches (train.accumulate_steps: 4)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// A run in bf16 or fp16 is estimated with 2-byte activations; its other parts are fp32's.
func TestRunMemoryCountsThePrecision(t *testing.T) {
	cfg := smallConfig(1)
	spec, err := SpecFor(cfg.Model, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	need32, err := NewRunMemory(cfg, spec, nil).Need(1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Device, cfg.CUDA.Precision = "cuda", "fp16"
	need16, err := NewRunMemory(cfg, spec, nil).Need(1)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range need32 {
		q := need16[i]
		switch {
		case p.Name == "activations" && !(q.Bytes < p.Bytes && q.Bytes > p.Bytes/2):
			t.Errorf("fp16 activations %d bytes, fp32 %d: want a little over half", q.Bytes, p.Bytes)
		case p.Name != "activations" && q != p:
			t.Errorf("fp16 %+v, fp32 %+v", q, p)
		}
	}
}

// In a job of several ranks each holds its share of the global batch: a refusal names the global
// train.batch_size with the share, advises a global batch that fits (the largest share that fits times
// the ranks, rounded down to a multiple of them) and micro-batches of each rank's share.
func TestRankRefusedOverMemoryLimit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // the workspace counts one image per CPU worker
	limit := func() sysmem.Limit { return sysmem.Limit{Bytes: 8 << 30, Source: "MemAvailable"} }
	for _, tc := range []struct {
		name        string
		world       int
		train, eval int
		want        string
	}{
		{"train.batch_size", 2, 32768, 32,
			"config: train.batch_size 32768 (16384 per rank over 2 ranks) needs about 13.0 GiB for a training step of cifar_resnet8 at 32x32 (activations 12.2 GiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 769.9 KiB, host copies 704.0 KiB, data loaders 770.3 MiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~20000, or keep the batch and run each rank's share as 2 micro-batches (train.accumulate_steps: 2)"},
		{"train.batch_size over 3 ranks", 3, 49152, 32,
			"config: train.batch_size 49152 (16384 per rank over 3 ranks) needs about 13.0 GiB for a training step of cifar_resnet8 at 32x32 (activations 12.2 GiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 769.9 KiB, host copies 704.0 KiB, data loaders 770.3 MiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~30000, or keep the batch and run each rank's share as 2 micro-batches (train.accumulate_steps: 2)"},
		{"both batch sizes", 2, 200000000, 50000000,
			"config: train.batch_size 200000000 (100000000 per rank over 2 ranks) needs about 79.4 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 6.7 TiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~19000 and eval.batch_size to at most ~9500"},
		{"eval.batch_size", 2, 32, 100000000,
			"config: eval.batch_size 100000000 needs about 77.2 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 4.5 TiB); the limit is 8.0 GiB (MemAvailable); lower eval.batch_size to at most ~10000"},
	} {
		cfg := smallConfig(1)
		cfg.Train.BatchSize, cfg.Eval.BatchSize = tc.train, tc.eval
		dir := filepath.Join(t.TempDir(), "run")
		errs := runRanks(t, cfg, dir, false, tc.world, func(int) Options { return Options{HostMemory: limit} })
		for r, err := range errs {
			if err == nil || err.Error() != tc.want {
				t.Errorf("%s, rank %d:\n got %v\nwant %s", tc.name, r, err, tc.want)
			}
		}
	}
}
