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

func benchFolderPipeline(b *testing.B) *FolderPipeline {
	root := benchFolderRoot(b)
	idx, err := ScanFolder(FolderOptions{Root: root, Split: "train", CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewFolderPipeline(filepath.Join(root, "train"), idx, FolderPipelineOptions{Transform: TransformRRC, Size: 224})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkFolderRRCWorker is one loader worker's per-image work on the tree (read, decode,
// random-resized crop 224, flip, normalise), without the loader around it.
func BenchmarkFolderRRCWorker(b *testing.B) {
	p := benchFolderPipeline(b)
	w := p.NewWorker()
	rng := rand.New(rand.NewPCG(1, 2))
	dst := make([]float32, 3*224*224)
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
	p := benchFolderPipeline(b)
	l, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 32, Shuffle: true, DropLast: true, Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	benchLoader(b, l)
}
