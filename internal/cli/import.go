package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/interop"
	"resnet/internal/train"
)

type importOptions struct {
	configFile string
	sets       []string
	out        string
	mean, std  string
}

func newImportCmd(e *env) *cobra.Command {
	o := &importOptions{}
	cmd := &cobra.Command{
		Use:   "import FILE.safetensors",
		Short: "Start a run from a PyTorch (torchvision) state_dict: a step-0 checkpoint to evaluate or fine-tune",
		Long: `import reads a state_dict saved with safetensors (torchvision names; F32, F16, BF16 or F64 tensors,
converted to float32), checks that it holds exactly the tensors of the config's model with their shapes,
and writes a run directory with the config and a checkpoint at step 0. Evaluate it with
'resnet eval --checkpoint DIR'; train on from it with 'resnet train --resume DIR' (the config's recipe,
from epoch 1; change keys with --set). --mean and --std give the input normalisation the weights were
trained with, per channel in 0..1 as torchvision's Normalize takes them; they set dataset.mean,
dataset.std and dataset.norm_scale 1 in the run's config, so eval and training see those inputs.`,
		Example: `  resnet import resnet50.safetensors --config resnet50 --out runs/resnet50-torchvision
  resnet import r20.safetensors --config configs/cifar_resnet20.yaml --set train.lr=0.01 --out runs/r20-ft
  resnet import r20.safetensors --config cifar_resnet20 --mean 0.4914,0.4822,0.4465 --std 0.2470,0.2435,0.2616`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runImport(e, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.configFile, "config", "c", "", "config file, or a preset name (see 'resnet models')")
	f.StringArrayVar(&o.sets, "set", nil, "override a config key, e.g. --set train.lr=0.01 (repeatable)")
	f.StringVar(&o.out, "out", "", "run directory to create (default runs/<config name>-imported)")
	f.StringVar(&o.mean, "mean", "", "per-channel input mean in 0..1, as torchvision writes it (e.g. 0.485,0.456,0.406); needs --std")
	f.StringVar(&o.std, "std", "", "per-channel input deviation in 0..1 (e.g. 0.229,0.224,0.225); needs --mean")
	return cmd
}

func runImport(e *env, o *importOptions, file string) error {
	if o.configFile == "" {
		return usageError{errors.New("--config is required: it names the model and the data set the weights are for")}
	}
	sets := o.sets
	switch {
	case (o.mean == "") != (o.std == ""):
		return usageError{errors.New("--mean and --std go together: give both, or neither for the data set's own normalisation")}
	case o.mean != "":
		sets = append(sets[:len(sets):len(sets)], "dataset.mean="+o.mean, "dataset.std="+o.std, "dataset.norm_scale=1")
	}
	cfg, err := config.Load(config.Source{File: o.configFile, UseEnv: true, Sets: sets, Warn: e.warn})
	if err != nil {
		return err
	}
	f, fc, err := interop.ReadStateDict(file)
	if err != nil {
		return err
	}
	fileClasses := fc.Classes
	classes, from := cfg.Model.NumClasses, "model.num_classes"
	if classes == 0 {
		classes = datasetClasses(cfg.Dataset)
		from = "data set " + cfg.Dataset.Name
	}
	switch {
	case classes == 0:
		classes = fileClasses
		fmt.Fprintf(e.stderr, "note: %s is not at hand to count its classes; taking %d from %s\n", cfg.Dataset.Root, classes, fc.Name)
	case classes != fileClasses:
		return fmt.Errorf("%s has %d classes (%s), but the config's %s has %d: import into a config for %d classes (or --set model.num_classes=%d)",
			file, fileClasses, fc.Name, from, classes, fileClasses, fileClasses)
	}
	spec, err := train.SpecFor(cfg.Model, classes, 0)
	if err != nil {
		return err
	}
	runDir := o.out
	if runDir == "" {
		runDir = filepath.Join("runs", cfg.Name+"-imported")
	}
	path, err := interop.Import(f, file, spec, cfg, runDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "imported %s (%d classes) from %s\nrun directory: %s\n  checkpoint: %s\nevaluate:  resnet eval --checkpoint %s\nfine-tune: resnet train --resume %s\n",
		spec.Name, spec.NumClasses, file, runDir, path, runDir, runDir)
	return nil
}

// datasetClasses is the class count of a configured data set, without reading it where the count is
// fixed; 0 when an ImageNet-style tree is not there to count.
func datasetClasses(c config.DatasetConfig) int {
	switch c.Name {
	case "synthetic":
		return len(dataset.SyntheticClassNames)
	case "cifar10":
		return 10
	case "cifar100":
		if c.CoarseLabels {
			return 20
		}
		return 100
	}
	ents, err := os.ReadDir(filepath.Join(c.Root, "train"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			n++
		}
	}
	return n
}
