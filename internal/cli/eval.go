package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/model"
	"resnet/internal/train"
)

type evalOptions struct {
	checkpoint  string
	ensemble    []string
	centerCrop  bool
	tenCrop     bool
	multiScale  string
	recomputeBN int
	perClass    bool
	json        bool
	device      string
	batchSize   int
	workers     int
}

// evalReport is the output of 'resnet eval --json'. The top-level scores are the ensemble's when several
// models are evaluated; Models lists each model's own.
type evalReport struct {
	Checkpoint  string            `json:"checkpoint"`
	Model       string            `json:"model"`
	Dataset     string            `json:"dataset"`
	Split       string            `json:"split"`
	Protocol    string            `json:"protocol"`
	Scales      []int             `json:"scales,omitempty"`
	RecomputeBN int               `json:"recompute_bn_batches,omitempty"`
	Epoch       int               `json:"epoch"`
	Step        int64             `json:"step"`
	N           int               `json:"n"`
	Loss        float64           `json:"loss"`
	Top1Err     float64           `json:"top1_err"`
	Top5Err     float64           `json:"top5_err"`
	Skipped     int               `json:"skipped_images"`
	Models      []evalModelReport `json:"models"`
	PerClass    []eval.ClassScore `json:"per_class,omitempty"`
}

type evalModelReport struct {
	Checkpoint string  `json:"checkpoint"`
	Model      string  `json:"model"`
	Epoch      int     `json:"epoch"`
	Step       int64   `json:"step"`
	Loss       float64 `json:"loss"`
	Top1Err    float64 `json:"top1_err"`
	Top5Err    float64 `json:"top5_err"`
}

