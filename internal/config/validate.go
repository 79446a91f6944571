package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"resnet/internal/model"
	"resnet/internal/suggest"
	"resnet/internal/vision"
)

// FieldError reports one invalid setting. Its text reads
// `config: train.batch_size must be > 0 (got -3) in configs/resnet50.yaml line 12`.
type FieldError struct {
	Key    string // dotted key, e.g. "train.batch_size"
	Reason string // what is wrong and what is allowed, e.g. "must be > 0 (got -3)"
	// Origin says where the value came from: "in configs/foo.yaml line 3", "(from RESNET_TRAIN_LR)" or
	// "(from --set train.lr=-1)". Validate leaves it empty; Load fills it in.
	Origin string
}

func (e *FieldError) Error() string {
	msg := "config: " + e.Key + " " + e.Reason
	if e.Origin != "" {
		msg += " " + e.Origin
	}
	return msg
}

// Validate checks every value of c against its allowed range and returns all problems found (joined with
// errors.Join, each a *FieldError), or nil.
func Validate(c Config) error {
	errs, _ := validate(c)
	return joinFieldErrors(errs)
}

func joinFieldErrors(fes []*FieldError) error {
	if len(fes) == 0 {
		return nil
	}
	errs := make([]error, len(fes))
	for i, fe := range fes {
		errs[i] = fe
	}
	return errors.Join(errs...)
}

// problems collects field errors, at most one per key: the first problem found with a value is the one
// worth reporting. Warnings are settings that are allowed but probably not what was meant.
type problems struct {
	list     []*FieldError
	warnings []*FieldError
	seen     map[string]bool
}

func (p *problems) warn(key, reason string) {
	p.warnings = append(p.warnings, &FieldError{Key: key, Reason: reason})
}

func (p *problems) add(key, reason string) {
	if p.seen[key] {
		return
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[key] = true
	p.list = append(p.list, &FieldError{Key: key, Reason: reason})
}

func (p *problems) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	p.add(key, "must be one of "+strings.Join(allowed, ", ")+" (got "+strconv.Quote(got)+")")
}

// choice is oneOf with a hint when got is close to an allowed value, or is another program's name for one
// (aliases maps such names, e.g. PyTorch's, to the value): `must be one of fp32, bf16, fp16 (got "bfloat16");
// did you mean bf16?`.
func (p *problems) choice(key, got string, aliases map[string]string, allowed ...string) {
	if slices.Contains(allowed, got) {
		return
	}
	reason := "must be one of " + strings.Join(allowed, ", ") + " (got " + strconv.Quote(got) + ")"
	lower := strings.ToLower(got)
	near, d := suggest.Closest(lower, allowed)
	if a, ok := aliases[lower]; ok {
		near, d = a, 0
	}
	if near != "" && d <= max(1, len(got)/4) {
		reason += "; did you mean " + near + "?"
	}
	p.add(key, reason)
}

func got(v any) string { return " (got " + formatValue(v) + ")" }

var (
	devices       = []string{"auto", "cpu", "cuda"}
	shortcuts     = []string{"A", "B", "C"}
	datasets      = []string{"synthetic", "cifar10", "cifar100", "imagenet"}
	scheduleTypes = []string{"step", "cosine", "constant"}
	precisions    = []string{"fp32", "bf16", "fp16"}
	layouts       = []string{"nchw", "nhwc"}
	// PyTorch's names (torch.bfloat16, torch.channels_last, ...) for the values of cuda.precision and
	// cuda.layout.
	precisionAliases = map[string]string{"float32": "fp32", "float": "fp32", "f32": "fp32", "bfloat16": "bf16",
		"float16": "fp16", "half": "fp16", "f16": "fp16"}
	layoutAliases = map[string]string{"channels_last": "nhwc", "contiguous_format": "nchw", "contiguous": "nchw"}
)

