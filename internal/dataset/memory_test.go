package dataset

import "testing"

// The loader's share, by hand: 2 prefetched batches and the one being used, each of 16 examples of
// 4 bytes x 3x32x32 plus 13 bytes of label and bookkeeping; 64 order entries of 4 bytes; 2 workers with
// an image and its augmented copy of 3x32x32 bytes each. A loader never holds more batch buffers than
// that while its batches are released before the next is taken.
func TestLoaderMemory(t *testing.T) {
	src := mustSynthetic(t, 1, 64, SplitTrain)
	p, err := SourcePipeline(src, true, identityNorm)
	if err != nil {
		t.Fatal(err)
	}
	opt := LoaderOptions{BatchSize: 16, Workers: 2, Prefetch: 2}
	want := int64(3*16*(4*3072+13) + 4*64 + 2*2*3072)
	if got := LoaderMemory(SizeOf(p), opt); got != want {
		t.Errorf("LoaderMemory %d, want %d", got, want)
	}
	l, err := NewPipelineLoader(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for epoch := range 2 {
		collectEpoch(t, l, epoch, 0)
	}
	l.drain()
	if n := len(l.free); n > 3 {
		t.Errorf("the loader made %d batch buffers, the estimate counts 3", n)
	}
	// An image folder's workers: a 4:3 image at the scale augmentation's largest side, 16 bytes a pixel.
	folder := FolderPipelineOptions{Transform: TransformScale, Size: 224}
	if got, want := FolderWorkerBytes(folder), int64(16*480*640); got != want {
		t.Errorf("FolderWorkerBytes %d, want %d", got, want)
	}
}
