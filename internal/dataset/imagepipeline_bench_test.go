package dataset

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchFolderRoot is the ImageNet-style tree the folder benchmarks read: $RESNET_BENCH_IMAGENET, or
// /tmp/imnet (scripts/make_imagenet_like.py /tmp/imnet --classes 10 --train-per-class 30 --seed 0).
func benchFolderRoot(b *testing.B) string {
	root := os.Getenv("RESNET_BENCH_IMAGENET")
	if root == "" {
		root = "/tmp/imnet"
	}
	if _, err := os.Stat(filepath.Join(root, "train")); err != nil {
		b.Skipf("no ImageNet-style tree at %s (set RESNET_BENCH_IMAGENET or run scripts/make_imagenet_like.py): %v", root, err)
	}
	return root
}

func benchFolderPipeline(b *testing.B, aug Augmentation) *FolderPipeline {
	root := benchFolderRoot(b)
	idx, err := ScanFolder(FolderOptions{Root: root, Split: "train", CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewFolderPipeline(filepath.Join(root, "train"), idx, FolderPipelineOptions{Transform: TransformRRC, Size: 224, Augment: aug})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkFolderRRCWorker is one loader worker's per-image work on the tree (read, decode,
// random-resized crop 224, flip, normalise), without the loader around it.
func BenchmarkFolderRRCWorker(b *testing.B) {
	benchWorker(b, benchFolderPipeline(b, Augmentation{}))
}

// benchAugmentations are the plain training transform and the augmented ones the benchmarks compare.
var benchAugmentations = []struct {
	name string
	aug  Augmentation
}{
	{"plain", Augmentation{}},
	{"rand-m9-n2", Augmentation{AutoAugment: "rand-m9-n2"}},
	{"trivial", Augmentation{AutoAugment: "trivial"}},
	{"autoaugment-imagenet", Augmentation{AutoAugment: "autoaugment-imagenet"}},
	{"erasing-0.25", Augmentation{RandomErasing: 0.25}},
	{"rand-m9-n2+erasing-0.25", Augmentation{AutoAugment: "rand-m9-n2", RandomErasing: 0.25}},
}

// BenchmarkFolderAugmentedWorker is BenchmarkFolderRRCWorker with each training augmentation; "plain" is
// the unaugmented fast path, the baseline of the others' images/s.
func BenchmarkFolderAugmentedWorker(b *testing.B) {
	for _, a := range benchAugmentations {
		b.Run(a.name, func(b *testing.B) { benchWorker(b, benchFolderPipeline(b, a.aug)) })
	}
}

// heldSource serves images rendered once from another source, from memory, as CIFAR serves its records.
type heldSource struct {
	Source
	images [][]uint8
	labels []int
}

func holdSource(b *testing.B, src Source) *heldSource {
	h := &heldSource{Source: src}
	c, ht, w := src.ImageShape()
	for i := range src.Len() {
		img := make([]uint8, c*ht*w)
		label, err := src.Get(i, img)
		if err != nil {
			b.Fatal(err)
		}
		h.images, h.labels = append(h.images, img), append(h.labels, label)
	}
	return h
}

func (h *heldSource) Get(i int, dst []uint8) (int, error) {
	copy(dst, h.images[i])
	return h.labels[i], nil
}

// BenchmarkSourceAugmentedWorker is the same for CIFAR-sized images held in memory (pad-4 crop and flip,
// then the augmentation), whose plain transform costs next to nothing.
func BenchmarkSourceAugmentedWorker(b *testing.B) {
	src := holdSource(b, mustSynthetic(b, 1, 1000, SplitTrain))
	norm := Normalization{Mean: [3]float32{128, 128, 128}, Std: [3]float32{64, 64, 64}}
	for _, a := range benchAugmentations {
		if a.aug.AutoAugment == "autoaugment-imagenet" {
			a.name, a.aug.AutoAugment = "autoaugment-cifar10", "autoaugment-cifar10"
		}
		b.Run(a.name, func(b *testing.B) {
			p, err := AugmentedSourcePipeline(src, true, a.aug, norm)
			if err != nil {
				b.Fatal(err)
			}
			benchWorker(b, p)
		})
	}
}

// benchWorker loads the examples of p one after another through one worker and reports images/s.
func benchWorker(b *testing.B, p Pipeline) {
	w := p.NewWorker()
	rng := rand.New(rand.NewPCG(1, 2))
	c, h, wd := p.OutputShape()
	dst := make([]float32, c*h*wd)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := w.Load(i%p.Len(), rng, dst); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkFolderRRCLoader is the same through a one-worker Loader, batch 32, as 'resnet bench --data'
// runs it.
func BenchmarkFolderRRCLoader(b *testing.B) {
	p := benchFolderPipeline(b, Augmentation{})
	l, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 32, Shuffle: true, DropLast: true, Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	benchLoader(b, l)
}
