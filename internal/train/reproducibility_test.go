package train

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/cpu"
)

// readRecord reads a run's reproducibility.json.
func readRecord(t *testing.T, dir string) Reproducibility {
	t.Helper()
	b, err := os.ReadFile(NewRunDir(dir).ReproducibilityPath())
	if err != nil {
		t.Fatal(err)
	}
	var rec Reproducibility
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// A CPU run records the program version, the step and the CPU's environment; it chooses no algorithms.
func TestReproducibilityRecordOfCPURun(t *testing.T) {
	cfg := smallConfig(1)
	yml, _ := cfg.YAML()
	dir := t.TempDir()
	dev := cpu.NewWithWorkers(2)
	if _, err := Run(Options{Config: cfg, ConfigYAML: yml, RunDir: dir, Device: dev, Out: io.Discard, Version: "v1.2.3"}); err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t, dir)
	if rec.Version != "v1.2.3" || rec.Step != 1 || rec.Convolutions == nil || len(rec.Convolutions) != 0 {
		t.Errorf("record %+v; want version v1.2.3, written after step 1, no convolutions", rec)
	}
	env := rec.Environment
	if env["backend"] != "cpu" || env["workers"] != "2" || env["gemm_kernel"] == "" || env["go_version"] == "" {
		t.Errorf("environment %v; want the CPU's backend, workers, GEMM kernel and Go version", env)
	}
	if env["precision"] != "fp32" || env["layout"] != "nchw" {
		t.Errorf("environment %v; want precision fp32, layout nchw", env)
	}
}

// formatDevice is a device that says it keeps activations in another format (it is never asked to
// allocate one).
type formatDevice struct {
	backend.Device
	dt     backend.DType
	layout backend.Layout
}

func (d formatDevice) ActivationFormat() (backend.DType, backend.Layout) { return d.dt, d.layout }

// The record names the activation format as cuda.precision and cuda.layout spell it.
func TestReproducibilityRecordsActivationFormat(t *testing.T) {
	dev := formatDevice{Device: cpu.NewWithWorkers(1), dt: backend.BF16, layout: backend.NHWC}
	env := NewReproducibility("v", 3, dev, nil).Environment
	if env["precision"] != "bf16" || env["layout"] != "nhwc" || env["backend"] != "cpu" {
		t.Errorf("environment %v; want backend cpu, precision bf16, layout nhwc", env)
	}
}

// reportingDevice is the CPU device reporting an algorithm choice for each new convolution geometry and
// direction it runs, as the CUDA device does.
type reportingDevice struct {
	backend.Device
	choices []backend.ConvChoice
}

func (d *reportingDevice) choose(g backend.ConvGeometry, err error, dir string) {
	for _, c := range d.choices {
		if err != nil || c.Geometry == g && c.Direction == dir {
			return
		}
	}
	d.choices = append(d.choices, backend.ConvChoice{Geometry: g, Direction: dir, Algorithm: "ALGO_" + dir,
		WorkspaceBytes: 64, Deterministic: true, ChosenBy: "heuristic"})
}

func (d *reportingDevice) ConvForward(p backend.ConvParams, x, w, y backend.Tensor) error {
	g, err := backend.CheckConvForward(p, x, w, y)
	d.choose(g, err, "forward")
	return d.Device.ConvForward(p, x, w, y)
}

func (d *reportingDevice) ConvBackwardData(p backend.ConvParams, dy, w, dx backend.Tensor, acc bool) error {
	g, err := backend.CheckConvBackwardData(p, dy, w, dx)
	d.choose(g, err, "backward_data")
	return d.Device.ConvBackwardData(p, dy, w, dx, acc)
}

func (d *reportingDevice) ConvBackwardFilter(p backend.ConvParams, x, dy, dw backend.Tensor) error {
	g, err := backend.CheckConvBackwardFilter(p, x, dy, dw)
	d.choose(g, err, "backward_filter")
	return d.Device.ConvBackwardFilter(p, x, dy, dw)
}

func (d *reportingDevice) Environment() map[string]string {
	return map[string]string{"backend": "reporting", "deterministic": "true"}
}

func (d *reportingDevice) ConvAlgorithms() []backend.ConvChoice { return slices.Clone(d.choices) }

// The record lists the algorithms of the training step after the first step, each with the layers of its
// shape, and is rewritten after an evaluation whose batch size made the device choose more.
func TestReproducibilityRecordListsAlgorithmsByLayer(t *testing.T) {
	cfg := smallConfig(1) // cifar_resnet8: training batches of 16, evaluation batches of 32
	yml, _ := cfg.YAML()
	dir := t.TempDir()
	dev := &reportingDevice{Device: cpu.New()}
	var afterFirst Reproducibility
	hook := func(st *State) error {
		if st.Step == 1 {
			afterFirst = readRecord(t, dir)
		}
		return nil
	}
	if _, err := Run(Options{Config: cfg, ConfigYAML: yml, RunDir: dir, Device: dev, Out: io.Discard, afterStep: hook}); err != nil {
		t.Fatal(err)
	}
	if afterFirst.Step != 1 || afterFirst.Environment["backend"] != "reporting" || len(afterFirst.Convolutions) == 0 {
		t.Fatalf("record after the first step: %+v", afterFirst)
	}
	final := readRecord(t, dir)
	if final.Step != 4 || len(final.Convolutions) <= len(afterFirst.Convolutions) {
		t.Errorf("after the evaluation the record is from step %d with %d algorithms, want step 4 and more than the first step's %d",
			final.Step, len(final.Convolutions), len(afterFirst.Convolutions))
	}
	layer1 := 0
	for _, c := range final.Convolutions {
		if len(c.Layers) == 0 || c.Algorithm != "ALGO_"+c.Direction || c.WorkspaceBytes != 64 || c.ChosenBy != "heuristic" {
			t.Errorf("entry %+v", c)
		}
		if slices.Equal(c.Layers, []string{"layer1.0.conv1", "layer1.0.conv2"}) {
			layer1++
		}
	}
	// layer1's two convolutions share a shape: three directions at batch 16, the forward at batch 32.
	if layer1 != 4 {
		t.Errorf("%d entries name layer1's two convolutions together, want 4: %+v", layer1, final.Convolutions)
	}
}
