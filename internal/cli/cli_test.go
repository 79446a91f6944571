package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(&env{stdout: &o, stderr: &e}, args)
	return code, o.String(), e.String()
}

// The JSON model list carries the reference counts of docs/reference-counts.md.
func TestModelsJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "models", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var infos []modelInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		params   int64
		family   string
		residual bool
	}{
		"resnet18": {11689512, "imagenet", true}, "resnet34": {21797672, "imagenet", true},
		"resnet50": {25557032, "imagenet", true}, "resnet101": {44549160, "imagenet", true},
		"resnet152": {60192808, "imagenet", true}, "plain18": {11515688, "imagenet", false},
		"plain34": {21623848, "imagenet", false}, "cifar_resnet20": {269722, "cifar", true},
		"cifar_resnet110": {1727962, "cifar", true}, "cifar_resnet1202": {19421274, "cifar", true},
		"cifar_plain56":   {853018, "cifar", false},
		"resnext50_32x4d": {25028904, "imagenet", true}, "resnext101_32x8d": {88791336, "imagenet", true},
		"resnext101_64x4d": {83455272, "imagenet", true}, "wide_resnet50_2": {68883240, "imagenet", true},
		"wide_resnet101_2": {126886696, "imagenet", true},
		"resnetv2_50":      {25549352, "imagenet", true}, "resnetv2_101": {44541480, "imagenet", true},
		"cifar_preact_resnet110": {1727962, "cifar", true}, "cifar_preact_resnet164": {1703258, "cifar", true},
		"cifar_preact_resnet1001": {10327706, "cifar", true},
		"cifar_wrn28_10":          {36479194, "cifar", true}, "cifar_wrn40_4": {8949210, "cifar", true},
		"seresnet50": {28088024, "imagenet", true}, "seresnet101": {49326872, "imagenet", true},
		"seresnet152": {66821848, "imagenet", true}, "seresnext50_32x4d": {27559896, "imagenet", true},
		"densenet121": {7978856, "imagenet", false}, "densenet161": {28681000, "imagenet", false},
		"densenet169": {14149480, "imagenet", false}, "densenet201": {20013928, "imagenet", false},
		"cifar_densenet_bc100_k12": {769162, "cifar", false},
		"inception_resnet_v2":      {55843464, "imagenet", true},
	}
	// The SE-ResNets' MACs are exact (timm's definitions; see internal/model/senet_test.go).
	seMACs := map[string]int64{"seresnet50": 4091699200, "seresnet101": 7806148608, "seresnet152": 11520204800,
		"seresnext50_32x4d": 4232994816}
	// torchvision's MACs of the wider family, exactly; its arch, groups and width per group.
	wider := map[string]struct {
		macs          int64
		arch          string
		groups, width int
	}{
		"resnext50_32x4d": {4230479872, "resnext", 32, 4}, "resnext101_32x8d": {16414015488, "resnext", 32, 8},
		"resnext101_64x4d": {15460270080, "resnext", 64, 4}, "wide_resnet50_2": {11398021120, "wide_resnet", 1, 128},
		"wide_resnet101_2": {22753050624, "wide_resnet", 1, 128}, "resnet50": {4089184256, "resnet", 1, 64},
	}
	// timm's pre-activation nets at 224x224, exactly (FACTS.md gives 4.089 and 7.801 GMACs).
	// The Wide ResNets' MACs are this builder's (internal/model/wrn_test.go), one 32x32 image.
	// torchvision's DenseNets (internal/model/densenet_test.go), exactly, and the CIFAR DenseNet-BC as
	// PyTorch counts the same structure. timm's inception_resnet_v2 at 299x299, exactly
	// (internal/model/inception_resnet_test.go).
	wantMACs := map[string]int64{"resnetv2_50": 4089184256, "resnetv2_101": 7801405440,
		"cifar_wrn28_10": 5243328768, "cifar_wrn40_4": 1298582016,
		"densenet121": 2834161664, "densenet161": 7727907072, "densenet169": 3359843328, "densenet201": 4291365888,
		"cifar_densenet_bc100_k12": 287929692, "inception_resnet_v2": 13155794016}
	seen := 0
	for _, m := range infos {
		w, ok := want[m.Name]
		if !ok {
			continue
		}
		seen++
		if m.Params != w.params || m.Family != w.family || m.Residual != w.residual || m.MACs <= 0 {
			t.Errorf("%s: %+v", m.Name, m)
		}
		if x, ok := wider[m.Name]; ok && (m.MACs != x.macs || m.Arch != x.arch || m.Groups != x.groups || m.WidthPerGroup != x.width) {
			t.Errorf("%s: %+v, want %+v", m.Name, m, x)
		}
		if macs, ok := wantMACs[m.Name]; ok && m.MACs != macs {
			t.Errorf("%s: %d MACs, want %d", m.Name, m.MACs, macs)
		}
		if macs, ok := seMACs[m.Name]; ok && (m.MACs != macs || m.SEReduction != 16) {
			t.Errorf("%s: %d MACs, SE reduction %d; want %d, 16", m.Name, m.MACs, m.SEReduction, macs)
		}
		if m.Name == "inception_resnet_v2" && (m.Depth != 176 || m.Block != "inception_resnet" || m.Shortcut != "identity" || m.Input != 299) {
			t.Errorf("%s: %+v", m.Name, m)
		}
	}
	if seen != len(want) || len(infos) != 45 {
		t.Errorf("found %d of %d reference models among %d entries (want 45)", seen, len(want), len(infos))
	}
}

