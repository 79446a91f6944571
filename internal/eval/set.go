package eval

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"resnet/internal/dataset"
	"resnet/internal/vision"
)

// Set is an evaluation split read image by image, for the protocols that need more than the 1-crop
// pipeline: ten crops of each image, or the whole image at several scales. Exactly one of Source (a
// split of fixed-size images: CIFAR, the synthetic set) and Files (an ImageNet-style folder) is set.
type Set struct {
	Source dataset.Source
	Files  *FolderFiles
	// Mean and Std normalise each channel, in the 0..255 pixel scale.
	Mean, Std [3]float32
	// Resize and Crop are the shorter side and the crop of the 1-crop and ten-crop protocols on folder
	// images (256 and 224 for ImageNet). Fixed-size images are used whole.
	Resize, Crop int
	// ClassNames names the classes when known (nil otherwise).
	ClassNames []string
}

// FolderFiles are the image files of an ImageNet-style split.
type FolderFiles struct {
	Dir    string
	Index  *dataset.FolderIndex
	reader func(string) ([]byte, error)
}

// Len is the number of images of the split.
func (s *Set) Len() int {
	if s.Source != nil {
		return s.Source.Len()
	}
	return len(s.Files.Index.Files)
}

// NumClasses is the number of classes.
func (s *Set) NumClasses() int {
	if s.Source != nil {
		return s.Source.NumClasses()
	}
	return len(s.Files.Index.Classes)
}

// validate reports a Set that cannot be read.
func (s *Set) validate() error {
	if (s.Source == nil) == (s.Files == nil || s.Files.Index == nil) {
		return errors.New("eval: a set needs either a source or folder files")
	}
	for c := range 3 {
		if !(s.Std[c] > 0) {
			return fmt.Errorf("eval: channel %d standard deviation must be positive (got %v)", c, s.Std[c])
		}
	}
	if s.Files != nil && (s.Crop < 1 || s.Resize < s.Crop) {
		return fmt.Errorf("eval: need 1 <= crop <= resize (got crop %d, resize %d)", s.Crop, s.Resize)
	}
	return nil
}

// CropSize is the side of the crops of the 1-crop and ten-crop protocols.
func (s *Set) CropSize() int {
	if s.Source != nil {
		_, h, _ := s.Source.ImageShape()
		return h
	}
	return s.Crop
}

// reader reads whole images of a Set; one per goroutine.
type reader struct {
	s   *Set
	chw []uint8 // a source image, CHW
	img vision.Image
}

func newReader(s *Set) *reader {
	r := &reader{s: s}
	if s.Source != nil {
		c, h, w := s.Source.ImageShape()
		r.chw = make([]uint8, c*h*w)
	}
	return r
}

// read loads image i into r.img (interleaved RGB) and returns its label. An unreadable folder image is a
// *dataset.BadExampleError.
func (r *reader) read(i int) (int, error) {
	if r.s.Source != nil {
		label, err := r.readSource(i)
		if err != nil {
			return 0, err
		}
		c, h, w := r.s.Source.ImageShape()
		r.img.Resize(w, h)
		for p := range h * w {
			for ch := range 3 {
				r.img.Pix[3*p+ch] = r.chw[min(ch, c-1)*h*w+p]
			}
		}
		return label, nil
	}
	f := r.s.Files
	if i < 0 || i >= len(f.Index.Files) {
		return 0, fmt.Errorf("eval: image %d out of range [0, %d)", i, len(f.Index.Files))
	}
	path := filepath.Join(f.Dir, filepath.FromSlash(f.Index.Files[i]))
	read := f.reader
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(path)
	if err == nil && len(data) == 0 {
		err = errors.New("empty file")
	}
	if err == nil {
		_, err = vision.Decode(data, &r.img)
	}
	if err != nil {
		return 0, &dataset.BadExampleError{Index: i, Path: path, Err: err}
	}
	return int(f.Index.Labels[i]), nil
}

// readSource loads image i of a fixed-size source into r.chw.
func (r *reader) readSource(i int) (int, error) {
	label, err := r.s.Source.Get(i, r.chw)
	if err != nil {
		return 0, fmt.Errorf("eval: image %d: %w", i, err)
	}
	return label, nil
}

// tenCropPipeline is the ten-crop protocol as a dataset.Pipeline whose examples are the ten views of one
// image, one after another (OutputShape reports 30 channels: ten 3-channel crops). Folder images: shorter
// side resized to Resize, the four corner and the centre Crop x Crop windows, then their mirror images.
// Fixed-size images (CIFAR): the same five windows of the image zero-padded by the training
// augmentation's 4 pixels (the centre one is the image itself), then their mirror images.
type tenCropPipeline struct{ s *Set }

// tenCropViews is the number of views of the ten-crop protocol.
const tenCropViews = 10

func (p tenCropPipeline) Len() int        { return p.s.Len() }
func (p tenCropPipeline) NumClasses() int { return p.s.NumClasses() }
func (p tenCropPipeline) OutputShape() (c, h, w int) {
	side := p.s.CropSize()
	return 3 * tenCropViews, side, side
}

func (p tenCropPipeline) NewWorker() dataset.PipelineWorker {
	w := &tenCropWorker{r: newReader(p.s)}
	if p.s.Source != nil {
		w.crop = make([]uint8, len(w.r.chw))
	}
	return w
}

type tenCropWorker struct {
	r       *reader
	crop    []uint8
	scratch vision.Scratch
}

func (w *tenCropWorker) Load(index int, _ *rand.Rand, dst []float32) (int, error) {
	s := w.r.s
	if s.Files != nil {
		label, err := w.r.read(index)
		if err != nil {
			return 0, err
		}
		if err := vision.EvalTenCrop(dst, &w.r.img, s.Resize, s.Crop, s.Mean, s.Std, &w.scratch); err != nil {
			return 0, fmt.Errorf("eval: image %d: %w", index, err)
		}
		return label, nil
	}
	label, err := w.r.readSource(index)
	if err != nil {
		return 0, err
	}
	c, h, wd := s.Source.ImageShape()
	const pad = dataset.CIFARPad
	offsets := [5][2]int{{0, 0}, {2 * pad, 0}, {0, 2 * pad}, {2 * pad, 2 * pad}, {pad, pad}}
	n := 3 * h * wd
	for v := range tenCropViews {
		o := offsets[v%5]
		if err := dataset.CropFlip(w.crop, w.r.chw, c, h, wd, pad, o[0], o[1], v >= 5); err != nil {
			return 0, err
		}
		normalizeCHW(dst[v*n:(v+1)*n], w.crop, c, h*wd, s.Mean, s.Std)
	}
	return label, nil
}

// normalizeCHW writes the 3-channel normalised float image of a c-channel CHW uint8 image of hw pixels
// (a 1-channel image is repeated over the three channels).
func normalizeCHW(dst []float32, src []uint8, c, hw int, mean, std [3]float32) {
	for ch := range 3 {
		in := src[min(ch, c-1)*hw : (min(ch, c-1)+1)*hw]
		out := dst[ch*hw : (ch+1)*hw]
		m, sd := mean[ch], std[ch]
		for i, v := range in {
			out[i] = (float32(v) - m) / sd
		}
	}
}
