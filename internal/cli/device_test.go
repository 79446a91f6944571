package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/train"
)

// --device auto says once, on stderr, why it is not using the GPU.
func TestAutoDeviceSaysWhyOnce(t *testing.T) {
	var out, errOut strings.Builder
	e := &env{stdout: &out, stderr: &errOut}
	var name string
	for range 2 {
		d, err := openDevice(e, "auto", config.Default().CUDA)
		if err != nil {
			t.Fatal(err)
		}
		name = d.Name()
	}
	msg := errOut.String()
	switch {
	case name == "cuda" && msg != "":
		t.Errorf("auto opened the GPU and printed %q", msg)
	case name == "cpu" && (!strings.HasPrefix(msg, "resnet: device auto: using the CPU (cuda: ") ||
		strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, ")\n")):
		t.Errorf("auto fell back to the CPU and printed %q; want one line giving the CUDA reason", msg)
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q", out.String())
	}
	if _, err := openDevice(e, "cpu", config.Default().CUDA); err != nil || errOut.String() != msg {
		t.Errorf("--device cpu printed %q, %v", strings.TrimPrefix(errOut.String(), msg), err)
	}
}

// The cuda section of the config (and bench's flags for it) reaches the device as backend.Options, in every
// command that opens one.
func TestCUDASettingsReachTheDevice(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "cpu-run") // a checkpoint for eval, which takes the run's settings
	if code, _, errOut := runCLI(t, "train", "--config", "demo", "--device", "cpu", "--out", run, "--epochs", "1",
		"--set", "dataset.train_size=16", "--set", "dataset.test_size=16", "--set", "train.batch_size=16",
		"--set", "cuda.fuse=false"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errOut)
	}
	var got []backend.Options
	openExplained = func(name string, opt backend.Options) (backend.Device, error, error) {
		got = append(got, opt)
		return nil, nil, fmt.Errorf("probe: %s not opened", name)
	}
	t.Cleanup(func() { openExplained = backend.OpenExplained })
	sets := []string{"--set", "cuda.deterministic=false", "--set", "cuda.benchmark=true", "--set", "cuda.fuse=false"}
	for _, c := range []struct {
		args []string
		want backend.Options
	}{
		{[]string{"train", "--config", "demo", "--device", "cuda", "--out", filepath.Join(root, "a")}, backend.Options{}},
		{append([]string{"train", "--config", "demo", "--device", "cuda", "--out", filepath.Join(root, "b")}, sets...),
			backend.Options{Unfused: true, Nondeterministic: true, Benchmark: true}},
		{append([]string{"compare", "demo", "cifar_resnet8", "--device", "cuda", "--out", root, "--runs", root}, sets[:2]...),
			backend.Options{Nondeterministic: true}},
		{[]string{"train", "--config", "demo", "--device", "cuda", "--out", filepath.Join(root, "c"),
			"--set", "cuda.precision=bf16", "--set", "cuda.layout=nhwc"}, backend.Options{Precision: backend.BF16, Layout: backend.NHWC}},
		{[]string{"train", "--config", "demo", "--device", "cuda", "--out", filepath.Join(root, "d"),
			"--set", "cuda.graphs=true"}, backend.Options{Graphs: true}},
		{[]string{"bench", "--device", "cuda", "--model", "cifar_resnet8", "--graphs"}, backend.Options{Graphs: true}},
		{[]string{"eval", "--checkpoint", run, "--device", "cuda"}, backend.Options{Unfused: true}},
		{[]string{"bench", "--device", "cuda", "--model", "cifar_resnet8"}, backend.Options{}},
		{[]string{"bench", "--device", "cuda", "--model", "cifar_resnet8", "--precision", "fp16", "--layout", "nhwc"},
			backend.Options{Precision: backend.F16, Layout: backend.NHWC}},
		{[]string{"bench", "--device", "cuda", "--model", "cifar_resnet8", "--deterministic=false", "--cudnn-benchmark"},
			backend.Options{Nondeterministic: true, Benchmark: true}},
	} {
		got = nil
		code, _, errOut := runCLI(t, c.args...)
		if code != 1 || !strings.Contains(errOut, "probe: cuda not opened") || len(got) != 1 || got[0] != c.want {
			t.Errorf("%v: exit %d, %q; opened with %+v, want %+v", c.args, code, errOut, got, c.want)
		}
	}
}

// --device auto does not fall back to the CPU for a precision or layout that only the cuda backend runs:
// that would train other numbers than the config asks for.
func TestAutoDeviceRefusesCPUFallbackForActivationFormat(t *testing.T) {
	e := &env{stdout: &strings.Builder{}, stderr: &strings.Builder{}}
	c := config.Default().CUDA
	c.Precision, c.Layout = "fp16", "nhwc"
	d, err := openDevice(e, "auto", c)
	if err == nil {
		if d.Name() != "cuda" {
			t.Errorf("auto with fp16 NHWC opened %s", d.Name())
		}
		return
	}
	want := "backend: device auto: cuda.precision fp16 with cuda.layout nhwc needs the cuda backend, which did not open ("
	if msg := err.Error(); !strings.HasPrefix(msg, want) ||
		!strings.HasSuffix(msg, "); set device: cpu with cuda.precision: fp32 and cuda.layout: nchw to run on the CPU") {
		t.Errorf("got %q, want %q...", msg, want)
	}
}

// Training on the CPU with cuda.graphs is a config error, before anything is built or written.
func TestTrainRefusesGraphsOnCPU(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, errOut := runCLI(t, "train", "--config", "demo", "--device", "cpu", "--out", out, "--set", "cuda.graphs=true")
	want := "cuda.graphs true needs the cuda backend (device is cpu, which has no CUDA graphs): set device: cuda, or cuda.graphs: false"
	if code == 0 || stdout != "" || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want an error containing %q", code, stdout, errOut, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the refused run wrote %s", out)
	}
}

// A run folder that another process holds stops train, --resume and compare at once, naming the holder.
func TestRunFolderInUse(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "runs", "demo")
	lock, err := train.NewRunDir(run).Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	held := fmt.Sprintf("%s: the run folder is in use (process %d holds %s)\n", run, os.Getpid(), filepath.Join(run, "lock"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--config", "demo", "--device", "cpu", "--out", run}, "resnet: " + held},
		{[]string{"compare", "demo", "cifar_resnet8", "--device", "cpu", "--out", root, "--runs", filepath.Join(root, "runs")},
			"resnet: compare demo: " + held},
	} {
		args, want := c.args, c.want
		code, _, errOut := runCLI(t, args...)
		if code != 1 || errOut != want {
			t.Errorf("%v: exit %d, stderr %q; want exit 1, %q", args, code, errOut, want)
		}
	}
}
