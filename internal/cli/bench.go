package cli

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/model"
	"resnet/internal/train"
)

type benchOptions struct {
	model   string
	batch   int
	steps   int
	warmup  int
	device  string
	json    bool
	seed    int64
	unfused bool
	// data benchmarks the training input pipeline of a config instead of the network.
	data       bool
	configFile string
	sets       []string
	batches    int
	precision  string
	cpuProfile string
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
	Precision    string  `json:"precision"`
	// PeakRSSBytes is the process's peak resident set size (getrusage ru_maxrss) when the run ends.
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
}

func newBenchCmd(e *env) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure training throughput (forward + backward + SGD update) on synthetic input",
		Example: `  resnet bench --model cifar_resnet20 --batch 128 --device cpu
  resnet bench --model resnet50 --batch 16 --steps 5 --json
  resnet bench --data --config resnet50.yaml --set dataset.root=/data/imagenet --set dataset.workers=2`,
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
	f.BoolVar(&o.unfused, "unfused", false, "run the unfused reference path of the fused GPU kernels")
	f.BoolVar(&o.data, "data", false, "measure the training data pipeline of --config instead of the network")
	f.StringVarP(&o.configFile, "config", "c", "", "config whose dataset --data reads")
	f.StringArrayVar(&o.sets, "set", nil, "override a config key for --data (repeatable)")
	f.IntVar(&o.batches, "batches", 20, "timed batches for --data")
	f.StringVar(&o.precision, "precision", "fp32", "arithmetic precision: fp32 (the only one the CPU backend and this build support)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the timed steps to this file")
	return cmd
}

func runBench(e *env, o *benchOptions) error {
	if o.data {
		return runBenchData(e, o)
	}
	if o.batch < 1 || o.steps < 1 || o.warmup < 0 {
		return usageError{fmt.Errorf("--batch and --steps must be >= 1 and --warmup >= 0")}
	}
	if o.precision != "fp32" {
		return usageError{fmt.Errorf("--precision %q is not supported: the networks train in fp32", o.precision)}
	}
	spec, err := model.Lookup(o.model)
	if err != nil {
		return err
	}
	st, err := model.Describe(spec)
	if err != nil {
		return err
	}
	dev, err := backend.Open(o.device, backend.Options{Unfused: o.unfused})
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
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for i := 0; i < o.steps; i++ {
		if err := step(); err != nil {
			stopProfile()
			return err
		}
	}
	if err := dev.Sync(); err != nil {
		stopProfile()
		return err
	}
	secs := time.Since(t0).Seconds()
	if err := stopProfile(); err != nil {
		return err
	}
	ips := float64(o.batch*o.steps) / secs
	rep := benchReport{
		Model: spec.Name, Device: dev.Name(), Batch: o.batch, Steps: o.steps, Threads: runtime.GOMAXPROCS(0),
		ImagesPerSec: ips, StepMillis: 1000 * secs / float64(o.steps),
		// Training costs about three times the forward MACs, two FLOPs each.
		GFLOPPerSec:  ips * 6 * float64(st.MACs) / 1e9,
		Precision:    o.precision,
		PeakRSSBytes: peakRSSBytes(),
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "%s on %s (%d threads, %s), batch %d, %d steps: %.1f images/s, %.1f ms/step, %.1f GFLOP/s, peak RSS %.0f MiB\n",
		rep.Model, rep.Device, rep.Threads, rep.Precision, rep.Batch, rep.Steps, rep.ImagesPerSec, rep.StepMillis, rep.GFLOPPerSec,
		float64(rep.PeakRSSBytes)/(1<<20))
	return nil
}

// startCPUProfile starts a pprof CPU profile into path (nothing when path is empty) and returns the
// function that stops it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// dataBenchReport is the output of 'resnet bench --data --json'.
type dataBenchReport struct {
	Dataset             string  `json:"dataset"`
	Transform           string  `json:"transform"`
	Batch               int     `json:"batch"`
	Batches             int     `json:"batches"`
	Workers             int     `json:"workers"`
	Images              int     `json:"images"`
	Skipped             int     `json:"skipped"`
	ImagesPerSec        float64 `json:"images_per_sec"`
	ImagesPerSecPerCore float64 `json:"images_per_sec_per_core"`
}

// runBenchData times the training loader of a config: decode, augmentation and normalisation, with the
// configured number of workers, after one warm-up batch.
func runBenchData(e *env, o *benchOptions) error {
	if o.batches < 1 {
		return usageError{fmt.Errorf("--batches must be >= 1 (got %d)", o.batches)}
	}
	cfg, err := config.Load(config.Source{File: o.configFile, UseEnv: true, Sets: o.sets})
	if err != nil {
		return err
	}
	data, err := train.OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		return err
	}
	workers := cfg.Dataset.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	l, err := dataset.NewPipelineLoader(data.Train, dataset.LoaderOptions{
		BatchSize: cfg.Train.BatchSize, Shuffle: true, DropLast: true, Seed: cfg.Seed, Workers: workers,
	})
	if err != nil {
		return err
	}
	defer l.Close()
	rep := dataBenchReport{Dataset: cfg.Dataset.Name, Transform: cfg.Dataset.TrainTransform, Batch: cfg.Train.BatchSize, Workers: workers}
	if cfg.Dataset.Name != "imagenet" {
		rep.Transform = "pad-crop-flip"
	}
	var t0 time.Time
	for epoch := 0; rep.Batches < o.batches; epoch++ {
		if err := l.Start(epoch, 0); err != nil {
			return err
		}
		for rep.Batches < o.batches {
			b, err := l.Next()
			if err != nil {
				return err
			}
			if b == nil {
				break
			}
			if t0.IsZero() { // the first batch warms up the workers and the file cache
				t0 = time.Now()
			} else {
				rep.Batches++
				rep.Images += b.N
				rep.Skipped += len(b.Skipped)
			}
			l.Release(b)
		}
	}
	secs := time.Since(t0).Seconds()
	rep.ImagesPerSec = float64(rep.Images+rep.Skipped) / secs
	rep.ImagesPerSecPerCore = rep.ImagesPerSec / float64(min(workers, runtime.NumCPU()))
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "%s %s, batch %d, %d workers: %.1f images/s, %.1f images/s per core (%d images, %d skipped)\n",
		rep.Dataset, rep.Transform, rep.Batch, rep.Workers, rep.ImagesPerSec, rep.ImagesPerSecPerCore, rep.Images, rep.Skipped)
	return nil
}

// peakRSSBytes is the process's peak resident set size, read from VmHWM in /proc/self/status (the same
// value getrusage reports as ru_maxrss); 0 where that file does not exist.
func peakRSSBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return kib << 10
	}
	return 0
}
