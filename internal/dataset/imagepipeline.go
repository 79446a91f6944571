// This file holds the pipeline over an ImageNet-style folder: read the file, decode it (JPEG or PNG, by
// content), apply the training or evaluation transform, normalise. Training adds, in torchvision's preset
// order, the crop and flip, auto-augment on the 8-bit crop, normalisation, PCA lighting, random erasing.

package dataset

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"resnet/internal/vision"
)

// ImageTransform selects what a FolderPipeline does to each decoded image.
type ImageTransform string

const (
	// TransformRRC is the Inception-style random-resized crop (scale 0.08-1, ratio 3/4-4/3) and flip.
	TransformRRC ImageTransform = "rrc"
	// TransformScale is the paper's scale augmentation: shorter side random in [256, 480], random crop,
	// flip.
	TransformScale ImageTransform = "scale"
	// TransformCenter is evaluation: shorter side resized, centre crop.
	TransformCenter ImageTransform = "center"
)

// FolderPipelineOptions configure a FolderPipeline.
type FolderPipelineOptions struct {
	Transform   ImageTransform
	Size        int  // output side (224)
	Resize      int  // shorter side before the centre crop (256), for TransformCenter
	PCALighting bool // AlexNet-style colour noise (training transforms only)
	// Augment adds auto-augment and random erasing after the crop and flip (training transforms only).
	Augment Augmentation
	// Mean and Std normalise each channel, in the 0..255 scale (default: ImageNet's).
	Mean, Std [3]float32
}

// FolderPipeline is a Pipeline over the files of a FolderIndex.
type FolderPipeline struct {
	dir string
	idx *FolderIndex
	opt FolderPipelineOptions
	aug augmenter
}

// NewFolderPipeline builds the pipeline of the split directory dir, whose files idx lists.
func NewFolderPipeline(dir string, idx *FolderIndex, opt FolderPipelineOptions) (*FolderPipeline, error) {
	switch opt.Transform {
	case TransformRRC, TransformScale, TransformCenter:
	default:
		return nil, fmt.Errorf("dataset imagenet: transform must be rrc, scale or center (got %q)", opt.Transform)
	}
	if opt.Size < 1 || (opt.Transform == TransformCenter && opt.Resize < opt.Size) {
		return nil, fmt.Errorf("dataset imagenet: need 1 <= size <= resize (got size %d, resize %d)", opt.Size, opt.Resize)
	}
	if opt.Transform == TransformScale && opt.Size > scaleAugMin {
		return nil, fmt.Errorf("dataset imagenet: the scale augmentation crops at most %d pixels (got size %d)", scaleAugMin, opt.Size)
	}
	aug, err := opt.Augment.build(3)
	if err != nil {
		return nil, err
	}
	if opt.Transform == TransformCenter && (aug.policy != nil || aug.erasing > 0) {
		return nil, errors.New("dataset imagenet: auto-augment and random erasing are training augmentations; the center transform takes neither")
	}
	if opt.Std == ([3]float32{}) {
		opt.Mean, opt.Std = vision.ImageNetMean, vision.ImageNetStd
	}
	return &FolderPipeline{dir: dir, idx: idx, opt: opt, aug: aug}, nil
}

// The paper's range for the shorter side in its scale augmentation.
const (
	scaleAugMin = 256
	scaleAugMax = 480
)

func (p *FolderPipeline) Len() int                   { return len(p.idx.Files) }
func (p *FolderPipeline) NumClasses() int            { return len(p.idx.Classes) }
func (p *FolderPipeline) OutputShape() (c, h, w int) { return 3, p.opt.Size, p.opt.Size }

// Path is the file of example i.
func (p *FolderPipeline) Path(i int) string {
	return filepath.Join(p.dir, filepath.FromSlash(p.idx.Files[i]))
}

func (p *FolderPipeline) NewWorker() PipelineWorker { return &folderWorker{p: p} }

type folderWorker struct {
	p       *FolderPipeline
	buf     []byte
	img     vision.Image
	dec     vision.Decoder
	scratch vision.Scratch
	work    augmentWork
}

