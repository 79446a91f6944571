package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/jsonnum"
	"resnet/internal/model"
	"resnet/internal/sysmem"
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
	ema         bool
	device      string
	batchSize   int
	workers     int
}

// evalReport is the output of 'resnet eval --json'. The top-level scores are the ensemble's when several
// models are evaluated; Models lists each model's own.
type evalReport struct {
	Checkpoint  string `json:"checkpoint"`
	Model       string `json:"model"`
	Dataset     string `json:"dataset"`
	Split       string `json:"split"`
	Protocol    string `json:"protocol"`
	Scales      []int  `json:"scales,omitempty"`
	RecomputeBN int    `json:"recompute_bn_batches,omitempty"`
	Epoch       int    `json:"epoch"`
	Step        int64  `json:"step"`
	N           int    `json:"n"`
	evalScores
	Skipped  int               `json:"skipped_images"`
	Models   []evalModelReport `json:"models"`
	PerClass []eval.ClassScore `json:"per_class,omitempty"`
}

type evalModelReport struct {
	Checkpoint string `json:"checkpoint"`
	Model      string `json:"model"`
	// EMA: the scores are those of the run's average of the weights (--ema).
	EMA   bool  `json:"ema,omitempty"`
	Epoch int   `json:"epoch"`
	Step  int64 `json:"step"`
	evalScores
}

// evalScores are the scores of a model, or of the ensemble, in a report. A net whose outputs overflowed
// has a NaN or infinite loss: JSON has no such number, so it is null, and loss_finite says so.
type evalScores struct {
	Loss       jsonnum.Float `json:"loss"`
	LossFinite bool          `json:"loss_finite"`
	Top1Err    float64       `json:"top1_err"`
	Top5Err    float64       `json:"top5_err"`
	// NonFinite counts the images with a NaN or infinite output, each counted wrong.
	NonFinite int `json:"nonfinite_outputs"`
}

func newEvalScores(sc eval.Scores) evalScores {
	return evalScores{Loss: sc.Loss, LossFinite: sc.Loss.Finite(), Top1Err: sc.Top1Err, Top5Err: sc.Top5Err, NonFinite: sc.NonFinite}
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
image). Softmax probabilities are averaged over crops, flips, scales and the models of --ensemble.