func newEvalCmd(e *env) *cobra.Command {
	o := &evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate checkpoints on their config's test set: 1-crop, 10-crop, multi-scale, ensembles",
		Long: `Evaluate a checkpoint (or an ensemble of them) on the evaluation split of its run's config and
print the top-1 and top-5 error and the loss.

Protocols (He et al. 2015): --center-crop (the default: shorter side resized to dataset.resize_size, the
central dataset.image_size crop; CIFAR images whole), --ten-crop (the four corner crops and the centre
crop, and their mirror images; for CIFAR, windows of the image padded by 4 pixels), and --multi-scale
(the fully-convolutional network on the whole image with its shorter side at each size, and on its mirror
image). Softmax probabilities are averaged over crops, flips, scales and the models of --ensemble.`,
		Example: `  resnet eval --checkpoint runs/demo
  resnet eval --checkpoint runs/r50 --ten-crop
  resnet eval --checkpoint runs/r50 --multi-scale 224,256,384,480,640 --recompute-bn 200
  resnet eval --checkpoint runs/r50 --ensemble runs/r101,runs/r152 --ten-crop --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runEval(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.checkpoint, "checkpoint", "", "run directory (its newest checkpoint) or checkpoint file")
	f.StringSliceVar(&o.ensemble, "ensemble", nil, "more run directories or checkpoints whose scores are averaged with --checkpoint's")
	f.BoolVar(&o.centerCrop, "center-crop", false, "1-crop protocol (the default)")
	f.BoolVar(&o.tenCrop, "ten-crop", false, "10-crop protocol: four corners and centre, and their mirror images")
	f.StringVar(&o.multiScale, "multi-scale", "", "fully-convolutional test at these shorter sides, comma-separated (paper: 224,256,384,480,640)")
	f.IntVar(&o.recomputeBN, "recompute-bn", 0, "re-estimate BN statistics over this many training batches first")
	f.BoolVar(&o.perClass, "per-class", false, "also print the top-1 error of every class")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.StringVar(&o.device, "device", "", "device: auto, cpu or cuda (default: the run's config)")
	f.IntVar(&o.batchSize, "batch-size", 0, "evaluation batch size in images or crops (default: eval.batch_size of the run)")
	f.IntVar(&o.workers, "workers", 0, "image loading goroutines (default: dataset.workers of the run)")
	return cmd
}

// protocol checks the protocol flags and returns the one chosen.
func (o *evalOptions) protocol() (eval.Protocol, error) {
	chosen := 0
	for _, set := range []bool{o.centerCrop, o.tenCrop, o.multiScale != ""} {
		if set {
			chosen++
		}
	}
	if chosen > 1 {
		return eval.Protocol{}, usageError{errors.New("choose one of --center-crop, --ten-crop and --multi-scale")}
	}
	switch {
	case o.tenCrop:
		return eval.Protocol{Kind: eval.TenCrop}, nil
	case o.multiScale != "":
		var scales []int
		for _, f := range strings.Split(o.multiScale, ",") {
			s, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || s < 1 {
				return eval.Protocol{}, usageError{fmt.Errorf("--multi-scale %q: %q is not a positive integer (want sizes like 224,256,384,480,640)", o.multiScale, f)}
			}
			scales = append(scales, s)
		}
		return eval.Protocol{Kind: eval.MultiScale, Scales: scales}, nil
	}
	return eval.Protocol{Kind: eval.CenterCrop}, nil
}

// evalModel is one checkpoint loaded for evaluation.
type evalModel struct {
	path string
	ck   *train.Checkpoint
	cfg  *config.Config
	net  *model.Net
}

func runEval(e *env, o *evalOptions) error {
	if o.checkpoint == "" {
		return usageError{errors.New("--checkpoint is required")}
	}
	proto, err := o.protocol()
	if err != nil {
		return err
	}
	if o.recomputeBN < 0 {
		return usageError{fmt.Errorf("--recompute-bn must be >= 0 (got %d)", o.recomputeBN)}
	}
	first, err := loadEvalConfig(o, o.checkpoint)
	if err != nil {
		return err
	}
	cfg := first.cfg
	data, err := train.OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		return err
	}
	dev, err := backend.Open(cfg.Device, backend.Options{Unfused: !cfg.CUDA.Fuse})
	if err != nil {
		return err
	}
	capacity := cfg.Eval.BatchSize
	switch proto.Kind {
	case eval.TenCrop:
		capacity = max(capacity, 10)
	case eval.MultiScale:
		// The fully-convolutional nets (one per image shape) hold the activations; the net itself only
		// holds the weights (and the BN recomputation's batches).
		capacity = 1
	}
	if o.recomputeBN > 0 {
		capacity = max(capacity, cfg.Train.BatchSize)
	}
	workers := cfg.Dataset.Workers
	if o.workers > 0 {
		workers = o.workers
	}
	models := []*evalModel{first}
	for _, p := range o.ensemble {
		m, err := loadEvalConfig(o, p)
		if err != nil {
			return err
		}
		if m.cfg.Dataset.Name != cfg.Dataset.Name || m.cfg.Dataset.Root != cfg.Dataset.Root {
			return fmt.Errorf("ensemble: %s was trained on %s (%s), %s on %s (%s)", m.path, m.cfg.Dataset.Name, m.cfg.Dataset.Root, first.path, cfg.Dataset.Name, cfg.Dataset.Root)
		}
		models = append(models, m)
	}
	defer func() {
		for _, m := range models {
			if m.net != nil {
				m.net.Free()
			}
		}
	}()
	opt := eval.Options{Protocol: proto, Workers: workers, Seed: cfg.Seed, Strict: cfg.Dataset.Strict}
	warned := map[string]bool{}
	opt.OnSkip = func(bad []*dataset.BadExampleError) {
		for _, b := range bad {
			if !warned[b.Error()] {
				warned[b.Error()] = true
				fmt.Fprintf(e.stderr, "skipping %v\n", b)
			}
		}
	}
	rep := evalReport{
		Checkpoint: first.path, Dataset: cfg.Dataset.Name, Split: data.EvalSplit,
		Protocol: proto.Kind, Scales: proto.Scales, RecomputeBN: o.recomputeBN,
		Epoch: first.ck.State.Epoch, Step: first.ck.State.Step,
	}
	var probs []*eval.Probs
	var names []string
	for _, m := range models {
		if err := m.build(dev, data, capacity); err != nil {
			return err
		}
		if o.recomputeBN > 0 {
			if err := eval.RecomputeBN(m.net, data.Train, o.recomputeBN, m.cfg.Train.BatchSize, m.cfg.Seed, workers); err != nil {
				return fmt.Errorf("%s: %w", m.path, err)
			}
		}
		p, err := eval.Collect(m.net, data.Eval, data.EvalSet, opt)
		if err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
		sc, _, err := eval.Score(p, nil)
		if err != nil {
			return err
		}
		probs = append(probs, p)
		names = append(names, m.net.Spec.Name)
		rep.Models = append(rep.Models, evalModelReport{
			Checkpoint: m.path, Model: m.net.Spec.Name, Epoch: m.ck.State.Epoch, Step: m.ck.State.Step,
			Loss: sc.Loss, Top1Err: sc.Top1Err, Top5Err: sc.Top5Err,
		})
		// Free each model before the next is built: an ensemble needs only the probabilities.
		m.net.Free()
		m.net = nil
	}
	all, err := eval.Average(probs)
	if err != nil {
		return err
	}
	sc, classes, err := eval.Score(all, data.EvalSet.ClassNames)
	if err != nil {
		return err
	}
	rep.Model = strings.Join(names, "+")
	rep.N, rep.Skipped = sc.N, sc.Skipped
	rep.Loss, rep.Top1Err, rep.Top5Err = sc.Loss, sc.Top1Err, sc.Top5Err
	if o.perClass {
		rep.PerClass = classes
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printEvalReport(e.stdout, &rep, data.EvalSet)
	return nil
}

// loadEvalConfig reads a checkpoint and its run's config with the command's overrides.
func loadEvalConfig(o *evalOptions, where string) (*evalModel, error) {
	path, err := train.FindCheckpoint(where)
	if err != nil {
		return nil, err
	}
	ck, err := train.LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	var sets []string
	if o.device != "" {
		sets = append(sets, "device="+o.device)
	}
	if o.batchSize != 0 {
		sets = append(sets, fmt.Sprintf("eval.batch_size=%d", o.batchSize))
	}
	cfg, err := config.Load(config.Source{Data: ck.Config, Label: path + " (config metadata)", Sets: sets})
	if err != nil {
		return nil, err
	}
	return &evalModel{path: path, ck: ck, cfg: &cfg}, nil
}

// build allocates the model on dev and restores its weights.
func (m *evalModel) build(dev backend.Device, data *train.Data, capacity int) error {
	_, ih, _ := data.Eval.OutputShape()
	spec, err := train.SpecFor(m.cfg.Model, data.Eval.NumClasses(), ih)
	if err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	net, err := model.Build(dev, spec, capacity)
	if err != nil {
		return err
	}
	m.net = net
	return m.ck.Restore(net, false)
}

func printEvalReport(w io.Writer, rep *evalReport, set *eval.Set) {
	proto := rep.Protocol
	switch {
	case rep.Protocol == eval.MultiScale:
		proto = fmt.Sprintf("multi-scale, shorter sides %v, with mirror images", rep.Scales)
	case set.Files != nil && rep.Protocol == eval.TenCrop:
		proto = fmt.Sprintf("10-crop (shorter side %d, %dx%d crops)", set.Resize, set.Crop, set.Crop)
	case set.Files != nil:
		proto = fmt.Sprintf("1-crop (shorter side %d, centre %dx%d)", set.Resize, set.Crop, set.Crop)
	}
	if rep.RecomputeBN > 0 {
		proto += fmt.Sprintf("; BN statistics recomputed over %d training batches", rep.RecomputeBN)
	}
	skipped := ""
	if rep.Skipped > 0 {
		skipped = fmt.Sprintf(" (%d unreadable, skipped)", rep.Skipped)
	}
	fmt.Fprintf(w, "data      %s %s split, %d images%s\nprotocol  %s\n\n", rep.Dataset, rep.Split, rep.N, skipped, proto)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tstep\ttop-1 err\ttop-5 err\tloss\t")
	for _, m := range rep.Models {
		fmt.Fprintf(tw, "%s\t%d\t%.2f%%\t%.2f%%\t%.4f\t\n", m.Model, m.Step, 100*m.Top1Err, 100*m.Top5Err, m.Loss)
	}
	if len(rep.Models) > 1 {
		fmt.Fprintf(tw, "ensemble of %d\t\t%.2f%%\t%.2f%%\t%.4f\t\n", len(rep.Models), 100*rep.Top1Err, 100*rep.Top5Err, rep.Loss)
	}
	tw.Flush()
	if len(rep.Models) == 1 {
		fmt.Fprintf(w, "\ncheckpoint %s\n", rep.Checkpoint)
	}
	if len(rep.PerClass) > 0 {
		fmt.Fprintln(w, "\nper class, worst first:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "class\tname\timages\ttop-1 err\t")
		for _, c := range eval.WorstClasses(rep.PerClass) {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%.2f%%\t\n", c.Class, c.Name, c.N, 100*c.Top1Err)
		}
		tw.Flush()
	}
}
