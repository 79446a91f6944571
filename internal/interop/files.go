package interop

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/model"
	"resnet/internal/safetensors"
	"resnet/internal/train"
)

// Metadata keys of an exported file. PyTorch ignores them; Import checks arch and stride_in_1x1 against
// the config when they are present, since a resnet50 with the stride on its first 1x1 conv has the same
// tensor shapes as torchvision's but computes something else.
const (
	metaFormat      = "format"
	metaArch        = "arch"
	metaStrideIn1x1 = "stride_in_1x1"
	exportFormat    = "resnet-state-dict/1"
)

// Exported describes a file written by Export.
type Exported struct {
	Checkpoint string // the checkpoint file read
	Out        string
	Spec       model.Spec
	Step       int64
	Tensors    int
}

// Export writes the weights and BN buffers of a checkpoint (a file, or a run directory's newest) to out
// as a torchvision state_dict in safetensors format, replacing out atomically. The metadata records the
// architecture, the class count and where the weights came from.
func Export(checkpoint, out string) (Exported, error) {
	ck, err := train.OpenCheckpoint(checkpoint)
	if err != nil {
		return Exported{}, err
	}
	path := ck.Path
	cfg, err := config.Load(config.Source{Data: ck.Config, Label: path + " (config metadata)"})
	if err != nil {
		return Exported{}, err
	}
	// The class count is the classifier's: the data set need not be at hand to export.
	fc, ok := findClassifier(func(name string) ([]int, bool) {
		t, ok := ck.Tensor(name)
		return t.Shape, ok
	})
	if !ok {
		return Exported{}, fmt.Errorf("checkpoint %s: no %s tensor to take the class count from", path, classifierWeights())
	}
	spec, err := train.SpecFor(cfg.Model, fc.Classes, 0)
	if err != nil {
		return Exported{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	net, err := buildCPU(spec)
	if err != nil {
		return Exported{}, err
	}
	defer net.Free()
	if err := ck.Restore(net, false); err != nil {
		return Exported{}, err
	}
	f, err := StateDict(net)
	if err != nil {
		return Exported{}, fmt.Errorf("export %s: %w", path, err)
	}
	f.Metadata = map[string]string{
		metaFormat:        exportFormat,
		metaArch:          spec.Name,
		"num_classes":     strconv.Itoa(spec.NumClasses),
		metaStrideIn1x1:   strconv.FormatBool(spec.StrideIn1x1),
		"source":          path,
		"step":            strconv.FormatInt(ck.State.Step, 10),
		"epoch":           strconv.Itoa(ck.State.Epoch),
		"dataset":         cfg.Dataset.Name,
		"torchvision_fit": torchvisionFit(spec),
	}
	if spec.Shortcut != 0 { // Inception-ResNet has no shortcut option
		f.Metadata["shortcut"] = string(spec.Shortcut)
	}
	if err := safetensors.WriteFile(out, f); err != nil {
		return Exported{}, fmt.Errorf("export: %w", err)
	}
	return Exported{Checkpoint: path, Out: out, Spec: spec, Step: ck.State.Step, Tensors: len(f.Tensors)}, nil
}

// torchvisionFit says which PyTorch module loads an exported spec with strict=True: torchvision's class of
// a listed zoo name (resnet50, resnext50_32x4d, wide_resnet50_2, densenet121: torchvision's), or timm's
// model of an SE, pre-activation or Inception-ResNet one (seresnet50, seresnext50_32x4d, resnetv2_50,
// inception_resnet_v2), when the spec is that model.
func torchvisionFit(s model.Spec) string {
	if s.Name == "inception_resnet_v2" { // a net with no options that change its tensors
		return fmt.Sprintf("timm.create_model(%q, num_classes=%d)", s.Name, s.NumClasses)
	}
	std, err := model.Lookup(s.Name)
	if s.Block == model.DenseLayer && s.Family == model.ImageNet && err == nil && slices.Contains(model.Names(), s.Name) &&
		slices.Equal(s.Layers, std.Layers) && s.GrowthRate == std.GrowthRate && s.StemWidth == std.StemWidth {
		return fmt.Sprintf("torchvision.models.%s(num_classes=%d)", std.Name, s.NumClasses)
	}
	if s.Family == model.ImageNet && err == nil && slices.Contains(model.Names(), s.Name) && s.Residual && s.Shortcut == 'B' && !s.StrideIn1x1 &&
		s.Block == std.Block && s.StemWidth == std.StemWidth && slices.Equal(s.Layers, std.Layers) && slices.Equal(s.Widths, std.Widths) &&
		s.BottleneckWidth(64) == std.BottleneckWidth(64) && s.Groups == std.Groups && s.SEReduction == std.SEReduction && !s.PreAct {
		if s.SEReduction > 0 { // timm's SE nets; torchvision has none
			return fmt.Sprintf("timm.create_model(%q, num_classes=%d)", std.Name, s.NumClasses)
		}
		return fmt.Sprintf("torchvision.models.%s(num_classes=%d)", std.Name, s.NumClasses)
	}
	if s.PreAct && s.Family == model.ImageNet {
		if std, err := model.Lookup(s.Name); err == nil && slices.Equal(s.Layers, std.Layers) && s.Shortcut == std.Shortcut {
			return fmt.Sprintf("timm.create_model(%q, num_classes=%d)", s.Name, s.NumClasses)
		}
	}
	return "none: same naming pattern, no torchvision class (see scripts/torchvision_golden.py for the CIFAR nets)"
}

// buildCPU allocates a spec's net on the CPU for one example: enough to hold and move its weights.
func buildCPU(s model.Spec) (*model.Net, error) {
	return model.Build(cpu.New(), s, 1)
}

// Classifier is the classifier weight of a state_dict: its name (fc.weight, head.fc.weight,
// classifier.weight, classif.weight) and its rows, the class count.
type Classifier struct {
	Name    string
	Classes int
}

// findClassifier looks up the classifier weight of any net of the zoo with get, which gives a tensor's
// shape by name.
func findClassifier(get func(name string) ([]int, bool)) (Classifier, bool) {
	for _, n := range model.ClassifierNames() {
		if shape, ok := get(n + ".weight"); ok && classifierShape(shape) {
			return Classifier{Name: n + ".weight", Classes: shape[0]}, true
		}
	}
	return Classifier{}, false
}

// classifierWeights names the classifier weights findClassifier looks for: "fc.weight, head.fc.weight,
// classifier.weight or classif.weight".
func classifierWeights() string {
	names := model.ClassifierNames()
	for i := range names {
		names[i] += ".weight"
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ReadStateDict reads a safetensors state_dict (saved from a DataParallel wrapper or not) and returns it
// with its classifier.
func ReadStateDict(path string) (*safetensors.File, Classifier, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, Classifier{}, err
	}
	fc, ok := findClassifier(func(name string) ([]int, bool) {
		t, ok := f.Get(name)
		if !ok {
			t, ok = f.Get("module." + name)
		}
		return t.Shape, ok
	})
	if !ok {
		return nil, Classifier{}, fmt.Errorf("%s: no %s tensor: not a state_dict of a net of the zoo", path, classifierWeights())
	}
	return f, fc, nil
}

// classifierShape reports whether a classifier weight has the shape of torchvision's fc, (classes,
// features), or of timm's 1x1 convolution head, (classes, features, 1, 1).
func classifierShape(s []int) bool {
	return len(s) == 2 || (len(s) == 4 && s[2] == 1 && s[3] == 1)
}

// Import loads a state_dict (read by ReadStateDict from label) into the net of spec and writes runDir as
// a new run of cfg: config.yaml and a checkpoint at step 0 with zero momentum, which `resnet eval
// --checkpoint runDir` evaluates and `resnet train --resume runDir` trains on from (fine-tuning with the
// config's recipe). An existing run in runDir is never overwritten. It returns the checkpoint's path.
func Import(f *safetensors.File, label string, spec model.Spec, cfg config.Config, runDir string) (string, error) {
	if a := f.Metadata[metaArch]; a != "" && a != spec.Name {
		return "", fmt.Errorf("%s holds %s weights (metadata arch), the config builds %s", label, a, spec.Name)
	}
	if s := f.Metadata[metaStrideIn1x1]; s != "" && s != strconv.FormatBool(spec.StrideIn1x1) {
		return "", fmt.Errorf("%s was exported with stride_in_1x1 %s, the config has model.stride_in_1x1 %v: same shapes, different net", label, s, spec.StrideIn1x1)
	}
	yml, err := cfg.YAML()
	if err != nil {
		return "", err
	}
	run := train.NewRunDir(runDir)
	if err := run.CheckNew(); err != nil {
		return "", fmt.Errorf("%w; choose another directory with --out", err)
	}
	net, err := buildCPU(spec)
	if err != nil {
		return "", err
	}
	defer net.Free()
	if err := net.Init(cfg.Seed); err != nil { // zeroes the momentum buffers
		return "", err
	}
	if err := Load(net, f, label); err != nil {
		return "", err
	}
	lock, err := run.Lock()
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	if err := run.Create(yml); err != nil {
		return "", err
	}
	st := train.State{WarmStart: cfg.Train.Schedule.WarmStartLR > 0}
	return run.SaveCheckpoint(net, st, yml, max(cfg.Checkpoint.Keep, 1))
}