func validate(c Config) (errs, warnings []*FieldError) {
	var p problems

	// Non-finite numbers first, so that range checks below never talk about NaN.
	cv := reflect.ValueOf(c)
	for _, key := range keys.order {
		s := keys.settings[key]
		if k := s.typ.Kind(); k == reflect.Float32 || k == reflect.Float64 {
			f := cv.FieldByIndex(s.index).Float()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				p.add(key, "must be a finite number"+got(f))
			}
		}
	}

	if c.Name == "" {
		p.add("name", "must not be empty (it names the run directory runs/<name>)")
	} else if strings.ContainsAny(c.Name, `/\`) || c.Name == "." || c.Name == ".." {
		p.add("name", "must be a plain directory name, without / or \\"+got(c.Name))
	}
	p.oneOf("device", c.Device, devices...)

	validateModel(&p, c.Model)

	d := c.Dataset
	p.oneOf("dataset.name", d.Name, datasets...)
	switch d.Name {
	case "synthetic":
		if d.TrainSize <= 0 {
			p.add("dataset.train_size", "must be > 0"+got(d.TrainSize))
		}
		if d.TestSize <= 0 {
			p.add("dataset.test_size", "must be > 0"+got(d.TestSize))
		}
	case "cifar10", "cifar100", "imagenet":
		if d.Root == "" {
			p.add("dataset.root", "must be set for dataset.name "+d.Name+" (the directory that holds the data)")
		}
	}
	if d.Workers < 0 {
		p.add("dataset.workers", "must be >= 0 (0 means one per CPU)"+got(d.Workers))
	}
	if d.ValSize < 0 {
		p.add("dataset.val_size", "must be >= 0 (0: no validation split)"+got(d.ValSize))
	}
	if d.ValSize > 0 && d.Name != "cifar10" && d.Name != "cifar100" {
		p.add("dataset.val_size", "is only used by cifar10 and cifar100 (dataset.name is "+d.Name+")")
	}
	p.oneOf("dataset.eval_split", d.EvalSplit, "test", "val")
	if d.EvalSplit == "val" && (d.Name == "cifar10" || d.Name == "cifar100") && d.ValSize == 0 {
		p.add("dataset.eval_split", "val needs dataset.val_size > 0 for "+d.Name)
	}
	if d.CoarseLabels && d.Name != "cifar100" {
		p.add("dataset.coarse_labels", "is only used by cifar100 (dataset.name is "+d.Name+")")
	}
	p.oneOf("dataset.train_transform", d.TrainTransform, "rrc", "scale")
	if _, err := vision.ParseAutoAugment(d.AutoAugment); err != nil {
		var ae *vision.AutoAugmentError
		if errors.As(err, &ae) {
			p.add("dataset.auto_augment", ae.Reason)
		} else {
			p.add("dataset.auto_augment", err.Error())
		}
	}
	if !(d.RandomErasing >= 0 && d.RandomErasing <= 1) {
		p.add("dataset.random_erasing", "must be in [0, 1], the probability of erasing a box of a training image (0 turns it off)"+got(d.RandomErasing))
	}
	if d.ImageSize <= 0 {
		p.add("dataset.image_size", "must be > 0"+got(d.ImageSize))
	}
	if d.ResizeSize < d.ImageSize {
		p.add("dataset.resize_size", fmt.Sprintf("must be >= dataset.image_size (%d)", d.ImageSize)+got(d.ResizeSize))
	}
	validateNormalization(&p, d)

	t := c.Train
	if t.BatchSize <= 0 {
		p.add("train.batch_size", "must be > 0"+got(t.BatchSize))
	}
	if t.Epochs <= 0 {
		p.add("train.epochs", "must be > 0"+got(t.Epochs))
	}
	if !(t.TargetErr >= 0 && t.TargetErr < 1) {
		p.add("train.target_err", "must be in [0, 1), a fraction (0.07 is 7%; 0 trains every epoch)"+got(t.TargetErr))
	}
	if !(t.LR > 0) {
		p.add("train.lr", "must be > 0"+got(t.LR))
	}
	if !(t.Momentum >= 0 && t.Momentum < 1) {
		p.add("train.momentum", "must be in [0, 1)"+got(t.Momentum))
	}
	if !(t.WeightDecay >= 0) {
		p.add("train.weight_decay", "must be >= 0"+got(t.WeightDecay))
	}
	if t.LogEvery < 0 {
		p.add("train.log_every", "must be >= 0 (0 logs once per epoch)"+got(t.LogEvery))
	}
	p.oneOf("train.on_nonfinite", t.OnNonFinite, OnNonFiniteStop, OnNonFiniteSkip)
	if t.MaxNonFiniteSteps < 1 {
		p.add("train.max_nonfinite_steps", "must be >= 1 (skipped steps in a row before the run stops)"+got(t.MaxNonFiniteSteps))
	}
	validateSchedule(&p, t.Schedule, t.Epochs)
	validateLossScale(&p, t)
	if !(t.LabelSmoothing >= 0 && t.LabelSmoothing < 1) {
		p.add("train.label_smoothing", "must be in [0, 1) (0.1 is the usual; 0 turns it off)"+got(t.LabelSmoothing))
	}
	for _, a := range []struct {
		key string
		v   float64
	}{{"train.mixup_alpha", t.MixupAlpha}, {"train.cutmix_alpha", t.CutMixAlpha}} {
		if !(a.v >= 0 && a.v <= 1e6) {
			p.add(a.key, "must be >= 0, the Beta(alpha, alpha) parameter (0 turns it off)"+got(a.v))
		}
	}
	switch {
	case t.AccumulateSteps < 1:
		p.add("train.accumulate_steps", "must be >= 1 (1: no accumulation)"+got(t.AccumulateSteps))
	case t.BatchSize > 0 && t.BatchSize%t.AccumulateSteps != 0:
		p.add("train.accumulate_steps", fmt.Sprintf("must divide train.batch_size %d into equal micro-batches", t.BatchSize)+
			got(t.AccumulateSteps))
	}
	if !(t.EMADecay >= 0 && t.EMADecay < 1) {
		p.add("train.ema_decay", "must be in [0, 1) (0.9998 is typical; 0 turns the average off)"+got(t.EMADecay))
	}
	if t.EMAEvery < 1 {
		p.add("train.ema_every", "must be >= 1, the steps between updates of the average"+got(t.EMAEvery))
	}
	if !(t.MixProb >= 0 && t.MixProb <= 1) {
		p.add("train.mix_prob", "must be in [0, 1], the share of batches mixed"+got(t.MixProb))
	}

	if c.Eval.BatchSize <= 0 {
		p.add("eval.batch_size", "must be > 0"+got(c.Eval.BatchSize))
	}
	if c.Eval.Every < 1 {
		p.add("eval.every", "must be >= 1 (epochs)"+got(c.Eval.Every))
	}
	if c.Checkpoint.Every < 1 {
		p.add("checkpoint.every", "must be >= 1 (epochs)"+got(c.Checkpoint.Every))
	}
	if c.Checkpoint.Keep < 1 {
		p.add("checkpoint.keep", "must be >= 1"+got(c.Checkpoint.Keep))
	}
	validateCUDA(&p, c.CUDA, c.Device)
	if c.CUDA.Graphs && c.Model.Dropout > 0 {
		p.add("cuda.graphs", "true cannot run model.dropout: a replayed step would repeat the recorded step's "+
			"dropout masks; set cuda.graphs: false, or model.dropout: 0")
	}
	return p.list, p.warnings
}

// validateModel checks arch and depth with the model package's name table, the one every command uses.
func validateModel(p *problems, m ModelConfig) {
	s, err := model.Resolve(m.Arch, m.Depth)
	if err == nil && m.Dropout > 0 && m.Dropout < 1 && !s.TakesDropout() {
		p.add("model.dropout", "needs pre-activation basic units (cifar_wrn, cifar_preact_resnet below 164), "+
			"and "+s.Name+" has none: set model.dropout: 0"+got(m.Dropout))
	}
	if err != nil {
		var ae *model.ArchError
		if errors.As(err, &ae) {
			p.add("model."+ae.Field, ae.Reason)
		} else {
			p.add("model.arch", "does not build: "+err.Error())
		}
	}
	if m.Shortcut != "" {
		p.oneOf("model.shortcut", m.Shortcut, shortcuts...)
	}
	if m.NumClasses < 0 {
		p.add("model.num_classes", "must be >= 0 (0 takes the dataset's)"+got(m.NumClasses))
	}
	if !(m.Dropout >= 0 && m.Dropout < 1) {
		p.add("model.dropout", "must be >= 0 and < 1 (the probability of dropping an element; 0 drops nothing)"+got(m.Dropout))
	}
}

// validateCUDA checks the activation format. A format other than fp32 NCHW runs on the cuda backend only;
// with device auto, opening the device refuses to fall back to the CPU for it (backend.OpenExplained).
func validateCUDA(p *problems, c CUDAConfig, device string) {
	p.choice("cuda.precision", c.Precision, precisionAliases, precisions...)
	p.choice("cuda.layout", c.Layout, layoutAliases, layouts...)
	if device != "cpu" {
		return
	}
	if c.Precision != "fp32" && slices.Contains(precisions, c.Precision) {
		p.add("cuda.precision", c.Precision+" needs the cuda backend (device is cpu, which computes in fp32): "+
			"set device: cuda, or cuda.precision: fp32")
	}
	if c.Layout != "nchw" && slices.Contains(layouts, c.Layout) {
		p.add("cuda.layout", c.Layout+" needs the cuda backend (device is cpu, which keeps activations nchw): "+
			"set device: cuda, or cuda.layout: nchw")
	}
	if c.Graphs {
		p.add("cuda.graphs", "true needs the cuda backend (device is cpu, which has no CUDA graphs): "+
			"set device: cuda, or cuda.graphs: false")
	}
}

func validateSchedule(p *problems, s ScheduleConfig, epochs int) {
	p.oneOf("train.schedule.type", s.Type, scheduleTypes...)
	// Milestones and gamma only drive a step schedule; a preset's milestones stay harmless when a user
	// switches it to cosine.
	if s.Type == "step" {
		for i, m := range s.Milestones {
			switch {
			case m <= 0:
				p.add("train.schedule.milestones", "must each be > 0"+got(s.Milestones))
			case i > 0 && m <= s.Milestones[i-1]:
				p.add("train.schedule.milestones", "must be strictly increasing"+got(s.Milestones))
			}
		}
		if n := len(s.Milestones); n > 0 && epochs > 0 && s.Milestones[n-1] >= epochs {
			p.warn("train.schedule.milestones", formatValue(s.Milestones)+" include epochs at or past train.epochs ("+
				strconv.Itoa(epochs)+"); those rate drops never happen")
		}
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			p.add("train.schedule.gamma", "must be in (0, 1]"+got(s.Gamma))
		}
	}
	if !(s.WarmupEpochs >= 0) {
		p.add("train.schedule.warmup_epochs", "must be >= 0"+got(s.WarmupEpochs))
	} else if epochs > 0 && s.WarmupEpochs >= float64(epochs) {
		p.add("train.schedule.warmup_epochs", "must be < train.epochs ("+strconv.Itoa(epochs)+")"+
			got(s.WarmupEpochs))
	}
	if !(s.WarmupStart >= 0 && s.WarmupStart < 1) {
		p.add("train.schedule.warmup_start", "must be in [0, 1), the warm-up's first rate as a fraction of train.lr"+got(s.WarmupStart))
	}
	if !(s.WarmStartLR >= 0) {
		p.add("train.schedule.warm_start_lr", "must be >= 0 (0 turns the warm start off)"+got(s.WarmStartLR))
	} else if s.WarmStartLR > 0 && !(s.WarmStartUntilErr > 0 && s.WarmStartUntilErr <= 1) {
		p.add("train.schedule.warm_start_until_err", "must be in (0, 1] when train.schedule.warm_start_lr > 0"+
			got(s.WarmStartUntilErr))
	}
}

// validateNormalization checks dataset.mean, dataset.std and dataset.norm_scale: both lists or neither, one
// value per input channel (3), positive finite deviations, and values that fit the scale they are said to
// be written in (torchvision's 0..1 constants under the default 255 are a mistake worth naming).
func validateNormalization(p *problems, d DatasetConfig) {
	if d.NormScale != 1 && d.NormScale != 255 {
		p.add("dataset.norm_scale", "must be 255 (dataset.mean and dataset.std in pixel values 0..255) or 1 (in 0..1, as torchvision writes them)"+got(d.NormScale))
		return
	}
	switch {
	case len(d.Mean) == 0 && len(d.Std) == 0:
		return
	case len(d.Mean) == 0 || len(d.Std) == 0:
		p.add("dataset.mean", "and dataset.std must be set together (or neither, for the data set's own normalisation)")
		return
	}
	for _, l := range []struct {
		key  string
		vals []float64
	}{{"dataset.mean", d.Mean}, {"dataset.std", d.Std}} {
		if len(l.vals) != 3 {
			p.add(l.key, "must have one value per input channel, 3"+got(l.vals))
			return
		}
	}
	for i := range 3 {
		if !(d.Std[i] > 0) {
			p.add(fmt.Sprintf("dataset.std[%d]", i), "must be > 0"+got(d.Std[i]))
		}
		if !(d.Mean[i] >= 0 && d.Mean[i] <= d.NormScale) {
			hint := ""
			if d.NormScale == 1 && d.Mean[i] <= 255 {
				hint = "; for values in pixels 0..255 set dataset.norm_scale: 255"
			}
			p.add(fmt.Sprintf("dataset.mean[%d]", i), fmt.Sprintf("must be in [0, %g], the scale dataset.norm_scale says%s", d.NormScale, hint)+got(d.Mean[i]))
		}
	}
	if d.NormScale == 255 && slices.Max(d.Std) <= 1 && slices.Max(d.Mean) <= 1 {
		p.add("dataset.std", "and dataset.mean look like torchvision's 0..1 constants, but dataset.norm_scale is 255 (pixel values); set dataset.norm_scale: 1"+got(d.Std))
	}
}
