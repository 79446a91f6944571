package cli

// resnet predict: the classes a run's checkpoint (or an imported state_dict's run) gives images, with the
// evaluation's preprocessing.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/model"
	"resnet/internal/train"
	"resnet/internal/vision"
)

type predictOptions struct {
	checkpoint string
	top        int
	labels     string
	json       bool
	tenCrop    bool
	device     string
	batchSize  int
	workers    int
}

func newPredictCmd(e *env) *cobra.Command {
	o := &predictOptions{}
	cmd := &cobra.Command{
		Use:   "predict --checkpoint RUN IMAGE|DIR [...]",
		Short: "Classify images with a checkpoint: the top classes and their probabilities",
		Long: `predict runs a checkpoint (a run directory, its newest checkpoint, or a checkpoint file; 'resnet import'
makes one of a PyTorch state_dict) on image files and on the images (.jpg, .jpeg, .png) under directories,
and prints each image's top classes with their probabilities.

Images are prepared as 'resnet eval' prepares them: for a run on ImageNet-style folders, the shorter side
resized to dataset.resize_size and the central dataset.image_size crop; for a CIFAR or synthetic run, the
shorter side resized to the net's 32 pixels and the central square. Both are normalised as the run was.
--ten-crop averages the probabilities of the evaluation's ten crops instead.

Class names come from --labels (one name per line, in class-index order), else from the data set the run
was trained on when they are known without reading it (CIFAR-10's names, the synthetic set's, the class
folders of an ImageNet-style root/train); otherwise the indices alone are printed. An unreadable image is
reported on stderr (and as a line with an "error" in --json) and skipped; the others are still classified.`,
		Example: `  resnet predict --checkpoint runs/r50 cat.jpg photos/ --top 5
  resnet predict --checkpoint runs/r50 photos/ --json > predictions.jsonl
  resnet predict --checkpoint runs/cifar_resnet56 --labels names.txt --ten-crop plane.png`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runPredict(e, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.checkpoint, "checkpoint", "", "run directory (its newest checkpoint) or checkpoint file")
	f.IntVar(&o.top, "top", 5, "classes printed per image")
	f.StringVar(&o.labels, "labels", "", "class names, one per line in class-index order")
	f.BoolVar(&o.json, "json", false, "print JSON Lines: one object per image (path, indices, names, probabilities)")
	f.BoolVar(&o.tenCrop, "ten-crop", false, "average the ten crops of the evaluation protocol")
	f.StringVar(&o.device, "device", "", "device: auto, cpu or cuda (default: the run's config)")
	f.IntVar(&o.batchSize, "batch-size", 0, "images per batch (default: eval.batch_size of the run)")
	f.IntVar(&o.workers, "workers", 0, "image loading goroutines (default: dataset.workers of the run)")
	return cmd
}

// prediction is one line of 'resnet predict --json'.
type prediction struct {
	Path          string    `json:"path"`
	Indices       []int     `json:"indices,omitempty"`
	Names         []string  `json:"names,omitempty"`
	Probabilities []float32 `json:"probabilities,omitempty"`
	Error         string    `json:"error,omitempty"`
}

func runPredict(e *env, o *predictOptions, args []string) error {
	switch {
	case o.checkpoint == "":
		return usageError{errors.New("--checkpoint is required")}
	case o.top < 1:
		return usageError{fmt.Errorf("--top must be >= 1 (got %d)", o.top)}
	case o.batchSize < 0:
		return usageError{fmt.Errorf("--batch-size must be >= 0 (got %d)", o.batchSize)}
	}
	paths, err := imagePaths(args)
	if err != nil {
		return err
	}
	m, err := loadEvalConfig(&evalOptions{device: o.device, batchSize: o.batchSize}, o.checkpoint)
	if err != nil {
		return err
	}
	cfg := m.cfg
	_, size := train.InputFor(cfg.Dataset)
	spec, err := predictSpec(m, size)
	if err != nil {
		return err
	}
	names, err := classNames(o.labels, cfg.Dataset, spec.NumClasses)
	if err != nil {
		return err
	}
	in, err := predictInput(cfg.Dataset, cfg.Seed, paths, size, spec.NumClasses)
	if err != nil {
		return err
	}
	dev, err := openDevice(e, cfg.Device, cfg.CUDA)
	if err != nil {
		return err
	}
	// eval.batch_size counts crops, as in 'resnet eval'; a few images take no more than they need.
	proto, views := eval.Protocol{Kind: eval.CenterCrop}, 1
	if o.tenCrop {
		proto.Kind, views = eval.TenCrop, 10
	}
	capacity := min(max(cfg.Eval.BatchSize, views), views*len(paths))
	if err := m.build(dev, spec, capacity); err != nil {
		return err
	}
	defer m.free()
	workers := cfg.Dataset.Workers
	if o.workers > 0 {
		workers = o.workers
	}
	bad := map[int]error{}
	opt := eval.Options{Protocol: proto, Workers: workers, Seed: cfg.Seed, OnSkip: func(skipped []*dataset.BadExampleError) {
		for _, b := range skipped {
			if _, seen := bad[b.Index]; !seen {
				bad[b.Index] = b.Err
				fmt.Fprintf(e.stderr, "skipping %s: %v\n", paths[b.Index], b.Err)
			}
		}
	}}
	probs, err := eval.Collect(m.net, in.center, in.set, opt)
	if err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	if got, want := len(probs.Labels), len(paths)-len(bad); got != want {
		return fmt.Errorf("predict: internal error: %d images scored, %d expected", got, want)
	}
	if names == nil && !o.json {
		fmt.Fprintf(e.stderr, "note: the class names of %s are not at hand; printing class indices (give --labels FILE for names)\n", cfg.Dataset.Name)
	}
	return writePredictions(e.stdout, o, paths, bad, probs, names)
}

// predictSpec is the net of the checkpoint at input size side, with the class count of its classifier.
func predictSpec(m *evalModel, side int) (model.Spec, error) {
	spec, err := train.SpecFor(m.cfg.Model, 1, side)
	if err != nil {
		return spec, fmt.Errorf("%s: %w", m.path, err)
	}
	fc := spec.ClassifierName() + ".weight"
	t, ok := m.ck.Tensor(fc)
	if !ok || len(t.Shape) < 1 || t.Shape[0] < 1 {
		return spec, fmt.Errorf("checkpoint %s holds no classifier %s for %s: it is a checkpoint of another model", m.path, fc, spec.Name)
	}
	return train.SpecFor(m.cfg.Model, t.Shape[0], side)
}

// classNames reads --labels, or else the names the run's data set gives without reading it (nil when
// unknown).
func classNames(labels string, d config.DatasetConfig, classes int) ([]string, error) {
	if labels == "" {
		return train.ClassNames(d, classes), nil
	}
	f, err := os.Open(labels)
	if err != nil {
		return nil, fmt.Errorf("--labels: %w", err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		names = append(names, strings.TrimSpace(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--labels %s: %w", labels, err)
	}
	for len(names) > 0 && names[len(names)-1] == "" {
		names = names[:len(names)-1] // trailing blank lines
	}
	if len(names) != classes {
		return nil, fmt.Errorf("--labels %s has %d names (one per line), the net has %d classes", labels, len(names), classes)
	}
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("--labels %s: line %d is empty; every class needs a name", labels, i+1)
		}
	}
	return names, nil
}

// imagePaths expands the arguments: files as given, directories into the images under them (sorted, at
// any depth). A path that does not exist, or a directory with no image, is an error.
func imagePaths(args []string) ([]string, error) {
	var paths []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("predict: %w", err)
		}
		if !fi.IsDir() {
			paths = append(paths, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && dataset.IsImage(d.Name()) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("predict: %w", err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("predict: %s holds no images (.jpg, .jpeg or .png, at any depth)", a)
		}
		sort.Strings(found)
		paths = append(paths, found...)
	}
	return paths, nil
}

// predictData is what eval.Collect reads the images through: the 1-crop pipeline and the set the ten-crop
// protocol reads.
type predictData struct {
	center dataset.Pipeline
	set    *eval.Set
}

// predictInput prepares the images as the run's evaluation split is prepared: an ImageNet-style run's
// folder pipeline (resize, centre crop), or for a fixed-size data set the images brought to its size and
// normalised with the run's statistics (measured on its training split unless the config sets them).
func predictInput(d config.DatasetConfig, seed int64, paths []string, size, classes int) (*predictData, error) {
	labels := make([]int32, len(paths))
	if d.Name == "imagenet" {
		idx := &dataset.FolderIndex{Classes: make([]string, classes), Files: paths, Labels: labels}
		mean, std := vision.ImageNetMean, vision.ImageNetStd
		if m, s, set := d.Normalization(); set {
			mean, std = m, s
		}
		p, err := dataset.NewFolderPipeline("", idx, dataset.FolderPipelineOptions{
			Transform: dataset.TransformCenter, Size: size, Resize: d.ResizeSize, Mean: mean, Std: std,
		})
		if err != nil {
			return nil, err
		}
		set := &eval.Set{Files: &eval.FolderFiles{Index: idx}, Mean: mean, Std: std, Resize: d.ResizeSize, Crop: size}
		return &predictData{center: p, set: set}, nil
	}
	var norm dataset.Normalization
	var set bool
	if norm.Mean, norm.Std, set = d.Normalization(); !set {
		data, err := train.OpenData(d, seed)
		if err != nil {
			return nil, fmt.Errorf("predict: the run normalises its inputs with statistics of its training split, which cannot be read: %w "+
				"(set dataset.mean and dataset.std in the run's config, or import the weights with --mean and --std)", err)
		}
		norm.Mean, norm.Std = data.EvalSet.Mean, data.EvalSet.Std
	}
	src := &fileSource{paths: paths, size: size, classes: classes}
	p, err := dataset.SourcePipeline(src, false, norm)
	if err != nil {
		return nil, err
	}
	return &predictData{center: p, set: &eval.Set{Source: src, Mean: norm.Mean, Std: norm.Std}}, nil
}

// fileSource serves image files as a fixed-size data set: each decoded, its shorter side resized to size
// and the central size x size square kept, as the net's own data set has them. Labels are all 0.
type fileSource struct {
	paths         []string
	size, classes int
}

func (s *fileSource) Len() int                  { return len(s.paths) }
func (s *fileSource) NumClasses() int           { return s.classes }
func (s *fileSource) ImageShape() (c, h, w int) { return 3, s.size, s.size }

// Get decodes image i into dst (CHW). Calls may run concurrently: each has its own buffers.
func (s *fileSource) Get(i int, dst []uint8) (int, error) {
	bad := func(err error) (int, error) { return 0, &dataset.BadExampleError{Index: i, Path: s.paths[i], Err: err} }
	data, err := os.ReadFile(s.paths[i])
	if err == nil && len(data) == 0 {
		err = errors.New("empty file")
	}
	if err != nil {
		return bad(err)
	}
	var img, out vision.Image
	if _, err := vision.Decode(data, &img); err != nil {
		return bad(err)
	}
	var z vision.Resizer
	rw, rh := vision.ShorterSideSize(img.W, img.H, s.size)
	z.ResizeCrop(&out, &img, rw, rh, vision.CenterCropRect(rw, rh, s.size))
	plane := s.size * s.size
	for p := range plane {
		for c := range 3 {
			dst[c*plane+p] = out.Pix[3*p+c]
		}
	}
	return 0, nil
}

// writePredictions prints each image's top classes, in the order of paths; unreadable images get an error
// line in JSON (and were reported on stderr as they were met).
func writePredictions(w io.Writer, o *predictOptions, paths []string, bad map[int]error, probs *eval.Probs, names []string) error {
	k := probs.Classes
	top := min(o.top, k)
	row := 0
	for i, path := range paths {
		if err, skipped := bad[i]; skipped {
			if o.json {
				if err := printJSONLine(w, prediction{Path: path, Error: err.Error()}); err != nil {
					return err
				}
			}
			continue
		}
		p := probs.P[row*k : (row+1)*k]
		row++
		order := make([]int, k)
		for c := range order {
			order[c] = c
		}
		// Highest probability first; ties in class order, as torch.topk on a CPU tensor gives them.
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case p[a] > p[b]:
				return -1
			case p[a] < p[b]:
				return 1
			}
			return 0
		})
		pr := prediction{Path: path, Indices: order[:top]}
		for _, c := range pr.Indices {
			pr.Probabilities = append(pr.Probabilities, p[c])
			if names != nil {
				pr.Names = append(pr.Names, names[c])
			}
		}
		if o.json {
			if err := printJSONLine(w, pr); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(w, path)
		for j, c := range pr.Indices {
			name := ""
			if names != nil {
				name = "  " + names[c]
			}
			fmt.Fprintf(w, "  %7.3f%%  %4d%s\n", 100*pr.Probabilities[j], c, name)
		}
	}
	return nil
}
