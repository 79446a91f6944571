package interop

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/model"
	"resnet/internal/safetensors"
	"resnet/internal/train"
)

// loadInTorch is run by PyTorch on (model file, input file, output file, arch, state file): it builds the
// named module, loads the exported file with strict=True, writes its eval-mode logits on the input to the
// output file and the module's own state_dict, as PyTorch saves it, to the state file.
const loadInTorch = `
import os, sys
import torch, torchvision
from safetensors.torch import load_file, save_file
sys.path.insert(0, os.environ["RESNET_SCRIPTS"])
from torchvision_golden import CIFARResNet, cifar_densenet_bc
model_path, input_path, out_path, arch, state_path = sys.argv[1:6]
state = load_file(model_path)
if arch.startswith("cifar_densenet_bc"):
    depth, growth = arch.removeprefix("cifar_densenet_bc").split("_k")
    model = cifar_densenet_bc(int(depth), int(growth))
elif arch.startswith("cifar_"):
    model = CIFARResNet(int(arch.removeprefix("cifar_resnet")))
elif arch.startswith(("seres", "inception")):
    import timm
    model = timm.create_model(arch)
else:
    model = getattr(torchvision.models, arch)()
model.load_state_dict(state, strict=True)
model.eval()
with torch.no_grad():
    logits = model(load_file(input_path)["input"])
save_file({"logits": logits.contiguous()}, out_path)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, state_path)
`

// TestPyTorchLoadsExport exports checkpoints of resnet18, resnext50_32x4d, seresnet50, seresnext50_32x4d,
// inception_resnet_v2 (at 75x75, the smallest input it takes), densenet121, cifar_resnet20 and
// cifar_densenet_bc100_k12 and has PyTorch load them into torchvision's resnet18, resnext50_32x4d and
// densenet121, timm's seresnet50, seresnext50_32x4d and inception_resnet_v2 and the golden script's CIFAR
// modules with strict=True; their eval-mode logits must match the Go net's. The state_dict PyTorch then
// saves from its module imports into a fresh net with every value unchanged. seresnext50_32x4d has no
// preset of its own: it takes seresnet50's with model.arch set. It needs RESNET_TORCH_PYTHON, the python
// of scripts/setup-torch.sh:
//
//	RESNET_TORCH_PYTHON=$(scripts/setup-torch.sh) go test ./internal/interop -run PyTorch
func TestPyTorchLoadsExport(t *testing.T) {
	python := os.Getenv("RESNET_TORCH_PYTHON")
	if python == "" {
		t.Skip("set RESNET_TORCH_PYTHON=$(scripts/setup-torch.sh) to check the export against PyTorch")
	}
	scripts, err := filepath.Abs(filepath.Join("..", "..", "scripts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arch, preset  string
		classes, side int
	}{
		{"cifar_resnet20", "cifar_resnet20", 10, 32},
		{"resnet18", "resnet18", 1000, 64},
		{"resnext50_32x4d", "resnext50_32x4d", 1000, 64},
		{"seresnet50", "seresnet50", 1000, 64},
		{"seresnext50_32x4d", "seresnet50", 1000, 64},
		{"inception_resnet_v2", "inception_resnet_v2", 1000, 75},
		{"densenet121", "densenet121", 1000, 64},
		{"cifar_densenet_bc100_k12", "cifar_densenet_bc100_k12", 10, 32},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := config.Load(config.Source{File: tc.preset, Sets: []string{"model.arch=" + tc.arch}})
			if err != nil {
				t.Fatal(err)
			}
			spec, err := train.SpecFor(cfg.Model, tc.classes, tc.side)
			if err != nil {
				t.Fatal(err)
			}
			net, err := model.Build(cpu.New(), spec, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Free()
			if err := Load(net, goldenState(net), "golden weights"); err != nil {
				t.Fatal(err)
			}
			yml, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := train.NewRunDir(filepath.Join(dir, "run")).SaveCheckpoint(net, train.State{Step: 1}, yml, 1); err != nil {
				t.Fatal(err)
			}
			exported := filepath.Join(dir, "model.safetensors")
			if _, err := Export(filepath.Join(dir, "run"), exported); err != nil {
				t.Fatal(err)
			}

			x := make([]float32, 2*3*tc.side*tc.side)
			u := goldenUniform(goldenKey("input:", tc.arch), len(x))
			for i := range x {
				x[i] = float32(4*u[i] - 2)
			}
			input := filepath.Join(dir, "input.safetensors")
			if err := safetensors.WriteFile(input, &safetensors.File{Tensors: []safetensors.Tensor{safetensors.F32("input", []int{2, 3, tc.side, tc.side}, x)}}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "logits.safetensors")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			saved := filepath.Join(dir, "torch.safetensors")
			cmd := exec.CommandContext(ctx, python, "-c", loadInTorch, exported, input, out, tc.arch, saved)
			cmd.Env = append(os.Environ(), "RESNET_SCRIPTS="+scripts)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("PyTorch could not load the export: %v\n%s", err, stderr.String())
			}
			f, err := safetensors.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			lt, _ := f.Get("logits")
			theirs, err := Float32s(lt)
			if err != nil {
				t.Fatalf("PyTorch logits: %v", err)
			}
			checkTorchLogits(t, net, x, theirs, tc.arch+": PyTorch loaded the export with strict=True")
			checkReimport(t, net, saved)
		})
	}
}

