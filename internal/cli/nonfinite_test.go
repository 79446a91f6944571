package cli

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/safetensors"
	"resnet/internal/train"
)

// importedRun imports the PyTorch cifar_resnet20 weights into a small run and returns its folder and
// checkpoint.
func importedRun(t *testing.T) (run, checkpoint string) {
	t.Helper()
	run = filepath.Join(t.TempDir(), "r20")
	code, out, errOut := runCLI(t, "import", torchWeights, "--config", "demo", "--out", run,
		"--set", "model.arch=cifar_resnet20", "--set", "dataset.train_size=64", "--set", "dataset.test_size=32",
		"--set", "eval.batch_size=32", "--set", "dataset.workers=1")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	checkpoint, err := train.FindCheckpoint(run)
	if err != nil {
		t.Fatal(err)
	}
	return run, checkpoint
}

// editedCheckpoint writes a copy of checkpoint to path with fn applied to the values of tensor name.
func editedCheckpoint(t *testing.T, checkpoint, path, name string, fn func([]float32)) {
	t.Helper()
	f, err := safetensors.ReadFile(checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range f.Tensors {
		if x.Name == name {
			v, err := x.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			fn(v)
			f.Tensors[i] = safetensors.F32(name, x.Shape, v)
		}
	}
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint of finite weights so large that every logit overflows scores 100% error, not 0%, and the
// report, table or JSON, says how many images had non-finite outputs; the JSON stays valid, with a null
// loss.
func TestEvalOfOverflowingNet(t *testing.T) {
	run, checkpoint := importedRun(t)
	huge := filepath.Join(filepath.Dir(run), "huge.safetensors")
	for _, name := range []string{"fc.weight", "fc.bias"} {
		editedCheckpoint(t, checkpoint, huge, name, func(v []float32) {
			for i := range v {
				v[i] = 3.4e38
			}
		})
		checkpoint = huge
	}

	code, out, errOut := runCLI(t, "eval", "--checkpoint", run, "--ensemble", huge, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s%s", code, out, errOut)
	}
	var rep struct {
		N          int      `json:"n"`
		Loss       *float64 `json:"loss"`
		LossFinite bool     `json:"loss_finite"`
		Top1Err    float64  `json:"top1_err"`
		Top5Err    float64  `json:"top5_err"`
		NonFinite  int      `json:"nonfinite_outputs"`
		Models     []struct {
			Loss       *float64 `json:"loss"`
			LossFinite bool     `json:"loss_finite"`
			Top1Err    float64  `json:"top1_err"`
			NonFinite  int      `json:"nonfinite_outputs"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("eval --json wrote invalid JSON (%v):\n%s", err, out)
	}
	if rep.N != 32 || rep.Loss != nil || rep.LossFinite || rep.Top1Err != 1 || rep.Top5Err != 1 || rep.NonFinite != 32 {
		t.Errorf("ensemble with the overflowing net: %s", out)
	}
	if len(rep.Models) != 2 || rep.Models[0].Loss == nil || !rep.Models[0].LossFinite || rep.Models[0].NonFinite != 0 || rep.Models[0].Top1Err == 1 {
		t.Errorf("the sound net's own scores: %s", out)
	}
	if len(rep.Models) == 2 && !strings.Contains(out, `"loss": null,
      "loss_finite": false,
      "top1_err": 1,
      "top5_err": 1,
      "nonfinite_outputs": 32`) {
		t.Errorf("the overflowing net's own scores:\n%s", out)
	}

	code, out, errOut = runCLI(t, "eval", "--checkpoint", huge)
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"    0    100.00%    100.00%   NaN\n", "\ncifar_resnet20: 32 of 32 images had a NaN or infinite output, counted wrong at top-1 and top-5\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("eval table lacks %q:\n%s", want, out)
		}
	}
}

// eval and export refuse a checkpoint with a NaN, naming the file, the tensor and the index.
func TestEvalAndExportRefuseNonFiniteCheckpoint(t *testing.T) {
	run, checkpoint := importedRun(t)
	bad := filepath.Join(filepath.Dir(run), "nan.safetensors")
	editedCheckpoint(t, checkpoint, bad, "layer1.0.conv1.weight", func(v []float32) { v[17] = float32(math.NaN()) })
	want := "resnet: checkpoint " + bad + ": layer1.0.conv1.weight[17] is NaN: the run had diverged when it was written, or the file is damaged; use an earlier checkpoint\n"
	for _, args := range [][]string{
		{"eval", "--checkpoint", bad},
		{"eval", "--checkpoint", run, "--ensemble", bad},
		{"export", "--checkpoint", bad, "--out", filepath.Join(filepath.Dir(run), "x.safetensors")},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != exitError || errOut != want {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 1 and:\n%s", args, code, errOut, want)
		}
	}
}

// A diverging run exits with code 3 and says at which step, at what rate, and what to do.
func TestDivergedTrainExitCode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, out, errOut := runCLI(t, "train", "--config", "demo", "--out", dir, "--device", "cpu", "--epochs", "2",
		"--set", "dataset.train_size=64", "--set", "dataset.test_size=32", "--set", "train.batch_size=16",
		"--set", "eval.batch_size=32", "--set", "train.lr=1e6", "--set", "train.schedule.type=constant")
	want := "resnet: train: epoch 1 step 4 (lr 1e+06): after the forward pass, layer1.0.bn1.running_var[3] is +Inf: " +
		"the run diverged; lower train.lr (e.g. --set train.lr=1e+05) and start a new run\n"
	if code != exitDiverged || errOut != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 3 and:\n%s\nstdout:\n%s", code, errOut, want, out)
	}
}