// readFile reads path into the worker's reusable buffer.
func (w *folderWorker) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := int(fi.Size())
	if cap(w.buf) < n {
		w.buf = make([]byte, n+n/4)
	}
	b := w.buf[:n]
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (w *folderWorker) Load(index int, rng *rand.Rand, dst []float32) (int, error) {
	p := w.p
	if index < 0 || index >= len(p.idx.Files) {
		return 0, fmt.Errorf("dataset imagenet: index %d out of range [0, %d)", index, len(p.idx.Files))
	}
	path := p.Path(index)
	data, err := w.readFile(path)
	if err != nil {
		return 0, &BadExampleError{Index: index, Path: path, Err: err}
	}
	if len(data) == 0 {
		return 0, &BadExampleError{Index: index, Path: path, Err: errors.New("empty file")}
	}
	o := p.opt
	if o.Transform == TransformRRC {
		if err := w.randomResizedCrop(data, rng, dst); err != nil {
			return 0, &BadExampleError{Index: index, Path: path, Err: err}
		}
	} else {
		// Evaluation sees the pixels Pillow decodes, as the models it may evaluate were trained on; the
		// scale augmentation takes the fast decode, whose differences are below its own noise.
		decode := vision.DecodeOptions{Exact: o.Transform == TransformCenter}
		if _, err := w.dec.DecodeScaled(data, &w.img, decode); err != nil {
			return 0, &BadExampleError{Index: index, Path: path, Err: err}
		}
		if o.Transform == TransformScale {
			err = w.scaleAugment(rng, dst)
		} else {
			err = vision.EvalCenter(dst, &w.img, o.Resize, o.Size, o.Mean, o.Std, &w.scratch)
		}
		if err != nil {
			return 0, fmt.Errorf("dataset imagenet: %s: %w", path, err)
		}
	}
	if o.Transform != TransformCenter {
		if o.PCALighting {
			vision.PCALighting(dst, o.Size, o.Size, rng, pcaAlphaStd, o.Std)
		}
		p.aug.erase(dst, 3, o.Size, o.Size, rng)
	}
	return int(p.idx.Labels[index]), nil
}

// scaleAugment is the paper's scale augmentation of the decoded image, with auto-augment when it is on.
func (w *folderWorker) scaleAugment(rng *rand.Rand, dst []float32) error {
	o := w.p.opt
	flip := rng.IntN(2) == 1
	if w.p.aug.policy == nil {
		return vision.TrainScaleAugment(dst, &w.img, rng, scaleAugMin, scaleAugMax, o.Size, flip, o.Mean, o.Std, &w.scratch)
	}
	if err := vision.TrainScaleAugmentPlanes(&w.work.planes, &w.img, rng, scaleAugMin, scaleAugMax, o.Size, flip, &w.scratch); err != nil {
		return err
	}
	return w.autoAugment(rng, dst)
}

// autoAugment runs the policy on the 8-bit crop in w.work.planes and normalises the result into dst.
func (w *folderWorker) autoAugment(rng *rand.Rand, dst []float32) error {
	o := w.p.opt
	w.p.aug.autoAugment(&w.work, rng)
	return vision.PlanesToCHW(dst, &w.work.planes, o.Mean, o.Std, &w.scratch)
}

// randomResizedCrop chooses the crop window on the full-size image (from its header), then decodes at the
// largest JPEG reduction (1/2, 1/4, 1/8) that still leaves the window at least the output size, and only
// the blocks around the window, and resamples the window from there: large images with small crops skip
// most of the decoding work.
func (w *folderWorker) randomResizedCrop(data []byte, rng *rand.Rand, dst []float32) error {
	o := w.p.opt
	fw, fh, _, err := vision.DecodeConfig(data)
	if err != nil {
		return err
	}
	flip := rng.IntN(2) == 1
	r := vision.RandomResizedCropRect(fw, fh, rng, 0.08, 1, 3.0/4, 4.0/3)
	hint := vision.DecodeOptions{MinW: ceilDiv(fw*o.Size, r.W), MinH: ceilDiv(fh*o.Size, r.H), Window: r}
	if _, err := w.dec.DecodeScaled(data, &w.img, hint); err != nil {
		return err
	}
	r = vision.ReducedRect(r, fw, fh, w.img.W, w.img.H)
	if w.p.aug.policy == nil {
		return vision.CropToCHW(dst, &w.img, r, o.Size, flip, o.Mean, o.Std, &w.scratch)
	}
	// Auto-augment works on the 8-bit crop: resample to it, augment, then normalise.
	if err := vision.CropToPlanes(&w.work.planes, &w.img, r, o.Size, flip, &w.scratch); err != nil {
		return err
	}
	return w.autoAugment(rng, dst)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// pcaAlphaStd is the standard deviation of the PCA lighting coefficients (AlexNet's 0.1).
const pcaAlphaStd = 0.1
