package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"resnet/internal/compare"
	"resnet/internal/train"
)

type compareOptions struct {
	configFlags
	base string
	out  string
	runs []string
	json bool
}

func newCompareCmd(e *env) *cobra.Command {
	o := &compareOptions{}
	cmd := &cobra.Command{
		Use:   "compare MODEL MODEL [MODEL...]",
		Short: "Train models under one recipe and compare their error curves (plain vs residual)",
		Long: `Train two or more models with the same data, data order, seed and schedule, and write into --out:
curves.png and curves.svg (training error thin, test error bold, against iterations; plain networks on the
left, residual networks on the right, as in He et al. 2015, Figures 4 and 6), summary.md and summary.json
(final and best errors, parameters, MACs, images/s, training time, and whether the deeper net degraded).

Each MODEL is a preset (plain34, resnet34, cifar_plain56, ...; res34 and cifar_res56 are short for resnet34
and cifar_resnet56) or a config file. The recipe, everything but the model section, comes from --base, or
from the first MODEL. Runs go to --out/runs/<name> (or --runs): a finished run there is reused and an
interrupted one resumed, so an interrupted comparison continues where it stopped.`,
		Example: `  resnet compare plain34 res34 --set dataset.root=/data/imagenet
  resnet compare cifar_plain20 cifar_plain56 cifar_res20 cifar_res56 --set dataset.root=data/cifar-10-batches-bin
  resnet compare --base configs/compare_demo.yaml cifar_plain20 cifar_plain56 cifar_resnet20 cifar_resnet56 --out runs/degradation`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCompare(e, o, args, cmd.Flags().Changed)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.base, "base", "", "config (file or preset) whose recipe every model uses (default: the first model's)")
	f.StringVar(&o.out, "out", "", "directory for curves and summary (default runs/compare-<models>)")
	f.StringSliceVar(&o.runs, "runs", nil, "run directories: one parent for all models, or one per model in order (default <out>/runs)")
	o.bind(f, "every model")
	f.BoolVar(&o.json, "json", false, "print summary.json instead of the table")
	return cmd
}

func runCompare(e *env, o *compareOptions, args []string, changed func(string) bool) error {
	sets := o.toSets(changed)
	out := o.out
	if out == "" {
		names := make([]string, len(args))
		for i, a := range args {
			names[i] = strings.TrimSuffix(filepath.Base(compare.Expand(a)), ".yaml")
		}
		out = filepath.Join("runs", "compare-"+strings.Join(names, "-"))
	}
	runRoot := filepath.Join(out, "runs")
	if len(o.runs) == 1 {
		runRoot = o.runs[0]
	}
	entries, err := compare.Plan(args, o.base, sets, runRoot, e.warn)
	if err != nil {
		return err
	}
	switch {
	case len(o.runs) == len(entries) && len(o.runs) > 1:
		for i, en := range entries {
			en.RunDir = o.runs[i]
		}
	case len(o.runs) > 1:
		return usageError{fmt.Errorf("--runs names %d directories for %d models: give one parent directory or one per model", len(o.runs), len(entries))}
	}
	cfg := entries[0].Config
	data, err := train.OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		return err
	}
	_, ih, _ := data.Train.OutputShape()
	if err := compare.Describe(entries, data.Train.NumClasses(), ih); err != nil {
		return err
	}
	dev, err := openDevice(e, cfg.Device, cfg.CUDA)
	if err != nil {
		return err
	}
	stop, release := interruptChannel(e, true)
	defer release()
	err = compare.Train(entries, compare.Options{Device: dev, Out: e.stdout, Terminal: e.terminal, Stop: stop, Version: version})
	if err != nil {
		return err
	}
	sum, err := compare.Summarize(entries, dev.Name())
	if err != nil {
		return err
	}
	if err := compare.Write(out, sum); err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(e.stdout, "\n%s\nwritten to %s: curves.png, curves.svg, summary.md, summary.json\n", sum.Markdown(), out)
	return nil
}
