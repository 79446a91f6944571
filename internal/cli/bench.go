package cli

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	"resnet/internal/model"
)

type benchOptions struct {
	model  string
	batch  int
	steps  int
	warmup int
	device string
	json   bool
	seed   int64
}

// benchReport is the output of 'resnet bench --json'.
type benchReport struct {
	Model        string  `json:"model"`
	Device       string  `json:"device"`
	Batch        int     `json:"batch"`
	Steps        int     `json:"steps"`
	Threads      int     `json:"threads"`
	ImagesPerSec float64 `json:"images_per_sec"`
	StepMillis   float64 `json:"step_ms"`
	GFLOPPerSec  float64 `json:"gflop_per_sec"`
}

func newBenchCmd(e *env) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure training throughput (forward + backward + SGD update) on synthetic input",
		Example: `  resnet bench --model cifar_resnet20 --batch 128 --device cpu
  resnet bench --model resnet50 --batch 16 --steps 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runBench(e, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "cifar_resnet20", "zoo model name")
	f.IntVar(&o.batch, "batch", 128, "mini-batch size")
	f.IntVar(&o.steps, "steps", 10, "timed training steps")
	f.IntVar(&o.warmup, "warmup", 2, "untimed warm-up steps")
	f.StringVar(&o.device, "device", "auto", "device: auto, cpu or cuda")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.Int64Var(&o.seed, "seed", 1, "seed for weights and input")
	return cmd
}

func runBench(e *env, o *benchOptions) error {
	if o.batch < 1 || o.steps < 1 || o.warmup < 0 {
		return usageError{fmt.Errorf("--batch and --steps must be >= 1 and --warmup >= 0")}
	}
	spec, err := model.Lookup(o.model)
	if err != nil {
		return err
	}
	st, err := model.Describe(spec)
	if err != nil {
		return err
	}
	dev, err := backend.Open(o.device)
	if err != nil {
		return err
	}
	net, err := model.Build(dev, spec, o.batch)
	if err != nil {
		return err
	}
	defer net.Free()
	if err := net.Init(o.seed); err != nil {
		return err
	}
	c, h, w := net.InputShape()
	rng := rand.New(rand.NewPCG(uint64(o.seed), 7))
	x := make([]float32, o.batch*c*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := make([]int32, o.batch)
	for i := range labels {
		labels[i] = int32(rng.IntN(spec.NumClasses))
	}
	slots := net.SGDSlots(1e-4, false)
	step := func() error {
		if _, err := net.TrainStep(x, labels); err != nil {
			return err
		}
		return dev.SGDStep(backend.SGDParams{LR: 0.01, Momentum: 0.9}, slots)
	}
	for i := 0; i < o.warmup; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	if err := dev.Sync(); err != nil {
		return err
	}
	t0 := time.Now()
	for i := 0; i < o.steps; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	if err := dev.Sync(); err != nil {
		return err
	}
	secs := time.Since(t0).Seconds()
	ips := float64(o.batch*o.steps) / secs
	rep := benchReport{
		Model: spec.Name, Device: dev.Name(), Batch: o.batch, Steps: o.steps, Threads: runtime.GOMAXPROCS(0),
		ImagesPerSec: ips, StepMillis: 1000 * secs / float64(o.steps),
		// Training costs about three times the forward MACs, two FLOPs each.
		GFLOPPerSec: ips * 6 * float64(st.MACs) / 1e9,
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "%s on %s (%d threads), batch %d, %d steps: %.1f images/s, %.1f ms/step, %.1f GFLOP/s\n",
		rep.Model, rep.Device, rep.Threads, rep.Batch, rep.Steps, rep.ImagesPerSec, rep.StepMillis, rep.GFLOPPerSec)
	return nil
}
