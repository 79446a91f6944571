package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/model"
	"resnet/internal/train"
)

type evalOptions struct {
	checkpoint string
	json       bool
	device     string
	batchSize  int
}

// evalReport is the output of 'resnet eval --json'.
type evalReport struct {
	Checkpoint string  `json:"checkpoint"`
	Model      string  `json:"model"`
	Dataset    string  `json:"dataset"`
	Protocol   string  `json:"protocol"`
	Epoch      int     `json:"epoch"`
	Step       int64   `json:"step"`
	N          int     `json:"n"`
	Loss       float64 `json:"loss"`
	Top1Err    float64 `json:"top1_err"`
	Top5Err    float64 `json:"top5_err"`
	Skipped    int     `json:"skipped_images"`
}

func newEvalCmd(e *env) *cobra.Command {
	o := &evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a checkpoint on its config's test set (1-crop top-1/top-5 error)",
		Example: `  resnet eval --checkpoint runs/demo
  resnet eval --checkpoint runs/demo/checkpoints/step-000000500.safetensors --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runEval(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.checkpoint, "checkpoint", "", "run directory (its newest checkpoint) or checkpoint file")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.StringVar(&o.device, "device", "", "device: auto, cpu or cuda (default: the run's config)")
	f.IntVar(&o.batchSize, "batch-size", 0, "evaluation batch size (default: eval.batch_size of the run)")
	return cmd
}

func runEval(e *env, o *evalOptions) error {
	if o.checkpoint == "" {
		return usageError{errors.New("--checkpoint is required")}
	}
	path, err := train.FindCheckpoint(o.checkpoint)
	if err != nil {
		return err
	}
	ck, err := train.LoadCheckpoint(path)
	if err != nil {
		return err
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
		return err
	}
	data, err := train.OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		return err
	}
	_, ih, _ := data.Eval.OutputShape()
	spec, err := train.SpecFor(cfg.Model, data.Eval.NumClasses(), ih)
	if err != nil {
		return err
	}
	dev, err := backend.Open(cfg.Device, backend.Options{Unfused: !cfg.CUDA.Fuse})
	if err != nil {
		return err
	}
	net, err := model.Build(dev, spec, cfg.Eval.BatchSize)
	if err != nil {
		return err
	}
	defer net.Free()
	if err := ck.Restore(net, false); err != nil {
		return err
	}
	loader, err := dataset.NewPipelineLoader(data.Eval, dataset.LoaderOptions{BatchSize: cfg.Eval.BatchSize, Seed: cfg.Seed, Workers: cfg.Dataset.Workers, Strict: cfg.Dataset.Strict})
	if err != nil {
		return err
	}
	defer loader.Close()
	sc, err := eval.OneCrop(net, loader, func(bad []*dataset.BadExampleError) {
		for _, b := range bad {
			fmt.Fprintf(e.stderr, "skipping %v\n", b)
		}
	})
	if err != nil {
		return err
	}
	rep := evalReport{
		Checkpoint: path, Model: spec.Name, Dataset: cfg.Dataset.Name, Protocol: "1-crop",
		Epoch: ck.State.Epoch, Step: ck.State.Step, N: sc.N, Loss: sc.Loss, Top1Err: sc.Top1Err, Top5Err: sc.Top5Err, Skipped: sc.Skipped,
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "checkpoint  %s (step %d)\nmodel       %s\ndata        %s test set, %d images, %s\ntop-1 error %6.2f%%\ntop-5 error %6.2f%%\nloss        %.4f\n",
		rep.Checkpoint, rep.Step, rep.Model, rep.Dataset, rep.N, rep.Protocol, 100*rep.Top1Err, 100*rep.Top5Err, rep.Loss)
	return nil
}
