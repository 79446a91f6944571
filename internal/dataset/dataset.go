// Package dataset holds the data sources (the built-in synthetic set now; CIFAR binary files and
// ImageNet-style folders later), the transforms, and the prefetching loader that turns a source into
// batches in a fixed order determined by (seed, epoch).
package dataset

// Source is an indexable, labelled image set. Images are uint8, CHW order (channel planes), fixed size.
// Implementations must be safe for concurrent Get calls.
type Source interface {
	// Len is the number of examples.
	Len() int
	// NumClasses is the number of classes; labels are in [0, NumClasses).
	NumClasses() int
	// ImageShape is (channels, height, width) of every image.
	ImageShape() (c, h, w int)
	// Get copies example i into dst (len c*h*w, CHW) and returns its label.
	Get(i int, dst []uint8) (label int, err error)
}

// Normalization is the per-channel mean and standard deviation, in the 0..255 pixel scale, that the
// loader subtracts and divides by.
type Normalization struct {
	Mean, Std [3]float32
}