// checkTorchLogits runs the net's eval-mode forward on the batch of 2 x and matches its logits with
// PyTorch's, each within abs 1e-5 + rel 1e-5; what says what PyTorch did, for the log.
func checkTorchLogits(t *testing.T, net *model.Net, x, theirs []float32, what string) {
	t.Helper()
	if err := net.Forward(x, 2, false); err != nil {
		t.Fatal(err)
	}
	ours, err := net.Logits(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(theirs) != len(ours) {
		t.Fatalf("PyTorch gave %d logits, the net %d", len(theirs), len(ours))
	}
	worst := 0.0
	for i := range ours {
		d := math.Abs(float64(ours[i] - theirs[i]))
		worst = max(worst, d/(1e-5+1e-5*math.Abs(float64(theirs[i]))))
	}
	t.Logf("%s; eval logits agree to %.3f of abs 1e-5 + rel 1e-5", what, worst)
	if worst > 1 {
		t.Errorf("eval logits differ from PyTorch's by %.3g of the tolerance", worst)
	}
}

// timmStateDict is run by PyTorch on (arch, side, state file, output file): it builds timm's model with
// PyTorch's seeded default initialisation, runs three training-mode forwards on random batches so that the
// BN running statistics and counters move from their defaults, and writes its state_dict as PyTorch's
// safetensors does, with an input batch and the model's eval-mode logits on it.
const timmStateDict = `
import sys
import torch, timm
from safetensors.torch import save_file
arch, side, state_path, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.manual_seed(20170223)
model = timm.create_model(arch)
model.train()
with torch.no_grad():
    for _ in range(3):
        model(torch.randn(2, 3, side, side))
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, state_path)
model.eval()
x = torch.randn(2, 3, side, side)
with torch.no_grad():
    logits = model(x)
save_file({"input": x, "logits": logits.contiguous()}, out_path)
`

// TestImportTimmStateDict reads the state_dict of timm's inception_resnet_v2, as PyTorch saves it after
// some training-mode forwards, into a net of the zoo: ReadStateDict finds its classifier, Load takes every
// tensor under timm's name with the BN counters, and the net's eval-mode logits match timm's. It needs
// RESNET_TORCH_PYTHON, as TestPyTorchLoadsExport.
func TestImportTimmStateDict(t *testing.T) {
	python := os.Getenv("RESNET_TORCH_PYTHON")
	if python == "" {
		t.Skip("set RESNET_TORCH_PYTHON=$(scripts/setup-torch.sh) to import a state_dict PyTorch wrote")
	}
	const arch, side = "inception_resnet_v2", 75
	dir := t.TempDir()
	state, out := filepath.Join(dir, "state.safetensors"), filepath.Join(dir, "out.safetensors")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", timmStateDict, arch, fmt.Sprint(side), state, out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("PyTorch: %v\n%s", err, stderr.String())
	}
	f, fc, err := ReadStateDict(state)
	if err != nil || fc != (Classifier{"classif.weight", 1000}) {
		t.Fatalf("ReadStateDict: %+v, %v", fc, err)
	}
	spec, err := model.Lookup(arch)
	if err != nil {
		t.Fatal(err)
	}
	spec.InputSize = side
	net, err := model.Build(cpu.New(), spec, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if err := Load(net, f, state); err != nil {
		t.Fatal(err)
	}
	if net.BatchesTracked != 3 {
		t.Errorf("num_batches_tracked %d after import, want 3", net.BatchesTracked)
	}
	ref, err := safetensors.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	xt, _ := ref.Get("input")
	lt, _ := ref.Get("logits")
	x, err := Float32s(xt)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := Float32s(lt)
	if err != nil {
		t.Fatal(err)
	}
	checkTorchLogits(t, net, x, theirs, arch+": timm's state_dict imported")
}

// checkReimport reads the state_dict PyTorch saved from its module into a fresh net of net's spec and
// checks that every tensor and the batch counter are net's.
func checkReimport(t *testing.T, net *model.Net, path string) {
	t.Helper()
	f, fc, err := ReadStateDict(path)
	if err != nil || fc != (Classifier{net.Spec.ClassifierName() + ".weight", net.Spec.NumClasses}) {
		t.Fatalf("PyTorch's state_dict: classifier %+v, %v", fc, err)
	}
	back, err := model.Build(cpu.New(), net.Spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Free()
	if err := Load(back, f, "PyTorch's state_dict"); err != nil {
		t.Fatal(err)
	}
	for i, p := range net.Params {
		want, _ := net.Get(p)
		got, _ := back.Get(back.Params[i])
		if !slices.Equal(got, want) {
			t.Errorf("%s differs after the trip through PyTorch", p.Name)
		}
	}
	if back.BatchesTracked != net.BatchesTracked {
		t.Errorf("num_batches_tracked %d after the trip through PyTorch, want %d", back.BatchesTracked, net.BatchesTracked)
	}
}
