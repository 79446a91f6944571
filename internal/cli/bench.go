package cli

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"resnet/internal/atomicfile"
	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/dataset"
	"resnet/internal/model"
	"resnet/internal/sysmem"
	"resnet/internal/train"
)

// benchTrainOptions are the flags of 'resnet bench train', which plain 'resnet bench' also takes.
type benchTrainOptions struct {
	model      string
	batchSize  int
	batch      int // --batch, the old spelling of --batch-size
	steps      int
	warmup     int
	device     string
	json       bool
	seed       int64
	unfused    bool
	cpuProfile string
	memProfile string
	// precision and layout are cuda.precision and cuda.layout.
	precision, layout string

	// deterministic, cudnnBenchmark and graphs are cuda.deterministic, cuda.benchmark and cuda.graphs.
	deterministic, cudnnBenchmark, graphs bool
}

// benchDataOptions are the flags of 'resnet bench data'.
type benchDataOptions struct {
	configFile string
	sets       []string
	batches    int
	json       bool
}

// benchDataFlags are the flags of 'resnet bench data' besides --json; 'resnet bench' holds them hidden,
// for its deprecated --data.
var benchDataFlags = []string{"batches", "config", "set"}

// benchReport is the output of 'resnet bench train --json'.
type benchReport struct {
	Model        string  `json:"model"`
	Device       string  `json:"device"`
	Batch        int     `json:"batch"`
	Steps        int     `json:"steps"`
	Threads      int     `json:"threads"`
	ImagesPerSec float64 `json:"images_per_sec"`
	StepMillis   float64 `json:"step_ms"`
	// Where a step's time went, in milliseconds: waiting for data (0: the benchmark trains on one batch it
	// holds), handing the batch to the device (model.Net.UploadTime) and compute (forward, loss, backward
	// and the update).
	DataMillis    float64 `json:"data_ms"`
	CopyMillis    float64 `json:"copy_ms"`
	ComputeMillis float64 `json:"compute_ms"`
	GFLOPPerSec   float64 `json:"gflop_per_sec"`
	// Precision and Layout are the activation format (--precision, --layout): fp32, bf16 or fp16; nchw or
	// nhwc.
	Precision string `json:"precision"`
	Layout    string `json:"layout"`
	// Graphs: the step was replayed as a CUDA graph (--graphs).
	Graphs bool `json:"graphs"`
	// PeakRSSBytes is the process's peak resident set size (getrusage ru_maxrss) when the run ends.
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// Environment is the device's, as in a run's reproducibility.json (backend.Reporter).
	Environment map[string]string `json:"environment,omitempty"`
	// PeakDeviceBytes is the most device memory the tensors held during the timed steps, on devices that
	// count it (backend.PeakMemoryReporter: the GPU).
	PeakDeviceBytes int64 `json:"peak_device_bytes,omitempty"`
}

func newBenchCmd(e *env) *cobra.Command {
	o := &benchTrainOptions{}
	d := &benchDataOptions{}
	var dataAlias bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure training throughput (bench train, the default) or the input pipeline (bench data)",
		Long: `bench times training steps (forward + backward + SGD update) of a zoo model on synthetic input:
'resnet bench' is 'resnet bench train'. 'resnet bench data' times the training input pipeline of a config.`,
		Example: `  resnet bench --model cifar_resnet20 --batch-size 128 --device cpu
  resnet bench train --model resnet50 --batch-size 16 --steps 5 --json
  resnet bench data --config resnet50.yaml --set dataset.root=/data/imagenet --set dataset.workers=2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(e, o, d, dataAlias, cmd.Flags())
		},
	}
	f := cmd.Flags()
	o.bind(f)
	// --data is the old spelling of 'bench data'; that command's flags come with it, hidden.
	f.BoolVar(&dataAlias, "data", false, "measure the input pipeline: use 'resnet bench data'")
	d.bind(f)
	for _, name := range append([]string{"data"}, benchDataFlags...) {
		_ = f.MarkHidden(name)
	}
	cmd.AddCommand(newBenchTrainCmd(e), newBenchDataCmd(e))
	return cmd
}

func newBenchTrainCmd(e *env) *cobra.Command {
	o := &benchTrainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Measure training throughput (forward + backward + SGD update) on synthetic input",
		Example: `  resnet bench train --model cifar_resnet20 --batch-size 128 --device cpu
  resnet bench train --model resnet50 --batch-size 16 --steps 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchTrain(e, o, cmd.Flags().Changed) },
	}
	o.bind(cmd.Flags())
	return cmd
}

