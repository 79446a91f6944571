package cli

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"resnet/internal/sysmem"
)

// runWithLimit is runCLI with the host memory limit fixed at 8 GiB and two CPU workers, so the estimates
// and the advice do not depend on the machine.
func runWithLimit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var o, e bytes.Buffer
	limit := func() sysmem.Limit { return sysmem.Limit{Bytes: 8 << 30, Source: "MemAvailable"} }
	code = run(&env{stdout: &o, stderr: &e, hostMemory: limit}, args)
	return code, o.String(), e.String()
}

// --dry-run prints the memory estimate and the limit, and refuses a run that does not fit as training
// would.
func TestDryRunMemoryEstimate(t *testing.T) {
	code, out, errOut := runWithLimit(t, "train", "--config", "demo", "--dry-run", "--set", "device=cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "# memory: about 210.7 MiB for a training step of cifar_resnet8 at 32x32, batch 32, its buffers sized for the evaluation batch of 256 (activations 195.1 MiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 13.9 KiB, host copies 11.0 KiB, data loaders 13.5 MiB)\n# limit: 8.0 GiB (MemAvailable)\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("dry-run output ends\n%s\nwant\n%s", out[max(0, len(out)-len(want)-200):], want)
	}
	// Without a larger evaluation batch the line gives the training batch alone.
	code, out, errOut = runWithLimit(t, "train", "--config", "demo", "--dry-run", "--set", "device=cpu", "--set", "eval.batch_size=16")
	if want := "for a training step of cifar_resnet8 at 32x32, batch 32 (activations"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("eval batch 16: exit %d (%s), output lacks %q:\n%s", code, errOut, want, out)
	}
	// Accumulating gradients, the net holds a micro-batch, plus the sum of the gradients.
	code, out, errOut = runWithLimit(t, "train", "--config", "demo", "--dry-run", "--set", "device=cpu", "--set", "eval.batch_size=8",
		"--set", "train.accumulate_steps=4")
	if want := "batch 32 in 4 micro-batches of 8 (activations"; code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "accumulated gradients 296.0 KiB") {
		t.Errorf("accumulate_steps 4: exit %d (%s), output lacks %q and the accumulated gradients:\n%s", code, errOut, want, out)
	}
	code, out, _ = runWithLimit(t, "train", "--config", "demo", "--dry-run", "--set", "device=auto")
	if want := "# limit: 8.0 GiB (MemAvailable) for the data loaders and host copies; the network's share is checked when training starts, against a GPU's free memory or this limit on the CPU\n"; code != 0 || !strings.HasSuffix(out, want) {
		t.Errorf("device auto: exit %d, output does not end with %q:\n%s", code, want, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "train.batch_size=100000000", "--set", "device=cpu"},
			"resnet: config: train.batch_size 100000000 needs about 77.2 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 4.5 TiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~10000\n"},
		{[]string{"--set", "model.arch=resnet18", "--set", "dataset.name=imagenet", "--set", "dataset.root=data", "--set", "dataset.image_size=100000", "--set", "dataset.resize_size=100000", "--set", "device=cpu"},
			"resnet: config: dataset.image_size 100000 needs about 1.4 PiB for a training step of resnet18 at 100000x100000 (activations 1.3 PiB, parameters 133.9 MiB, workspace 2.7 TiB, labels and statistics 1.0 MiB, host copies 1001.0 KiB, data loaders 126.5 TiB); the limit is 8.0 GiB (MemAvailable); lower dataset.image_size to at most ~220 and dataset.resize_size in proportion\n"},
		{[]string{"--set", "model.arch=resnet18", "--set", "model.shortcut=A", "--set", "dataset.name=imagenet", "--set", "dataset.root=data", "--set", "dataset.image_size=16", "--set", "dataset.resize_size=16"},
			"resnet: model resnet18 needs inputs of at least 29x29 (got 16x16: layer4.0: an option-A shortcut cannot subsample 256x1x1 to 512x1x1): raise dataset.image_size to at least 29\n"},
	} {
		code, _, errOut := runWithLimit(t, append([]string{"train", "--config", "demo", "--dry-run"}, tc.args...)...)
		if code != 1 || errOut != tc.want {
			t.Errorf("%v: exit %d, stderr\n%s\nwant exit 1, stderr\n%s", tc.args, code, errOut, tc.want)
		}
	}
}

// train, bench and eval refuse sizes that do not fit before allocating, naming the key or flag (and a
// multi-scale size the net cannot take); the exit code is 1 (an error), not 2 (bad usage).
func TestSizesOverTheMemoryLimitAreRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	train := []string{"train", "--config", "demo", "--out", dir, "--device", "cpu", "--epochs", "1",
		"--set", "dataset.train_size=32", "--set", "dataset.test_size=16", "--set", "train.batch_size=16", "--set", "eval.batch_size=16"}
	if code, _, errOut := runWithLimit(t, train...); code != 0 {
		t.Fatalf("train exit %d: %s", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--config", "demo", "--out", dir + "2", "--device", "cpu", "--set", "eval.batch_size=100000000"},
			"resnet: config: eval.batch_size 100000000 needs about 77.2 TiB for a training step of cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 4.5 TiB); the limit is 8.0 GiB (MemAvailable); lower eval.batch_size to at most ~10000\n"},
		{[]string{"bench", "--device", "cpu", "--batch-size", "100000000"},
			"resnet: --batch-size 100000000 needs about 157.3 TiB for a training step of cifar_resnet20 at 32x32 (activations 156.1 TiB, parameters 3.1 MiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, input batch 1.1 TiB); the limit is 8.0 GiB (MemAvailable); lower --batch-size to at most ~4900\n"},
		{[]string{"eval", "--checkpoint", dir, "--batch-size", "100000000"},
			"resnet: --batch-size 100000000 needs about 77.2 TiB for evaluating cifar_resnet8 at 32x32 (activations 72.7 TiB, parameters 887.9 KiB, workspace 1.1 MiB, labels and statistics 4.5 GiB, host copies 4.1 GiB, data loaders 4.5 TiB); the limit is 8.0 GiB (MemAvailable); lower --batch-size to at most ~10000\n"},
		{[]string{"eval", "--checkpoint", dir, "--multi-scale", "32,100000"},
			"resnet: --multi-scale 32,100000 needs about 17.5 TiB for the multi-scale test of cifar_resnet8 at 100000x100000 (network 2.8 MiB, fully-convolutional nets 10.7 TiB, their workspace 5.2 TiB, images in flight 1.5 TiB); the limit is 8.0 GiB (MemAvailable); lower its largest size to at most ~2100\n"},
		{[]string{"eval", "--checkpoint", dir, "--multi-scale", "32,30"},
			"resnet: --multi-scale 32,30: model cifar_resnet8 cannot take 30x30 inputs (layer3.0: an option-A shortcut cannot subsample 32x15x15 to 64x8x8); the nearest sizes it takes are 28x28 and 32x32\n"},
	} {
		code, _, errOut := runWithLimit(t, tc.args...)
		if code != 1 || errOut != tc.want {
			t.Errorf("%v: exit %d, stderr\n%s\nwant exit 1, stderr\n%s", tc.args, code, errOut, tc.want)
		}
	}
}
