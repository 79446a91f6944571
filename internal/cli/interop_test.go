package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/interop"
	"resnet/internal/safetensors"
)

// torchWeights is an F16 state_dict of cifar_resnet20 written by PyTorch (scripts/torchvision_golden.py).
var torchWeights = filepath.Join("..", "interop", "testdata", "cifar_resnet20.weights.safetensors")

// A PyTorch file imports into a run that eval scores, train continues and export writes back unchanged.
func TestImportEvalTrainExport(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "r20")
	small := []string{"--set", "model.arch=cifar_resnet20", "--set", "dataset.train_size=64", "--set", "dataset.test_size=32",
		"--set", "train.epochs=1", "--set", "eval.batch_size=32", "--set", "dataset.workers=1"}
	code, out, errOut := runCLI(t, append([]string{"import", torchWeights, "--config", "demo", "--out", run}, small...)...)
	if code != 0 || !strings.Contains(out, "imported cifar_resnet20 (10 classes)") || !strings.Contains(out, "resnet train --resume "+run) {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "eval", "--checkpoint", run, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s%s", code, out, errOut)
	}
	var rep struct {
		N    int     `json:"n"`
		Loss float64 `json:"loss"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.N != 32 || !(rep.Loss > 0) {
		t.Errorf("eval report %s (%v)", out, err)
	}

	exported := filepath.Join(dir, "r20.safetensors")
	code, out, errOut = runCLI(t, "export", "--checkpoint", run, "--out", exported)
	if code != 0 || !strings.Contains(out, "exported cifar_resnet20 (10 classes, step 0)") {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	orig, err := safetensors.ReadFile(torchWeights)
	if err != nil {
		t.Fatal(err)
	}
	back, err := safetensors.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Tensors) != len(orig.Tensors) {
		t.Errorf("export holds %d tensors, the PyTorch file %d", len(back.Tensors), len(orig.Tensors))
	}
	for _, o := range orig.Tensors {
		b, ok := back.Get(o.Name)
		if !ok {
			t.Errorf("export lacks %s", o.Name)
			continue
		}
		if o.DType == safetensors.Int64 {
			if string(o.Data) != string(b.Data) {
				t.Errorf("%s changed", o.Name)
			}
			continue
		}
		want, err1 := interop.Float32s(o)
		got, err2 := interop.Float32s(b)
		if err1 != nil || err2 != nil || len(want) != len(got) {
			t.Fatalf("%s: %v %v", o.Name, err1, err2)
		}
		for i := range want {
			if want[i] != got[i] {
				t.Errorf("%s[%d] = %v, PyTorch's file has %v", o.Name, i, got[i], want[i])
				break
			}
		}
	}

	code, out, errOut = runCLI(t, "train", "--resume", run)
	if code != 0 || !strings.Contains(out, "resuming "+run) || !strings.Contains(out, "step-000000002.safetensors") {
		t.Errorf("train --resume of the imported run: exit %d\n%s%s", code, out, errOut)
	}
}

// --mean and --std put the normalisation the weights were trained with into the imported run's config.
func TestImportTakesTheNormalisation(t *testing.T) {
	run := filepath.Join(t.TempDir(), "r20")
	code, out, errOut := runCLI(t, "import", torchWeights, "--config", "demo", "--out", run, "--set", "model.arch=cifar_resnet20",
		"--mean", "0.4914,0.4822,0.4465", "--std", "0.2470,0.2435,0.2616")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	y, err := os.ReadFile(filepath.Join(run, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mean: [0.4914, 0.4822, 0.4465]", "std: [0.247, 0.2435, 0.2616]", "norm_scale: 1\n"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("the run's config lacks %q:\n%s", want, y)
		}
	}
	code, _, errOut = runCLI(t, "import", torchWeights, "--config", "demo", "--out", run+"-2", "--mean", "0.5,0.5,0.5")
	if want := "--mean and --std go together"; code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("--mean alone: exit %d, stderr %q, want it to contain %q", code, errOut, want)
	}
	code, _, errOut = runCLI(t, "import", torchWeights, "--config", "demo", "--out", run+"-3", "--mean", "125,123,114", "--std", "63,62,66")
	if want := "dataset.mean[0] must be in [0, 1]"; code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("pixel values for --mean: exit %d, stderr %q, want it to contain %q", code, errOut, want)
	}
}

func TestImportExportErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import", torchWeights}, exitUsage, "resnet: --config is required: it names the model and the data set the weights are for\n"},
		{[]string{"import"}, exitUsage, "resnet: accepts 1 arg(s), received 0\n"},
		{[]string{"export", "--out", "x.safetensors"}, exitUsage, "resnet: --checkpoint and --out are required\n"},
		{[]string{"import", torchWeights, "--config", "cifar_resnet20", "--set", "dataset.name=cifar100", "--out", filepath.Join(dir, "a")}, exitError,
			"resnet: " + torchWeights + " has 10 classes (fc.weight), but the config's data set cifar100 has 100: import into a config for 10 classes (or --set model.num_classes=10)\n"},
		{[]string{"import", torchWeights, "--config", "cifar_resnet20", "--set", "model.arch=cifar_resnet32", "--out", filepath.Join(dir, "b")}, exitError,
			"resnet: " + torchWeights + " holds cifar_resnet20 weights (metadata arch), the config builds cifar_resnet32\n"},
		{[]string{"export", "--checkpoint", filepath.Join(dir, "none"), "--out", filepath.Join(dir, "x.safetensors")}, exitError,
			"resnet: checkpoint: stat " + filepath.Join(dir, "none") + ": no such file or directory\n"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d and:\n%s", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
