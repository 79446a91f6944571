//go:build cuda && kernelemu

package cuda

// The choice of convolution algorithms (algo.go) on the kernel emulator, whose stand-in for cuDNN offers
// candidate lists built so that each rule of the choice changes the outcome (emuAlgoLists).

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"resnet/internal/backend"
)

// emuDevice opens an emulated device with opt; the environment (RESNET_CUDA_TF32,
// RESNET_CUDA_WORKSPACE_MB) is read as Open reads it.
func emuDevice(t *testing.T, opt backend.Options) *Device {
	t.Helper()
	d, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// onEmulator runs fn with the device's emulated GPU on its owner thread.
func onEmulator(t *testing.T, d *Device, fn func(e *emuGPU)) {
	t.Helper()
	mustOK(t, d.begin("test"))
	defer d.end()
	mustOK(t, d.onOwner("test", func(g gpu) error {
		fn(g.(*emuGPU))
		return nil
	}))
}

// listsAsked is how many heuristic and timed candidate lists the device has asked for.
func listsAsked(t *testing.T, d *Device) (heuristic, timed int) {
	onEmulator(t, d, func(e *emuGPU) { heuristic, timed = e.heuristicLists, e.timedLists })
	return heuristic, timed
}

// convAllDirections runs the three directions of one 3x3 convolution at batch n (backward data
// accumulating, so that timing must run it on scratch) on activations in the device's format and waits
// for them.
func convAllDirections(t *testing.T, d *Device, n int) {
	t.Helper()
	act, layout := d.ActivationFormat()
	alloc := func(dt backend.DType, layout backend.Layout, shape ...int) backend.Tensor {
		x, err := d.Alloc(backend.Shape(shape), dt, layout)
		mustOK(t, err)
		t.Cleanup(func() { d.Free(x) })
		return x
	}
	p := backend.ConvParams{Stride: 1, Pad: 1}
	x, w, y := alloc(act, layout, n, 3, 6, 6), alloc(backend.F32, backend.NCHW, 4, 3, 3, 3), alloc(act, layout, n, 4, 6, 6)
	mustOK(t, d.ConvForward(p, x, w, y))
	mustOK(t, d.ConvBackwardData(p, y, w, x, true))
	mustOK(t, d.ConvBackwardFilter(p, x, y, w))
	mustOK(t, d.Sync())
}

// choices maps each direction to "ALGORITHM workspace chosen-by", with "nondeterministic" appended for such
// an algorithm, from the device's ConvAlgorithms.
func choices(d *Device) map[string]string {
	out := map[string]string{}
	for _, c := range d.ConvAlgorithms() {
		s := fmt.Sprintf("%s %d %s", strings.TrimPrefix(c.Algorithm, "CUDNN_CONVOLUTION_"), c.WorkspaceBytes, c.ChosenBy)
		if !c.Deterministic {
			s += " nondeterministic"
		}
		out[c.Direction] = s
	}
	return out
}

// Each combination of cuda.deterministic and cuda.benchmark takes its list (heuristic or timed) and its
// rule (deterministic or any), and reports what it chose and how.
func TestConvAlgorithmChoice(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  backend.Options
		want map[string]string
	}{
		{"deterministic", backend.Options{}, map[string]string{
			"forward":         "FWD_ALGO_IMPLICIT_PRECOMP_GEMM 4096 heuristic",
			"backward_data":   "BWD_DATA_ALGO_1 4096 heuristic",
			"backward_filter": "BWD_FILTER_ALGO_1 4096 heuristic",
		}},
		{"deterministic timed", backend.Options{Benchmark: true}, map[string]string{
			"forward":         "FWD_ALGO_GEMM 8192 timed",
			"backward_data":   "BWD_DATA_ALGO_WINOGRAD_NONFUSED 12288 timed",
			"backward_filter": "BWD_FILTER_ALGO_FFT_TILING 16384 timed",
		}},
		{"any", backend.Options{Nondeterministic: true}, map[string]string{
			"forward":         "FWD_ALGO_IMPLICIT_PRECOMP_GEMM 4096 heuristic",
			"backward_data":   "BWD_DATA_ALGO_0 0 heuristic nondeterministic",
			"backward_filter": "BWD_FILTER_ALGO_0 0 heuristic nondeterministic",
		}},
		{"any timed", backend.Options{Nondeterministic: true, Benchmark: true}, map[string]string{
			"forward":         "FWD_ALGO_GEMM 8192 timed",
			"backward_data":   "BWD_DATA_ALGO_0 0 timed nondeterministic",
			"backward_filter": "BWD_FILTER_ALGO_3 4096 timed nondeterministic",
		}},
		// 16-bit data may take the tensor-op WINOGRAD that f32 without TF32 passes over.
		{"deterministic bf16", backend.Options{Precision: backend.BF16, Layout: backend.NHWC}, map[string]string{
			"forward":         "FWD_ALGO_WINOGRAD 4096 heuristic",
			"backward_data":   "BWD_DATA_ALGO_1 4096 heuristic",
			"backward_filter": "BWD_FILTER_ALGO_1 4096 heuristic",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := emuDevice(t, c.opt)
			convAllDirections(t, d, 2)
			if got := choices(d); !maps.Equal(got, c.want) {
				t.Errorf("chose %v\nwant  %v", got, c.want)
			}
			heuristic, timed := listsAsked(t, d)
			if c.opt.Benchmark && (heuristic != 0 || timed != 3) || !c.opt.Benchmark && (heuristic != 3 || timed != 0) {
				t.Errorf("asked for %d heuristic and %d timed lists, want 3 of one kind", heuristic, timed)
			}
		})
	}
}