func TestModelsTableListsPresets(t *testing.T) {
	code, out, _ := runCLI(t, "models")
	if code != 0 || !strings.Contains(out, "resnet50") || !strings.Contains(out, "25,557,032") || !strings.Contains(out, "presets (resnet train --config NAME):\n  cifar_densenet_bc100_k12") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// The table groups the zoo by family: each family's heading names its paper and comes before its models,
// and a model is listed under its own family's heading.
func TestModelsTableGroupsByFamily(t *testing.T) {
	code, out, _ := runCLI(t, "models")
	if code != 0 {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	under := map[string]string{}
	heading := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, "\")") && !strings.HasPrefix(line, " ") {
			heading = line
			continue
		}
		if f := strings.Fields(line); len(f) == 8 && heading != "" { // a model's row, not the presets after the table
			under[f[0]] = heading
		}
	}
	for name, want := range map[string]string{
		"resnet50":                 `ResNet and its plain counterpart (He et al. 2015, "Deep Residual Learning for Image Recognition")`,
		"cifar_plain20":            `ResNet and its plain counterpart (He et al. 2015, "Deep Residual Learning for Image Recognition")`,
		"resnext50_32x4d":          `ResNeXt (Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural Networks")`,
		"cifar_wrn28_10":           `Wide ResNet (Zagoruyko and Komodakis 2016, "Wide Residual Networks")`,
		"resnetv2_50":              `Pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks")`,
		"seresnext50_32x4d":        `Squeeze-and-Excitation (Hu et al. 2018, "Squeeze-and-Excitation Networks")`,
		"densenet121":              `DenseNet (Huang et al. 2017, "Densely Connected Convolutional Networks")`,
		"cifar_densenet_bc100_k12": `DenseNet (Huang et al. 2017, "Densely Connected Convolutional Networks")`,
		"inception_resnet_v2": `Inception-ResNet (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual ` +
			`Connections on Learning")`,
	} {
		if under[name] != want {
			t.Errorf("%s is listed under %q, want %q", name, under[name], want)
		}
	}
}

func TestDryRunPrintsConfigAndSummary(t *testing.T) {
	t.Chdir(t.TempDir()) // the embedded preset must be found from any directory
	code, out, errOut := runCLI(t, "train", "--config", "resnet50.yaml", "--dry-run", "--set", "train.lr=0.2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"# config from embedded configs/resnet50.yaml", "arch: resnet50", "lr: 0.2", "# model resnet50: residual, depth 50, bottleneck blocks, shortcut B", "layer4", "2048x7x7", "25,557,032", "4089.18"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat("runs"); err == nil {
		t.Error("--dry-run created a run directory")
	}
}

