// This file estimates the host memory of a loader before it is started, for the check that a run fits.

package dataset

import "resnet/internal/sysmem"

// PipelineSize is what the loader's memory depends on: the examples of a pipeline, their shape, and a
// rough bound on the scratch memory of one of its workers.
type PipelineSize struct {
	Examples    int
	C, H, W     int
	WorkerBytes int64
}

// SizeOf describes p for LoaderMemory.
func SizeOf(p Pipeline) PipelineSize {
	c, h, w := p.OutputShape()
	s := PipelineSize{Examples: p.Len(), C: c, H: h, W: w}
	switch p := p.(type) {
	case *FolderPipeline:
		s.WorkerBytes = FolderWorkerBytes(p.opt)
	case *sourcePipeline:
		s.WorkerBytes = SourceWorkerBytes(p.c, p.h, p.w)
	}
	return s
}

// SourceWorkerBytes is the scratch of a worker of a fixed-size source: the image and its augmented copy.
func SourceWorkerBytes(c, h, w int) int64 { return sysmem.Mul(2, int64(c), int64(h), int64(w)) }

// FolderWorkerBytes is a rough bound on the scratch of an image-folder worker: the file, the decoded RGB
// image and the float32 resampling buffers, for a 4:3 image whose shorter side is the largest the transform
// works at (the output size, the evaluation resize, or the scale augmentation's 480), about 16 bytes a
// pixel. Larger photographs take more while they are decoded. Auto-augment adds two 8-bit copies of the
// crop and a 4-byte index a pixel.
func FolderWorkerBytes(opt FolderPipelineOptions) int64 {
	side := int64(max(opt.Size, opt.Resize))
	if opt.Transform == TransformScale {
		side = max(side, scaleAugMax)
	}
	n := sysmem.Mul(16, side, side*4/3)
	if a := opt.Augment.AutoAugment; a != "" && a != "none" {
		n = sysmem.Add(n, sysmem.Mul(10, int64(opt.Size), int64(opt.Size)))
	}
	return n
}

// LoaderMemory is a rough bound on the host memory a loader with opt over a pipeline of size p holds: the
// batch buffers (the prefetched batches and the one the consumer holds, each of BatchSize images of
// C*H*W float32 with their labels and bookkeeping), the epoch's order, and each worker's scratch.
func LoaderMemory(p PipelineSize, opt LoaderOptions) int64 {
	workers, prefetch := opt.resolved()
	perExample := sysmem.Add(sysmem.Mul(4, int64(p.C), int64(p.H), int64(p.W)), 4+1+8) // image, label, bad flag and error
	batches := sysmem.Mul(int64(prefetch+1), int64(opt.BatchSize), perExample)
	return sysmem.Add(batches, sysmem.Mul(4, int64(p.Examples)), sysmem.Mul(int64(workers), p.WorkerBytes))
}