// The choice is made once per shape: running the same convolutions again asks cuDNN for nothing and
// chooses nothing new; another batch size is another shape.
func TestConvAlgorithmsAreCachedPerShape(t *testing.T) {
	for _, opt := range []backend.Options{{}, {Benchmark: true}} {
		d := emuDevice(t, opt)
		convAllDirections(t, d, 2)
		h0, t0 := listsAsked(t, d)
		convAllDirections(t, d, 2)
		if h, tm := listsAsked(t, d); h != h0 || tm != t0 || len(d.ConvAlgorithms()) != 3 {
			t.Errorf("%+v: the same shape again asked for %d heuristic and %d timed lists more, and the device reports %d choices (want 0, 0, 3)",
				opt, h-h0, tm-t0, len(d.ConvAlgorithms()))
		}
		convAllDirections(t, d, 3)
		if h, tm := listsAsked(t, d); h+tm != h0+t0+3 || len(d.ConvAlgorithms()) != 6 {
			t.Errorf("%+v: a new batch size asked for %d lists and the device reports %d choices (want 3 and 6)",
				opt, h+tm-h0-t0, len(d.ConvAlgorithms()))
		}
		for _, c := range d.ConvAlgorithms()[3:] {
			if c.Geometry.N != 3 {
				t.Errorf("a choice for the new shape has geometry %v", c.Geometry)
			}
		}
	}
}

// When timing fails, the heuristics choose and the choice says why.
func TestConvAlgorithmTimingFailureFallsBackToHeuristics(t *testing.T) {
	d := emuDevice(t, backend.Options{Benchmark: true})
	onEmulator(t, d, func(e *emuGPU) { e.failTiming = true })
	convAllDirections(t, d, 2)
	want := map[string]string{
		"forward":         "FWD_ALGO_IMPLICIT_PRECOMP_GEMM 4096 heuristic (timing failed: CUDNN_STATUS_ALLOC_FAILED)",
		"backward_data":   "BWD_DATA_ALGO_1 4096 heuristic (timing failed: CUDNN_STATUS_ALLOC_FAILED)",
		"backward_filter": "BWD_FILTER_ALGO_1 4096 heuristic (timing failed: CUDNN_STATUS_ALLOC_FAILED)",
	}
	if got := choices(d); !maps.Equal(got, want) {
		t.Errorf("chose %v\nwant  %v", got, want)
	}
}

// With no workspace allowed, only candidates that need none are usable; a direction whose deterministic
// candidates all need some gets the fallback algorithm.
func TestConvAlgorithmWorkspaceCap(t *testing.T) {
	t.Setenv(envWorkspace, "0")
	for _, c := range []struct {
		opt  backend.Options
		want map[string]string
	}{
		{backend.Options{}, map[string]string{
			"forward":         "FWD_ALGO_IMPLICIT_GEMM 0 heuristic",
			"backward_data":   "BWD_DATA_ALGO_1 0 fallback",
			"backward_filter": "BWD_FILTER_ALGO_1 0 fallback",
		}},
		{backend.Options{Nondeterministic: true}, map[string]string{
			"forward":         "FWD_ALGO_IMPLICIT_GEMM 0 heuristic",
			"backward_data":   "BWD_DATA_ALGO_0 0 heuristic nondeterministic",
			"backward_filter": "BWD_FILTER_ALGO_0 0 heuristic nondeterministic",
		}},
		{backend.Options{Benchmark: true}, map[string]string{
			"forward":         "FWD_ALGO_IMPLICIT_GEMM 0 timed",
			"backward_data":   "BWD_DATA_ALGO_1 0 fallback",
			"backward_filter": "BWD_FILTER_ALGO_1 0 fallback",
		}},
	} {
		d := emuDevice(t, c.opt)
		convAllDirections(t, d, 2)
		if got := choices(d); !maps.Equal(got, c.want) {
			t.Errorf("%+v: chose %v\nwant  %v", c.opt, got, c.want)
		}
	}
}

// A candidate on TF32 tensor cores is taken only with RESNET_CUDA_TF32=1.
func TestConvAlgorithmTF32(t *testing.T) {
	for _, tf32 := range []string{"", "1"} {
		t.Setenv(envTF32, tf32)
		d := emuDevice(t, backend.Options{})
		convAllDirections(t, d, 2)
		want := "FWD_ALGO_IMPLICIT_PRECOMP_GEMM 4096 heuristic"
		if tf32 == "1" {
			want = "FWD_ALGO_WINOGRAD 4096 heuristic"
		}
		if got := choices(d)["forward"]; got != want {
			t.Errorf("RESNET_CUDA_TF32=%q: forward chose %q, want %q", tf32, got, want)
		}
	}
}