// The summaries of the nets of their own topology: a DenseNet's says how its layers connect and names no
// shortcut, its stages the dense blocks (their layer counts as blocks), the transitions and norm5; the
// Inception-ResNet-v2 preset's describes its units and lists its blocks in timm's order, with their maps at
// 299x299.
func TestDryRunSummaryOfTopologies(t *testing.T) {
	for preset, wants := range map[string][]string{
		"densenet121": {
			"# model densenet121: densely connected, depth 121, dense layers (BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k=32), transitions halving channels, input 3x224x224, 1000 classes\n",
			"  denseblock3      24  1024x14x14  2,837,760   549.13", "  transition3       0     512x7x7", "norm5", "7,978,856  2834.16",
		},
		"inception_resnet_v2": {
			"# model inception_resnet_v2: residual, depth 176, Inception-ResNet-A x10 (scale 0.17), -B x20 (0.10), " +
				"-C x10 (0.20, the last 1.00 without ReLU), BN eps 0.001, shortcut identity, input 3x299x299, 1000 classes",
			"   mixed_6a       1  1088x17x17   2,664,960   1398.19", "   repeat_2       9    2080x8x8", "55,843,464  13155.79",
		},
	} {
		code, out, errOut := runCLI(t, "train", "--config", preset, "--dry-run")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", preset, code, errOut)
		}
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("%s: dry-run output lacks %q:\n%s", preset, want, out)
			}
		}
	}
}

