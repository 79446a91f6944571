package cli

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/cpu"
	"resnet/internal/model"
)

// benchJSON runs a bench command that must succeed and decodes its JSON report into v.
func benchJSON(t *testing.T, v any, args ...string) (stderr string) {
	t.Helper()
	code, out, errOut := runCLI(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return errOut
}

// 'resnet bench' is 'resnet bench train'; --batch is the old spelling of --batch-size.
func TestBenchTrainSpellings(t *testing.T) {
	tiny := []string{"--device", "cpu", "--model", "cifar_resnet20", "--steps", "1", "--warmup", "0"}
	for _, args := range [][]string{
		{"bench", "--batch-size", "4"},
		{"bench", "--batch", "4"},
		{"bench", "--batch", "4", "--batch-size", "4"},
		{"bench", "train", "--batch-size", "4"},
		{"bench", "train", "--batch", "4"},
	} {
		var rep benchReport
		benchJSON(t, &rep, append(args, tiny...)...)
		if rep.Model != "cifar_resnet20" || rep.Batch != 4 || rep.Steps != 1 || rep.Precision != "fp32" || rep.Layout != "nchw" || !(rep.ImagesPerSec > 0) ||
			rep.Environment["backend"] != "cpu" || rep.Environment["gemm_kernel"] == "" {
			t.Errorf("%v: report %+v", args, rep)
		}
		// The step's time split: no data wait (one batch held throughout), a copy and compute that add up.
		if sum := rep.DataMillis + rep.CopyMillis + rep.ComputeMillis; rep.DataMillis != 0 || !(rep.CopyMillis > 0) ||
			!(rep.ComputeMillis > rep.CopyMillis) || math.Abs(sum-rep.StepMillis) > 1e-9*rep.StepMillis {
			t.Errorf("%v: step %v ms split into data %v, copy %v, compute %v", args, rep.StepMillis, rep.DataMillis, rep.CopyMillis, rep.ComputeMillis)
		}
	}
	code, out, stderr := runCLI(t, append([]string{"bench", "--batch-size", "4"}, tiny...)...)
	if code != 0 || !strings.Contains(out, "ms/step  (data 0%, copy ") {
		t.Errorf("exit %d, stdout %q, stderr %q: want the step's time split", code, out, stderr)
	}
}

// 'resnet bench data' and the deprecated 'resnet bench --data' time the same pipeline.
func TestBenchData(t *testing.T) {
	small := []string{"--config", "demo", "--set", "dataset.train_size=64", "--set", "train.batch_size=16", "--batches", "2"}
	var rep, alias dataBenchReport
	if errOut := benchJSON(t, &rep, append([]string{"bench", "data"}, small...)...); errOut != "" {
		t.Errorf("bench data wrote to stderr: %s", errOut)
	}
	errOut := benchJSON(t, &alias, append([]string{"bench", "--data"}, small...)...)
	if errOut != "note: 'resnet bench --data' is now 'resnet bench data'\n" {
		t.Errorf("bench --data: stderr %q", errOut)
	}
	for _, r := range []dataBenchReport{rep, alias} {
		if r.Dataset != "synthetic" || r.Batch != 16 || r.Batches != 2 || r.Images != 32 || !(r.ImagesPerSec > 0) {
			t.Errorf("report %+v", r)
		}
	}
}

// Flags of the benchmark not run are refused, not ignored.
func TestBenchFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bench", "--batch", "4", "--batch-size", "8"}, "resnet: --batch 4 and --batch-size 8 disagree: --batch is the old spelling of --batch-size; give --batch-size alone\n"},
		{[]string{"bench", "--batch-size", "0"}, "resnet: --batch-size and --steps must be >= 1 and --warmup >= 0\n"},
		{[]string{"bench", "--precision", "fp8"}, `resnet: --precision must be one of fp32, bf16, fp16 (got "fp8")` + "\n"},
		{[]string{"bench", "--layout", "channels_last"}, `resnet: --layout must be one of nchw, nhwc (got "channels_last"); did you mean nhwc?` + "\n"},
		{[]string{"bench", "train", "--device", "cpu", "--precision", "bf16"}, "resnet: --precision bf16 needs the cuda backend " +
			"(device is cpu, which computes in fp32): set device: cuda, or cuda.precision: fp32\n"},
		{[]string{"bench", "train", "--device", "cpu", "--graphs"}, "resnet: --graphs true needs the cuda backend " +
			"(device is cpu, which has no CUDA graphs): set device: cuda, or cuda.graphs: false\n"},
		{[]string{"bench", "data", "--precision", "fp32"}, "resnet: unknown flag: --precision\n"},
		{[]string{"bench", "--config", "demo"}, "resnet: --config is a flag of 'resnet bench data'; 'resnet bench' measures training\n"},
		{[]string{"bench", "--batches", "3"}, "resnet: --batches is a flag of 'resnet bench data'; 'resnet bench' measures training\n"},
		{[]string{"bench", "train", "--config", "demo"}, "resnet: unknown flag: --config\n"},
		{[]string{"bench", "data", "--model", "resnet50"}, "resnet: unknown flag: --model\n"},
		{[]string{"bench", "data", "--batch-size", "4"}, "resnet: unknown flag: --batch-size\n"},
		{[]string{"bench", "data", "--batches", "0"}, "resnet: --batches must be >= 1 (got 0)\n"},
		{[]string{"bench", "--data", "--config", "demo", "--model", "resnet50"}, "resnet: --model does not apply to --data (the input pipeline: 'resnet bench data')\n"},
		{[]string{"bench", "frob"}, `resnet: unknown command "frob" for "resnet bench"` + "\n"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, c.msg) || !strings.Contains(errOut, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stderr starting %q and the usage", c.args, code, out, errOut, exitUsage, c.msg)
		}
	}
}

// syncCountingPeaks is a CPU device that says when its peak was reset and read, counted in Sync calls.
type syncCountingPeaks struct {
	backend.Device
	syncs, resetAt, readAt int
}

func (d *syncCountingPeaks) Sync() error {
	d.syncs++
	return d.Device.Sync()
}
func (d *syncCountingPeaks) ResetPeakBytes() { d.resetAt = d.syncs }
func (d *syncCountingPeaks) PeakBytes() int64 {
	d.readAt = d.syncs
	return 12345
}

// On a device that counts its peak memory, bench reports the peak of the timed steps: reset after the
// warm-up steps have finished (the first Sync), read after the timed ones (the second).
func TestBenchPeakDeviceMemoryOfTimedSteps(t *testing.T) {
	dev := &syncCountingPeaks{Device: cpu.New()}
	var net *model.Net
	spec, err := model.Lookup("cifar_resnet8")
	if err == nil {
		net, err = model.Build(dev, spec, 2)
	}
	if err == nil {
		defer net.Free()
		err = net.Init(1)
	}
	if err != nil {
		t.Fatal(err)
	}
	dev.syncs = 0
	tm, err := timeTrainSteps(net, &benchTrainOptions{batchSize: 2, steps: 1, warmup: 1, seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tm.peak != 12345 || dev.resetAt != 1 || dev.readAt != 2 {
		t.Errorf("peak %d, reset after sync %d, read after sync %d; want 12345, 1, 2", tm.peak, dev.resetAt, dev.readAt)
	}
}