An image whose output is NaN or infinite counts as wrong at top-1 and top-5, and the report says how many
there were; the loss is then not finite (null in --json, with loss_finite: false).`,
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
	f.BoolVar(&o.ema, "ema", false, "score the average of the weights the run kept (train.ema_decay) instead of the weights")
	f.StringVar(&o.device, "device", "", "device: auto, cpu or cuda (default: the run's config); cpu evaluates in fp32 NCHW whatever cuda.precision and cuda.layout the run trained with")
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

// check checks the flags and returns the protocol chosen.
func (o *evalOptions) check() (eval.Protocol, error) {
	if o.checkpoint == "" {
		return eval.Protocol{}, usageError{errors.New("--checkpoint is required")}
	}
	proto, err := o.protocol()
	if err != nil {
		return proto, err
	}
	if o.recomputeBN < 0 {
		return proto, usageError{fmt.Errorf("--recompute-bn must be >= 0 (got %d)", o.recomputeBN)}
	}
	for i, p := range o.ensemble {
		if strings.TrimSpace(p) == "" {
			return proto, usageError{fmt.Errorf("--ensemble entry %d of %d is empty: give run directories or checkpoint files separated by commas", i+1, len(o.ensemble))}
		}
	}
	return proto, nil
}

// evalModel is one checkpoint loaded for evaluation.
type evalModel struct {
	path string
	// ema: the net takes the checkpoint's average of the weights (eval --ema).
	ema bool
	ck  *train.Checkpoint
	cfg *config.Config
	net *model.Net
}

func runEval(e *env, o *evalOptions) error {
	proto, err := o.check()
	if err != nil {
		return err
	}
	models, err := loadEvalModels(o)
	if err != nil {
		return err
	}
	cfg := models[0].cfg
	data, err := train.OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		return err
	}
	dev, err := openDevice(e, cfg.Device, cfg.CUDA)
	if err != nil {
		return err
	}
	s := newScorer(e, o, proto, cfg, data, dev)
	if s.budget, err = train.MemoryBudget(dev, e.hostMemory); err != nil {
		return err
	}
	rep, err := s.scoreAll(models)
	if err != nil {
		return err
	}
	return writeEvalReport(e.stdout, o.json, rep, data.EvalSet)
}

// loadEvalModels reads --checkpoint and the checkpoints of --ensemble, which must have been trained on
// the same data set.
func loadEvalModels(o *evalOptions) ([]*evalModel, error) {
	first, err := loadEvalConfig(o, o.checkpoint)
	if err != nil {
		return nil, err
	}
	models := []*evalModel{first}
	for _, p := range o.ensemble {
		m, err := loadEvalConfig(o, p)
		if err != nil {
			return nil, err
		}
		a, b := m.cfg.Dataset, first.cfg.Dataset
		if a.Name != b.Name || a.Root != b.Root {
			return nil, fmt.Errorf("ensemble: %s was trained on %s (%s), %s on %s (%s)", m.path, a.Name, a.Root, first.path, b.Name, b.Root)
		}
		models = append(models, m)
	}
	return models, nil
}

// scorer scores models one at a time under one protocol on one device.
type scorer struct {
	proto       eval.Protocol
	data        *train.Data
	dev         backend.Device
	capacity    int // examples the net holds at once
	workers     int
	recomputeBN int
	perClass    bool
	opt         eval.Options
	budget      sysmem.Budget
	// batchSetting names what sets capacity: --batch-size, eval.batch_size, or the train.batch_size of
	// --recompute-bn.
	batchSetting string
	// multiScale is the --multi-scale flag as given.
	multiScale string
}

func newScorer(e *env, o *evalOptions, proto eval.Protocol, cfg *config.Config, data *train.Data, dev backend.Device) *scorer {
	s := &scorer{proto: proto, data: data, dev: dev, recomputeBN: o.recomputeBN, perClass: o.perClass}
	s.workers = cfg.Dataset.Workers
	if o.workers > 0 {
		s.workers = o.workers
	}
	s.capacity = cfg.Eval.BatchSize
	s.batchSetting, s.multiScale = "eval.batch_size", o.multiScale
	if o.batchSize != 0 {
		s.batchSetting = "--batch-size"
	}
	switch proto.Kind {
	case eval.TenCrop:
		s.capacity = max(s.capacity, 10)
	case eval.MultiScale:
		// The fully-convolutional nets (one per image shape) hold the activations; the net itself only
		// holds the weights (and the BN recomputation's batches).
		s.capacity = 1
	}
	if o.recomputeBN > 0 && cfg.Train.BatchSize > s.capacity {
		s.capacity, s.batchSetting = cfg.Train.BatchSize, "train.batch_size"
	}
	s.opt = eval.Options{Protocol: proto, Workers: s.workers, Seed: cfg.Seed, Strict: cfg.Dataset.Strict, OnSkip: warnOnce(e)}
	return s
}

// warnOnce reports each unreadable image on stderr once.
func warnOnce(e *env) func([]*dataset.BadExampleError) {
	warned := map[string]bool{}
	return func(bad []*dataset.BadExampleError) {
		for _, b := range bad {
			if !warned[b.Error()] {
				warned[b.Error()] = true
				fmt.Fprintf(e.stderr, "skipping %v\n", b)
			}
		}
	}
}

// scoreAll scores each model, then the average of their probabilities (the ensemble's scores, or the one
// model's again).
func (s *scorer) scoreAll(models []*evalModel) (*evalReport, error) {
	first := models[0]
	rep := &evalReport{
		Checkpoint: first.path, Dataset: first.cfg.Dataset.Name, Split: s.data.EvalSplit,
		Protocol: s.proto.Kind, Scales: s.proto.Scales, RecomputeBN: s.recomputeBN,
		Epoch: first.ck.State.Epoch, Step: first.ck.State.Step,
	}
	var probs []*eval.Probs
	var names []string
	for _, m := range models {
		p, mr, err := s.score(m)
		if err != nil {
			return nil, err
		}
		probs = append(probs, p)
		names = append(names, mr.Model)
		rep.Models = append(rep.Models, mr)
	}
	all, err := eval.Average(probs)
	if err != nil {
		return nil, err
	}
	sc, classes, err := eval.Score(all, s.data.EvalSet.ClassNames)
	if err != nil {
		return nil, err
	}
	rep.Model = strings.Join(names, "+")
	rep.N, rep.Skipped = sc.N, sc.Skipped
	rep.evalScores = newEvalScores(sc)
	if s.perClass {
		rep.PerClass = classes
	}
	return rep, nil
}

// score builds one model, recomputes its BN statistics when asked, and collects its probabilities. The
// net is freed before the next is built: an ensemble needs only the probabilities.
func (s *scorer) score(m *evalModel) (*eval.Probs, evalModelReport, error) {
	defer m.free()
	spec, err := m.spec(s.data)
	if err != nil {
		return nil, evalModelReport{}, err
	}
	if err := s.checkMemory(spec, m.cfg.Dataset); err != nil {
		return nil, evalModelReport{}, err
	}
	if err := m.build(s.dev, spec, s.capacity); err != nil {
		return nil, evalModelReport{}, err
	}
	if s.recomputeBN > 0 {
		if err := eval.RecomputeBN(m.net, s.data.Train, s.recomputeBN, m.cfg.Train.BatchSize, m.cfg.Seed, s.workers); err != nil {
			return nil, evalModelReport{}, fmt.Errorf("%s: %w", m.path, err)
		}
	}
	p, err := eval.Collect(m.net, s.data.Eval, s.data.EvalSet, s.opt)
	if err != nil {
		return nil, evalModelReport{}, fmt.Errorf("%s: %w", m.path, err)
	}
	sc, _, err := eval.Score(p, nil)
	if err != nil {
		return nil, evalModelReport{}, err
	}
	name := m.net.Spec.Name
	if m.ema {
		name += " (average)"
	}
	return p, evalModelReport{
		Checkpoint: m.path, Model: name, EMA: m.ema, Epoch: m.ck.State.Epoch, Step: m.ck.State.Step,
		evalScores: newEvalScores(sc),
	}, nil
}

// checkMemory refuses a model whose evaluation does not fit the memory the command may use, naming the
// batch size or the --multi-scale size that drives it.
func (s *scorer) checkMemory(spec model.Spec, d config.DatasetConfig) error {
	if err := s.checkBatchMemory(spec); err != nil {
		return train.ExplainInputSize(err, d)
	}
	if s.proto.Kind != eval.MultiScale {
		return nil
	}
	return s.checkMultiScaleMemory(spec)
}

// netNeed estimates the net at a batch capacity with the loaders of the protocol and of --recompute-bn.
func (s *scorer) netNeed(spec model.Spec, capacity int) (sysmem.Need, error) {
	act, _ := backend.ActivationFormat(s.dev)
	m, err := model.EstimateMemory(spec, capacity, act)
	if err != nil {
		return nil, err
	}
	var loader int64
	if s.proto.Kind != eval.MultiScale {
		// Ten crops of capacity/10 images take as much as capacity whole ones.
		loader = dataset.LoaderMemory(dataset.SizeOf(s.data.Eval), dataset.LoaderOptions{BatchSize: capacity, Workers: s.workers})
	}
	if s.recomputeBN > 0 {
		// Recomputing the statistics comes first, with a loader of its own.
		loader = max(loader, dataset.LoaderMemory(dataset.SizeOf(s.data.Train), dataset.LoaderOptions{BatchSize: capacity, Workers: s.workers}))
	}
	return append(m.Need(train.WorkspaceImages(s.budget)), sysmem.Part{Name: "data loaders", Bytes: loader, Host: true}), nil
}

// checkBatchMemory checks the net at its batch capacity, naming what sets the capacity.
func (s *scorer) checkBatchMemory(spec model.Spec) error {
	what := fmt.Sprintf("evaluating %s at %dx%d", spec.Name, spec.InputSize, spec.InputSize)
	need := func(capacity int) (sysmem.Need, error) { return s.netNeed(spec, capacity) }
	e, err := s.budget.CheckSetting(s.batchSetting, s.capacity, what, need)
	if err != nil || e == nil {
		return err
	}
	switch s.batchSetting {
	case "eval.batch_size":
		e.Advice = fmt.Sprintf("lower it with --batch-size (at most %s)", sysmem.Approx(e.Fits))
		return &config.FieldError{Key: e.Setting, Reason: e.Reason()}
	case "train.batch_size":
		e.Advice = "it sizes the batches of --recompute-bn: evaluate without it"
		return &config.FieldError{Key: e.Setting, Reason: e.Reason()}
	}
	return e
}

// checkMultiScaleMemory checks the fully-convolutional nets and the images of the multi-scale test,
// naming --multi-scale and the largest size that fits.
func (s *scorer) checkMultiScaleMemory(spec model.Spec) error {
	base, err := s.netNeed(spec, s.capacity)
	if err != nil {
		return err
	}
	// The base net holds only the weights here: one part.
	net := sysmem.Part{Name: "network"}
	for _, p := range base {
		if !p.Host {
			net.Bytes = sysmem.Add(net.Bytes, p.Bytes)
		}
	}
	largest := slices.Max(s.proto.Scales)
	act, _ := backend.ActivationFormat(s.dev)
	// The need with the sizes above top lowered to top, or to the nearest size below it the net takes.
	need := func(top int) (sysmem.Need, error) {
		scales := make([]int, len(s.proto.Scales))
		var n sysmem.Need
		var err error
		for try := 0; try < 64 && top-try >= 1; try++ {
			for i, sc := range s.proto.Scales {
				scales[i] = min(sc, top-try)
			}
			n, err = eval.MultiScaleNeed(spec, s.data.EvalSet, scales, s.workers, s.opt.MaxCachedValues, act)
			if ie := (*model.InputSizeError)(nil); top == largest || !errors.As(err, &ie) {
				break
			}
		}
		return append(sysmem.Need{net}, n...), err
	}
	what := fmt.Sprintf("the multi-scale test of %s at %dx%d", spec.Name, largest, largest)
	if s.data.EvalSet.Files != nil {
		what = fmt.Sprintf("the multi-scale test of %s at %dx%d (4:3 images)", spec.Name, largest*4/3, largest)
	}
	e, err := s.budget.CheckSetting("--multi-scale", largest, what, need)
	if err != nil {
		return fmt.Errorf("--multi-scale %s: %w", s.multiScale, err)
	}
	if e == nil {
		return nil
	}
	e.Value = s.multiScale
	if e.Fits > 0 {
		e.Advice = fmt.Sprintf("lower its largest size to at most %s", sysmem.Approx(e.Fits))
	}
	return e
}

// loadEvalConfig reads a checkpoint and its run's config with the command's overrides.
func loadEvalConfig(o *evalOptions, where string) (*evalModel, error) {
	ck, err := train.OpenCheckpoint(where)
	if err != nil {
		return nil, err
	}
	path := ck.Path
	var sets []string
	if o.device != "" {
		sets = append(sets, "device="+o.device)
	}
	if o.device == "cpu" { // the CPU evaluates a run trained in bf16, fp16 or NHWC in fp32 NCHW: its weights are f32
		sets = append(sets, "cuda.precision=fp32", "cuda.layout=nchw")
	}
	if o.batchSize != 0 {
		sets = append(sets, fmt.Sprintf("eval.batch_size=%d", o.batchSize))
	}
	cfg, err := config.Load(config.Source{Data: ck.Config, Label: path + " (config metadata)", Sets: sets})
	if err != nil {
		return nil, err
	}
	return &evalModel{path: path, ck: ck, cfg: &cfg, ema: o.ema}, nil
}

// spec is the model's spec for the data's classes and image size.
func (m *evalModel) spec(data *train.Data) (model.Spec, error) {
	_, ih, _ := data.Eval.OutputShape()
	spec, err := train.SpecFor(m.cfg.Model, data.Eval.NumClasses(), ih)
	if err != nil {
		return spec, fmt.Errorf("%s: %w", m.path, err)
	}
	return spec, nil
}

// build allocates the model on dev and restores its weights.
func (m *evalModel) build(dev backend.Device, spec model.Spec, capacity int) error {
	net, err := model.Build(dev, spec, capacity)
	if err != nil {
		return fmt.Errorf("%s: %w", m.path, train.ExplainInputSize(err, m.cfg.Dataset))
	}
	m.net = net
	if m.ema {
		return m.ck.RestoreEMA(net)
	}
	return m.ck.Restore(net, false)
}

// free releases the model's net, if built.
func (m *evalModel) free() {
	if m.net != nil {
		m.net.Free()
		m.net = nil
	}
}

// writeEvalReport prints the report as JSON or as a table.
func writeEvalReport(w io.Writer, asJSON bool, rep *evalReport, set *eval.Set) error {
	if asJSON {
		return printJSON(w, rep)
	}
	printEvalReport(w, rep, set)
	return nil
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
	for _, m := range rep.Models {
		if m.NonFinite > 0 {
			fmt.Fprintf(w, "\n%s: %d of %d images had a NaN or infinite output, counted wrong at top-1 and top-5\n", m.Model, m.NonFinite, rep.N)
		}
	}
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