// Every command takes the same model names: the short and paper spellings that bench accepts are accepted
// by train and its config validator too.
func TestModelSpellingsAcceptedEverywhere(t *testing.T) {
	for _, name := range []string{"res50", "ResNet-50", "resnet_50"} {
		code, out, errOut := runCLI(t, "train", "--config", "resnet50", "--set", "model.arch="+name, "--dry-run")
		if code != 0 || !strings.Contains(out, "# model resnet50: residual, depth 50") {
			t.Errorf("train --set model.arch=%s: exit %d, stderr %q", name, code, errOut)
		}
	}
	code, out, errOut := runCLI(t, "train", "--config", "cifar_resnet20", "--set", "model.depth=56", "--dry-run")
	if code != 0 || !strings.Contains(out, "# model cifar_resnet56: residual, depth 56") {
		t.Errorf("model.depth=56 on cifar_resnet20: exit %d, stderr %q", code, errOut)
	}
	// The start line of a run names the net it trains, the depth applied.
	args := append(tinyTrainArgs(filepath.Join(t.TempDir(), "run"), 1), "--set", "model.depth=14")
	code, out, errOut = runCLI(t, args...)
	if code != 0 || !strings.HasPrefix(out, "training cifar_resnet14 on cpu, ") {
		t.Errorf("model.depth=14 on demo (cifar_resnet8): exit %d, output %q, stderr %q", code, firstLine(out), errOut)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestErrorsAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("model:\n  arch: cifar_resnet20\ntrain:\n  batch_size: -3\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"train", "--config", bad}, 1, "resnet: config: train.batch_size must be > 0 (got -3) in " + bad + " line 4\n"},
		{[]string{"train", "--config", "nope"}, 1, `resnet: config: no such file or preset "nope"`},
		{[]string{"train", "--bogus"}, 2, "resnet: unknown flag: --bogus\n"},
		{[]string{"frobnicate"}, 2, `resnet: unknown command "frobnicate" for "resnet"`},
		{[]string{"eval"}, 2, "resnet: --checkpoint is required\n"},
		{[]string{"eval", "--checkpoint", dir, "--ensemble", ","}, 2, "resnet: --ensemble entry 1 of 2 is empty: give run directories or checkpoint files separated by commas\n"},
		{[]string{"train", "--resume", dir}, 1, "resnet: resume: " + dir + " is not a run folder (it has no config.yaml and no checkpoints)\n"},
		{[]string{"eval", "--checkpoint", filepath.Join(dir, "none")}, 1, "resnet: checkpoint: stat " + filepath.Join(dir, "none") + ": no such file or directory\n"},
		{[]string{"bench", "--model", "vgg16"}, 1, `resnet: --model must be a known architecture (got "vgg16"; known: resnet18/34/50/101/152,`},
		{[]string{"bench", "--model", "resnet51"}, 1, `resnet: --model depth must be one of 18, 34, 50, 101, 152 (got "resnet51"); did you mean resnet50?` + "\n"},
		{[]string{"train", "--set", "model.arch=resnt50", "--dry-run"}, 1, `resnet: config: model.arch must be a known architecture (got "resnt50"; known: `},
		{[]string{"bench", "--device", "tpu"}, 1, `resnet: backend: unknown device "tpu" (available: [cpu cuda])`},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != c.code || !strings.HasPrefix(errOut, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d, stderr starting %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}

// Train a tiny run through the CLI, evaluate its checkpoint, and check that eval agrees with the last
// metrics line of training.
func TestTrainThenEval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--config", "demo", "--out", dir, "--device", "cpu", "--epochs", "1",
		"--set", "dataset.train_size=64", "--set", "dataset.test_size=40", "--set", "train.batch_size=16",
		"--set", "eval.batch_size=16"}
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("train exit %d: %s\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "run directory: "+dir) {
		t.Errorf("train output does not say where the results are:\n%s", out)
	}
	for _, f := range []string{"config.yaml", "metrics.jsonl", "reproducibility.json", "checkpoints/step-000000004.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	code, out, errOut = runCLI(t, "eval", "--checkpoint", dir, "--json")
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, errOut)
	}
	var rep evalReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	metrics, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	var m struct {
		TestErr  float64 `json:"test_err"`
		TestLoss float64 `json:"test_loss"`
	}
	json.Unmarshal(bytes.TrimSpace(metrics), &m)
	// eval scores averaged softmax probabilities, training the device's cross-entropy: the losses agree
	// to float32 rounding.
	if rep.N != 40 || rep.Top1Err != m.TestErr || math.Abs(float64(rep.Loss)-m.TestLoss) > 1e-5*m.TestLoss || rep.Model != "cifar_resnet8" {
		t.Errorf("eval %+v disagrees with training's last evaluation %+v", rep, m)
	}
	evalJSON := func(extra ...string) evalReport {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"eval", "--checkpoint", dir, "--json"}, extra...)...)
		if code != 0 {
			t.Fatalf("eval %v: exit %d: %s", extra, code, errOut)
		}
		var r evalReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ten := evalJSON("--ten-crop", "--per-class")
	ms := evalJSON("--multi-scale", "32,40", "--recompute-bn", "2")
	ens := evalJSON("--ensemble", dir)
	if ten.Protocol != "10-crop" || ten.N != 40 || len(ten.PerClass) != 10 || ten.PerClass[0].Name != "disc" {
		t.Errorf("10-crop report %+v", ten)
	}
	if ms.Protocol != "multi-scale" || len(ms.Scales) != 2 || ms.RecomputeBN != 2 || ms.N != 40 {
		t.Errorf("multi-scale report %+v", ms)
	}
	if len(ens.Models) != 2 || ens.Top1Err != rep.Top1Err || math.Abs(float64(ens.Loss-rep.Loss)) > 1e-6 {
		t.Errorf("an ensemble of one model twice %+v differs from the model %+v", ens, rep)
	}
	code, out, _ = runCLI(t, "eval", "--checkpoint", dir, "--ten-crop")
	if code != 0 || !strings.Contains(out, "10-crop") || !strings.Contains(out, "top-1 err") {
		t.Errorf("eval table: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--ten-crop", "--multi-scale", "32"}, "resnet: choose one of --center-crop, --ten-crop and --multi-scale\n"},
		{[]string{"--multi-scale", "32,big"}, `resnet: --multi-scale "32,big": "big" is not a positive integer`},
		{[]string{"--recompute-bn", "-1"}, "resnet: --recompute-bn must be >= 0 (got -1)\n"},
	} {
		code, _, errOut := runCLI(t, append([]string{"eval", "--checkpoint", dir}, c.args...)...)
		if code != 2 || !strings.HasPrefix(errOut, c.msg) {
			t.Errorf("eval %v: exit %d, stderr %q; want exit 2, stderr starting %q", c.args, code, errOut, c.msg)
		}
	}
	// A second plain train into the same directory must refuse rather than overwrite.
	code, _, errOut = runCLI(t, args...)
	if code != 1 || !strings.Contains(errOut, "already holds a run") {
		t.Errorf("second train into %s: exit %d, %s", dir, code, errOut)
	}
}