func newBenchDataCmd(e *env) *cobra.Command {
	d := &benchDataOptions{}
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Measure the training input pipeline of a config: decode, augmentation, normalisation",
		Example: `  resnet bench data --config demo.yaml
  resnet bench data --config resnet50.yaml --set dataset.root=/data/imagenet --set dataset.workers=2 --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runBenchData(e, d) },
	}
	f := cmd.Flags()
	d.bind(f)
	f.BoolVar(&d.json, "json", false, "print the result as JSON")
	return cmd
}

func (o *benchTrainOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&o.model, "model", "cifar_resnet20", "zoo model name")
	f.IntVar(&o.batchSize, "batch-size", 128, "mini-batch size")
	f.IntVar(&o.batch, "batch", 128, "old spelling of --batch-size")
	_ = f.MarkHidden("batch")
	f.IntVar(&o.steps, "steps", 10, "timed training steps")
	f.IntVar(&o.warmup, "warmup", 2, "untimed warm-up steps")
	f.StringVar(&o.device, "device", "auto", "device: auto, cpu or cuda")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.Int64Var(&o.seed, "seed", 1, "seed for weights and input")
	f.BoolVar(&o.unfused, "unfused", false, "run the unfused reference path of the fused GPU kernels")
	f.BoolVar(&o.deterministic, "deterministic", true, "GPU convolutions only with deterministic algorithms (cuda.deterministic)")
	f.BoolVar(&o.cudnnBenchmark, "cudnn-benchmark", false, "choose GPU convolution algorithms by timing them (cuda.benchmark)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the timed steps to this file")
	f.StringVar(&o.memProfile, "memprofile", "", "write a pprof heap profile, taken after the timed steps, to this file")
	def := config.Default().CUDA
	f.StringVar(&o.precision, "precision", def.Precision, "activation precision on the GPU: fp32, bf16 or fp16 (cuda.precision)")
	f.StringVar(&o.layout, "layout", def.Layout, "activation layout on the GPU: nchw or nhwc (cuda.layout)")
	f.BoolVar(&o.graphs, "graphs", def.Graphs, "replay the training step as a CUDA graph (cuda.graphs)")
}

// benchFormatFlags names the flags of 'resnet bench train' that set config keys of the cuda backend only.
var benchFormatFlags = map[string]string{"cuda.precision": "--precision", "cuda.layout": "--layout", "cuda.graphs": "--graphs"}

// checkFormat checks --precision, --layout and --graphs (with --device) by the rules of the config keys
// they set.
// An unknown --device is left to opening the device, which names the backends there are.
func (o *benchTrainOptions) checkFormat() error {
	c := config.Default()
	c.Device, c.CUDA.Precision, c.CUDA.Layout, c.CUDA.Graphs = o.device, o.precision, o.layout, o.graphs
	joined, ok := config.Validate(c).(interface{ Unwrap() []error }) // nil, or errors.Join's
	if !ok {
		return nil
	}
	for _, e := range joined.Unwrap() {
		var fe *config.FieldError
		if errors.As(e, &fe) && benchFormatFlags[fe.Key] != "" {
			return usageError{fmt.Errorf("%s %s", benchFormatFlags[fe.Key], fe.Reason)}
		}
	}
	return nil
}

// bind binds the flags of 'resnet bench data' besides --json.
func (d *benchDataOptions) bind(f *pflag.FlagSet) {
	f.StringVarP(&d.configFile, "config", "c", "", "config (file or preset) whose training data set is read")
	f.StringArrayVar(&d.sets, "set", nil, "override a config key, e.g. --set dataset.workers=2 (repeatable)")
	f.IntVar(&d.batches, "batches", 20, "timed batches")
}

// runBench is 'resnet bench': bench train, or bench data when the deprecated --data is given. The flags
// of the benchmark not run are refused rather than ignored.
func runBench(e *env, o *benchTrainOptions, d *benchDataOptions, dataAlias bool, f *pflag.FlagSet) error {
	if !dataAlias {
		for _, name := range benchDataFlags {
			if f.Changed(name) {
				return usageError{fmt.Errorf("--%s is a flag of 'resnet bench data'; 'resnet bench' measures training", name)}
			}
		}
		return runBenchTrain(e, o, f.Changed)
	}
	var other string
	f.Visit(func(fl *pflag.Flag) {
		if other == "" && fl.Name != "data" && fl.Name != "json" && !slices.Contains(benchDataFlags, fl.Name) {
			other = fl.Name
		}
	})
	if other != "" {
		return usageError{fmt.Errorf("--%s does not apply to --data (the input pipeline: 'resnet bench data')", other)}
	}
	fmt.Fprintln(e.stderr, "note: 'resnet bench --data' is now 'resnet bench data'")
	d.json = o.json
	return runBenchData(e, d)
}

// check checks the flags, taking --batch for --batch-size.
func (o *benchTrainOptions) check(changed func(string) bool) error {
	if changed("batch") {
		if changed("batch-size") && o.batch != o.batchSize {
			return usageError{fmt.Errorf("--batch %d and --batch-size %d disagree: --batch is the old spelling of --batch-size; give --batch-size alone", o.batch, o.batchSize)}
		}
		o.batchSize = o.batch
	}
	if o.batchSize < 1 || o.steps < 1 || o.warmup < 0 {
		return usageError{errors.New("--batch-size and --steps must be >= 1 and --warmup >= 0")}
	}
	return o.checkFormat()
}

// runBenchTrain times training steps of a zoo model on random input.
func runBenchTrain(e *env, o *benchTrainOptions, changed func(string) bool) error {
	if err := o.check(changed); err != nil {
		return err
	}
	spec, err := model.Lookup(o.model)
	var ae *model.ArchError
	if errors.As(err, &ae) {
		return fmt.Errorf("--model %s", ae.Reason)
	}
	if err != nil {
		return err
	}
	st, err := model.Describe(spec)
	if err != nil {
		return err
	}
	dev, err := openDevice(e, o.device, config.CUDAConfig{Fuse: !o.unfused, Deterministic: o.deterministic,
		Benchmark: o.cudnnBenchmark, Precision: o.precision, Layout: o.layout, Graphs: o.graphs})
	if err != nil {
		return err
	}
	if err := checkBenchMemory(e, dev, spec, o.batchSize); err != nil {
		return err
	}
	net, err := model.Build(dev, spec, o.batchSize)
	if err != nil {
		return err
	}
	defer net.Free()
	if err := net.Init(o.seed); err != nil {
		return err
	}
	tm, err := timeTrainSteps(net, o)
	if err != nil {
		return err
	}
	ips := float64(o.batchSize*o.steps) / tm.secs
	perStep := func(s float64) float64 { return 1000 * s / float64(o.steps) }
	rep := benchReport{
		Model: spec.Name, Device: dev.Name(), Batch: o.batchSize, Steps: o.steps, Threads: runtime.GOMAXPROCS(0),
		ImagesPerSec: ips, StepMillis: perStep(tm.secs),
		CopyMillis: perStep(tm.copySecs), ComputeMillis: perStep(max(0, tm.secs-tm.copySecs)),
		// Training costs about three times the forward MACs, two FLOPs each.
		GFLOPPerSec: ips * 6 * float64(st.MACs) / 1e9, Precision: o.precision, Layout: o.layout, Graphs: o.graphs,
		PeakRSSBytes:    peakRSSBytes(),
		PeakDeviceBytes: tm.peak,
	}
	if r, ok := dev.(backend.Reporter); ok {
		rep.Environment = r.Environment()
	}
	if o.json {
		return printJSON(e.stdout, rep)
	}
	format := rep.Precision + " " + rep.Layout
	if rep.Graphs {
		format += ", graphs"
	}
	fmt.Fprintf(e.stdout, "%s on %s (%d threads, %s), batch %d, %d steps: %.1f images/s, %.1f ms/step%s, %.1f GFLOP/s, peak RSS %.0f MiB",
		rep.Model, rep.Device, rep.Threads, format, rep.Batch, rep.Steps, rep.ImagesPerSec, rep.StepMillis,
		train.StepTimeSplit(rep.StepMillis, rep.DataMillis, rep.CopyMillis), rep.GFLOPPerSec, float64(rep.PeakRSSBytes)/(1<<20))
	if rep.PeakDeviceBytes > 0 {
		fmt.Fprintf(e.stdout, ", peak device memory %.0f MiB", float64(rep.PeakDeviceBytes)/(1<<20))
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// checkBenchMemory refuses a --batch-size whose training step (the net and the random input batch) does
// not fit the memory the command may use.
func checkBenchMemory(e *env, dev backend.Device, spec model.Spec, batch int) error {
	budget, err := train.MemoryBudget(dev, e.hostMemory)
	if err != nil {
		return err
	}
	images := train.WorkspaceImages(budget)
	need := func(batch int) (sysmem.Need, error) {
		act, _ := backend.ActivationFormat(dev)
		m, err := model.EstimateMemory(spec, batch, act)
		if err != nil {
			return nil, err
		}
		image := sysmem.Mul(4, int64(spec.InChannels), int64(spec.InputSize), int64(spec.InputSize))
		input := sysmem.Mul(int64(batch), sysmem.Add(image, 4))
		return append(m.Need(images), sysmem.Part{Name: "input batch", Bytes: input, Host: true}), nil
	}
	what := fmt.Sprintf("a training step of %s at %dx%d", spec.Name, spec.InputSize, spec.InputSize)
	tooLarge, err := budget.CheckSetting("--batch-size", batch, what, need)
	if err != nil || tooLarge == nil {
		return err
	}
	return tooLarge
}

// benchTiming is what timeTrainSteps measured: the seconds of the timed steps, the part of them spent
// handing the batch to the device, and, on a device that counts it, the peak device memory they held
// (else 0).
type benchTiming struct {
	secs, copySecs float64
	peak           int64
}

// timeTrainSteps runs o.warmup untimed training steps, then o.steps timed ones (profiled with
// --cpuprofile).
func timeTrainSteps(net *model.Net, o *benchTrainOptions) (tm benchTiming, err error) {
	dev := net.Device()
	var copied time.Duration
	step := syntheticStep(net, o.batchSize, o.seed, benchLossScale(o.precision), &copied)
	if err := runSteps(dev, step, o.warmup); err != nil {
		return tm, err
	}
	copied = 0
	peaks, _ := dev.(backend.PeakMemoryReporter)
	if peaks != nil {
		peaks.ResetPeakBytes()
	}
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return tm, err
	}
	t0 := time.Now()
	err = runSteps(dev, step, o.steps)
	tm.secs, tm.copySecs = time.Since(t0).Seconds(), copied.Seconds()
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if peaks != nil {
		tm.peak = peaks.PeakBytes()
	}
	if err == nil {
		err = writeHeapProfile(o.memProfile)
	}
	return tm, err
}

// writeHeapProfile writes a pprof profile of the live heap to path (nothing when path is empty): where the
// memory the steps hold was allocated.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	runtime.GC() // the profile shows the heap as of the last collection
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		return fmt.Errorf("bench: --memprofile: %w", err)
	}
	if err := atomicfile.WriteBytes(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("bench: --memprofile: %w", err)
	}
	return nil
}

// runSteps runs n steps and waits for the device to finish them.
func runSteps(dev backend.Device, step func() error, n int) error {
	for range n {
		if err := step(); err != nil {
			return err
		}
	}
	return dev.Sync()
}

// benchLossScale is the loss scale a training run starts with in a precision (train.loss_scale auto):
// GradScaler's 65536 for fp16, none otherwise.
func benchLossScale(precision string) float32 {
	c := config.Default()
	c.CUDA.Precision = precision
	if l := c.LossScaling(); l.Dynamic {
		return float32(l.Init)
	}
	return 1
}

// syntheticStep returns a training step (forward, backward, SGD update) of net on one fixed batch of
// random images and labels, the loss scaled by lossScale and the update unscaling it; each step adds its
// upload time to copied.
func syntheticStep(net *model.Net, batch int, seed int64, lossScale float32, copied *time.Duration) func() error {
	c, h, w := net.InputShape()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	x := make([]float32, batch*c*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32(rng.IntN(net.Spec.NumClasses))
	}
	slots := net.SGDSlots(1e-4, false)
	return func() error {
		if _, err := net.TrainStepScaled(x, labels, lossScale); err != nil {
			return err
		}
		*copied += net.UploadTime()
		return net.Device().SGDStep(backend.SGDParams{LR: 0.01, Momentum: 0.9, GradScale: 1 / lossScale}, slots)
	}
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

// dataBenchReport is the output of 'resnet bench data --json'.
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
func runBenchData(e *env, d *benchDataOptions) error {
	if d.batches < 1 {
		return usageError{fmt.Errorf("--batches must be >= 1 (got %d)", d.batches)}
	}
	cfg, err := config.Load(config.Source{File: d.configFile, UseEnv: true, Sets: d.sets, Warn: e.warn})
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
	if err := timeBatches(l, d.batches, &rep); err != nil {
		return err
	}
	if d.json {
		return printJSON(e.stdout, rep)
	}
	fmt.Fprintf(e.stdout, "%s %s, batch %d, %d workers: %.1f images/s, %.1f images/s per core (%d images, %d skipped)\n",
		rep.Dataset, rep.Transform, rep.Batch, rep.Workers, rep.ImagesPerSec, rep.ImagesPerSecPerCore, rep.Images, rep.Skipped)
	return nil
}

// timeBatches reads n batches, over as many epochs as that takes, after a first one that warms up the
// workers and the file cache, and fills in rep's counts and rates.
func timeBatches(l *dataset.Loader, n int, rep *dataBenchReport) error {
	var t0 time.Time
	for epoch := 0; rep.Batches < n; epoch++ {
		if err := l.Start(epoch, 0); err != nil {
			return err
		}
		for rep.Batches < n {
			b, err := l.Next()
			if err != nil {
				return err
			}
			if b == nil {
				break
			}
			if t0.IsZero() {
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
	rep.ImagesPerSecPerCore = rep.ImagesPerSec / float64(min(rep.Workers, runtime.NumCPU()))
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
