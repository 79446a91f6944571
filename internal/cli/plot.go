package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"resnet/internal/atomicfile"
	"resnet/internal/compare"
	"resnet/internal/train"
)

type plotOptions struct {
	out string
	x   string
}

func newPlotCmd(e *env) *cobra.Command {
	o := &plotOptions{}
	cmd := &cobra.Command{
		Use:   "plot RUN [RUN...]",
		Short: "Draw the error and loss curves of runs (training and evaluation) into a PNG or SVG",
		Long: `plot reads each run directory's metrics.jsonl and draws two panels, top-1 error and loss, with a thin
training curve and a bold evaluation curve per run, against epochs (--x epoch) or optimizer steps (--x step),
with the plotting code of 'resnet compare'. --out names the figure; its extension, .png or .svg, picks the
format. A run still training is drawn as far as it got.`,
		Example: `  resnet plot runs/cifar_resnet56 --out r56.png
  resnet plot runs/cifar_plain56 runs/cifar_resnet56 --out curves.svg --x step`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runPlot(e, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "curves.png", "figure to write: .png or .svg")
	f.StringVar(&o.x, "x", "epoch", "horizontal axis: epoch or step")
	return cmd
}

func runPlot(e *env, o *plotOptions, dirs []string) error {
	ext := strings.ToLower(filepath.Ext(o.out))
	if ext != ".png" && ext != ".svg" {
		return usageError{fmt.Errorf("--out %s: the figure's extension must be .png or .svg", o.out)}
	}
	if o.x != "epoch" && o.x != "step" {
		return usageError{fmt.Errorf("--x must be epoch or step (got %q)", o.x)}
	}
	runs := make([]compare.RunCurve, len(dirs))
	for i, d := range dirs {
		ms, err := train.NewRunDir(d).ReadMetrics()
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("plot: %s has no metrics.jsonl: not a run directory, or a run that has not finished its first evaluation", d)
		}
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		if len(ms) == 0 {
			return fmt.Errorf("plot: %s has no evaluation yet (its metrics.jsonl is empty)", d)
		}
		runs[i] = compare.RunCurve{Name: runName(d, dirs), Metrics: ms}
	}
	pngData, svgData, err := compare.RunCurves(runs, o.x == "step")
	if err != nil {
		return err
	}
	data := pngData
	if ext == ".svg" {
		data = svgData
	}
	if err := atomicfile.WriteBytes(o.out, data, 0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d runs)\n", o.out, len(runs))
	return nil
}

// runName is a run's name in the legend: its directory's base name, or its whole path when another run
// has the same base name.
func runName(dir string, all []string) string {
	base := filepath.Base(filepath.Clean(dir))
	for _, d := range all {
		if d != dir && filepath.Base(filepath.Clean(d)) == base {
			return dir
		}
	}
	return base
}
