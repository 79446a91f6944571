package dataset

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"resnet/internal/vision"
)

// The training augmentations of the paper-era recipes and of torchvision's references.
var augmentations = []Augmentation{
	{AutoAugment: "rand-m9-n2"},
	{AutoAugment: "trivial", RandomErasing: 0.5},
	{AutoAugment: "autoaugment-cifar10"},
	{AutoAugment: "autoaugment-imagenet", RandomErasing: 1},
	{RandomErasing: 0.25},
}

func augmentedLoader(t *testing.T, src Source, aug Augmentation, workers int) *Loader {
	t.Helper()
	opt := syntheticOptions(workers)
	p, err := AugmentedSourcePipeline(src, true, aug, opt.Norm)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewPipelineLoader(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// With auto-augment and random erasing on, a batch is still a function of (seed, epoch, index) alone:
// the same with 1 and 4 workers, and the same when the run is repeated.
func TestAugmentedLoaderIsDeterministic(t *testing.T) {
	src := mustSynthetic(t, 1, 100, SplitTrain)
	plain := collectEpoch(t, mustLoader(t, src, syntheticOptions(2)), 0, 0)
	for _, aug := range augmentations {
		what := fmt.Sprintf("%+v", aug)
		one := collectEpoch(t, augmentedLoader(t, src, aug, 1), 0, 0)
		four := collectEpoch(t, augmentedLoader(t, src, aug, 4), 0, 0)
		again := collectEpoch(t, augmentedLoader(t, src, aug, 4), 0, 0)
		equalBatches(t, what+", 1 vs 4 workers", four, one)
		equalBatches(t, what+", run repeated", again, one)
		if bitEqual(one[0].x, plain[0].x) {
			t.Errorf("%s: the batch is the unaugmented one", what)
		}
		if !slices.Equal(one[0].labels, plain[0].labels) {
			t.Errorf("%s: the augmentation changed the order or the labels", what)
		}
	}
}

// An augmented example is the crop and flip, then the policy, normalisation and erasing, each drawing
// from the example's rng in that order.
func TestSourcePipelineAugmentationOrder(t *testing.T) {
	src := mustSynthetic(t, 1, 10, SplitTrain)
	norm := Normalization{Mean: [3]float32{120, 110, 100}, Std: [3]float32{60, 61, 62}}
	aug := Augmentation{AutoAugment: "rand-m9-n2", RandomErasing: 0.5}
	p, err := AugmentedSourcePipeline(src, true, aug, norm)
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := vision.ParseAutoAugment(aug.AutoAugment)
	w := p.NewWorker()
	const c, h, wd = 3, 32, 32
	img, cropped := make([]uint8, c*h*wd), make([]uint8, c*h*wd)
	got, want := make([]float32, c*h*wd), make([]float32, c*h*wd)
	var scratch vision.AugmentScratch
	for i := range 10 {
		if _, err := w.Load(i, rand.New(rand.NewPCG(uint64(i), 3)), got); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		src.Get(i, img)
		if err := RandomCropFlip(cropped, img, c, h, wd, CIFARPad, rng); err != nil {
			t.Fatal(err)
		}
		planes := vision.Planes{C: c, H: h, W: wd, Pix: cropped}
		policy.Apply(&planes, rng, &scratch)
		if err := Normalize(want, planes.Pix, c, h, wd, norm); err != nil {
			t.Fatal(err)
		}
		vision.RandomErasing(want, c, h, wd, aug.RandomErasing, rng)
		if !bitEqual(got, want) {
			t.Fatalf("example %d differs from crop-flip, %s, normalise, erase", i, aug.AutoAugment)
		}
	}
}

func TestAugmentationRejectsBadSettings(t *testing.T) {
	src := mustSynthetic(t, 1, 10, SplitTrain)
	for _, tt := range []struct {
		aug  Augmentation
		want string
	}{
		{Augmentation{AutoAugment: "rand-m40-n2"}, `dataset: vision: auto-augment policy must have its RandAugment magnitude M in [0, 30], a bin of 31 (got "rand-m40-n2")`},
		{Augmentation{RandomErasing: -0.5}, `dataset: random erasing probability must be in [0, 1] (got -0.5)`},
	} {
		if _, err := AugmentedSourcePipeline(src, true, tt.aug, identityNorm); err == nil || err.Error() != tt.want {
			t.Errorf("%+v: error %v, want %s", tt.aug, err, tt.want)
		}
	}
	root := makeTree(t)
	idx, _ := ScanFolder(FolderOptions{Root: root, Split: "val"})
	_, err := NewFolderPipeline(filepath.Join(root, "val"), idx, FolderPipelineOptions{
		Transform: TransformCenter, Size: 24, Resize: 28, Augment: Augmentation{RandomErasing: 0.25}})
	if want := "dataset imagenet: auto-augment and random erasing are training augmentations; the center transform takes neither"; err == nil || err.Error() != want {
		t.Errorf("center transform with erasing: %v", err)
	}
}

// The folder pipeline's augmented training transforms are deterministic whatever the worker count, and
// differ from the plain ones only by the augmentation.
func TestFolderPipelineAugmentedAcrossWorkers(t *testing.T) {
	root := makeTree(t)
	idx, _ := ScanFolder(FolderOptions{Root: root, Split: "train"})
	for _, tr := range []ImageTransform{TransformRRC, TransformScale} {
		load := func(aug Augmentation, workers int) []float32 {
			p, err := NewFolderPipeline(filepath.Join(root, "train"), idx, FolderPipelineOptions{Transform: tr, Size: 24, Augment: aug})
			if err != nil {
				t.Fatal(err)
			}
			l, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 4, Workers: workers, Shuffle: true, Seed: 5})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var all []float32
			for _, b := range collectEpoch(t, l, 1, 0) {
				all = append(all, b.x...)
			}
			return all
		}
		plain := load(Augmentation{}, 2)
		for _, aug := range augmentations {
			one, three := load(aug, 1), load(aug, 3)
			if len(one) == 0 || !bitEqual(one, three) {
				t.Errorf("%s %+v: batches differ between 1 and 3 workers", tr, aug)
			}
			if bitEqual(one, plain) {
				t.Errorf("%s %+v: batches equal the unaugmented ones", tr, aug)
			}
		}
	}
}

// Once warm, an augmenting worker allocates nothing per example.
func TestAugmentedSourceWorkerDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters distort allocation counts")
	}
	src := mustSynthetic(t, 1, 50, SplitTrain)
	p, err := AugmentedSourcePipeline(src, true, Augmentation{AutoAugment: "rand-m9-n2", RandomErasing: 0.5}, identityNorm)
	if err != nil {
		t.Fatal(err)
	}
	w := p.NewWorker()
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]float32, 3*32*32)
	i := 0
	load := func() {
		if _, err := w.Load(i%50, rng, dst); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 100 {
		load()
	}
	if allocs := testing.AllocsPerRun(200, load); allocs > 0 {
		t.Errorf("%.2f allocations per example", allocs)
	}
}
