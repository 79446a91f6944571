package interop

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/config"
	"resnet/internal/model"
	"resnet/internal/safetensors"
	"resnet/internal/train"
)

// smallNet is the demo preset's cifar_resnet8 on the CPU, with the golden generator's weights and BN
// statistics (so that no tensor holds a default value a lost copy would also give).
func smallNet(t *testing.T) (*model.Net, config.Config) {
	t.Helper()
	cfg, err := config.Load(config.Source{File: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := train.SpecFor(cfg.Model, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	net, err := buildCPU(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	if err := net.Init(1); err != nil {
		t.Fatal(err)
	}
	if err := Load(net, goldenState(net), "golden weights"); err != nil {
		t.Fatal(err)
	}
	return net, cfg
}

func TestExportImportRoundTrip(t *testing.T) {
	net, cfg := smallNet(t)
	net.BatchesTracked = 5
	for _, p := range net.Params { // momentum that export must leave out and import must not bring back
		if p.Kind.Trainable() {
			v := make([]float32, p.Shape.Numel())
			for i := range v {
				v[i] = 0.5
			}
			if err := net.Device().Upload(p.Momentum, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	yml, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	ckpt, err := train.NewRunDir(run).SaveCheckpoint(net, train.State{Epoch: 3, Step: 42}, yml, 1)
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "model.safetensors")
	x, err := Export(run, out)
	if err != nil {
		t.Fatal(err)
	}
	if x.Checkpoint != ckpt || x.Step != 42 || x.Spec.Name != "cifar_resnet8" {
		t.Errorf("Export = %+v", x)
	}
	exported, err := safetensors.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"format": exportFormat, "arch": "cifar_resnet8", "num_classes": "10", "step": "42", "epoch": "3", "source": ckpt, "stride_in_1x1": "false"} {
		if got := exported.Metadata[k]; got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	want, err := StateDict(net)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "export", exported, want)

	f, fc, err := ReadStateDict(out)
	if err != nil || fc != (Classifier{"fc.weight", 10}) {
		t.Fatalf("ReadStateDict: %+v, %v", fc, err)
	}
	run2 := filepath.Join(dir, "imported")
	path, err := Import(f, out, net.Spec, cfg, run2)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := train.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.State.Step != 0 || ck.State.Epoch != 0 || ck.State.BatchesTracked != 5 || ck.Arch != "cifar_resnet8" {
		t.Errorf("imported checkpoint state %+v arch %s", ck.State, ck.Arch)
	}
	for _, w := range want.Tensors {
		got, ok := ck.Tensor(w.Name)
		if !ok || got.DType != w.DType || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("imported checkpoint: %s differs from the exported tensor", w.Name)
		}
	}
	for _, p := range net.Params {
		if !p.Kind.Trainable() {
			continue
		}
		m, ok := ck.Tensor("optimizer.momentum_buffer." + p.Name)
		if !ok || !bytes.Equal(m.Data, make([]byte, len(m.Data))) {
			t.Errorf("imported checkpoint: momentum of %s is missing or not zero", p.Name)
		}
	}

	// Export of the imported run gives the same file content, and a second import refuses to overwrite.
	x2, err := Export(run2, filepath.Join(dir, "again.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := safetensors.ReadFile(x2.Out)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "re-export", again, want)
	if _, err := Import(f, out, net.Spec, cfg, run2); err == nil || err.Error() != run2+" already holds a run; choose another directory with --out" {
		t.Errorf("import over a run: %v", err)
	}
}

func sameTensors(t *testing.T, what string, got, want *safetensors.File) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Errorf("%s: %d tensors, want %d", what, len(got.Tensors), len(want.Tensors))
	}
	for _, w := range want.Tensors {
		g, ok := got.Get(w.Name)
		if !ok {
			t.Errorf("%s: no %s", what, w.Name)
			continue
		}
		if g.DType != w.DType || !model.SameShape(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s: %s is %s %v, want %s %v with the same bytes", what, w.Name, g.DType, g.Shape, w.DType, w.Shape)
		}
	}
}

// edit returns a copy of f with fn applied to its tensor list.
func edit(f *safetensors.File, fn func([]safetensors.Tensor) []safetensors.Tensor) *safetensors.File {
	return &safetensors.File{Tensors: fn(append([]safetensors.Tensor(nil), f.Tensors...))}
}

func replace(name string, with safetensors.Tensor) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i, t := range ts {
			if t.Name == name {
				ts[i] = with
			}
		}
		return ts
	}
}

// withValue is tensor name of f (F32) with value i changed to v.
func withValue(f *safetensors.File, name string, i int, v float32) safetensors.Tensor {
	t, _ := f.Get(name)
	vals, _ := t.Float32s()
	vals = slices.Clone(vals)
	vals[i] = v
	return safetensors.F32(name, t.Shape, vals)
}

func TestLoadErrors(t *testing.T) {
	net, _ := smallNet(t)
	good, err := StateDict(net)
	if err != nil {
		t.Fatal(err)
	}
	remove := func(name string) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			var out []safetensors.Tensor
			for _, t := range ts {
				if t.Name != name {
					out = append(out, t)
				}
			}
			return out
		}
	}
	add := func(x safetensors.Tensor) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor { return append(ts, x) }
	}
	for _, tc := range []struct {
		name string
		f    *safetensors.File
		want string
	}{
		{"missing", edit(good, remove("layer1.0.conv1.weight")),
			"m.safetensors does not fit cifar_resnet8 (1 problem):\n  missing key layer1.0.conv1.weight (cifar_resnet8 needs [16 16 3 3])"},
		{"extra", edit(good, add(safetensors.F32("layer1.0.downsample.0.weight", []int{16, 16, 1, 1}, make([]float32, 256)))),
			"m.safetensors does not fit cifar_resnet8 (1 problem):\n  unexpected key layer1.0.downsample.0.weight (F32 [16 16 1 1]): cifar_resnet8 has no such tensor"},
		{"shape", edit(good, replace("fc.weight", safetensors.F32("fc.weight", []int{1000, 64}, make([]float32, 64000)))),
			"m.safetensors does not fit cifar_resnet8 (1 problem):\n  key fc.weight has shape [1000 64] in the file, cifar_resnet8 needs [10 64]"},
		{"dtype", edit(good, replace("bn1.weight", safetensors.Tensor{Name: "bn1.weight", DType: safetensors.Int32, Shape: []int{16}, Data: make([]byte, 64)})),
			"m.safetensors does not fit cifar_resnet8 (1 problem):\n  key bn1.weight: dtype I32 is not a floating-point type; want F32, F16, BF16 or F64"},
		{"counter", edit(good, replace("bn1.num_batches_tracked", safetensors.F32("bn1.num_batches_tracked", []int{}, []float32{3}))),
			"m.safetensors does not fit cifar_resnet8 (1 problem):\n  key bn1.num_batches_tracked: dtype F32, want I64"},
		{"nan", edit(good, replace("layer1.0.conv1.weight", withValue(good, "layer1.0.conv1.weight", 17, float32(math.NaN())))),
			"m.safetensors: layer1.0.conv1.weight[17] is NaN: the file is damaged or was saved from a diverged run"},
		{"inf", edit(good, replace("fc.bias", safetensors.Tensor{Name: "fc.bias", DType: safetensors.Float16, Shape: []int{10}, Data: append(make([]byte, 18), 0x00, 0xfc)})),
			"m.safetensors: fc.bias[9] is -Inf: the file is damaged or was saved from a diverged run"},
		{"variance", edit(good, replace("layer2.0.bn1.running_var", withValue(good, "layer2.0.bn1.running_var", 3, -0.5))),
			"m.safetensors: layer2.0.bn1.running_var[3] is -0.5 (a variance cannot be negative): the file is damaged or was saved from a diverged run"},
		{"several", edit(edit(good, remove("fc.bias")), add(safetensors.F32("head.weight", []int{2}, []float32{1, 2}))),
			"m.safetensors does not fit cifar_resnet8 (2 problems):\n  missing key fc.bias (cifar_resnet8 needs [10])\n  unexpected key head.weight (F32 [2]): cifar_resnet8 has no such tensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := net.Get(net.Params[0])
			err := Load(net, tc.f, "m.safetensors")
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load error:\n%v\nwant:\n%s", err, tc.want)
			}
			after, _ := net.Get(net.Params[0])
			if !slices.Equal(before, after) {
				t.Error("a failed Load changed the net")
			}
		})
	}

	// A file with nothing the net needs lists the first problems and counts the rest.
	err = Load(net, &safetensors.File{}, "empty.safetensors")
	if err == nil || !strings.HasPrefix(err.Error(), "empty.safetensors does not fit cifar_resnet8 (37 problems):\n  missing key conv1.weight (cifar_resnet8 needs [16 3 3 3])") ||
		!strings.HasSuffix(err.Error(), "\n  ... and 25 more") {
		t.Errorf("Load of an empty file: %v", err)
	}
}

func TestLoadAcceptsPyTorchVariants(t *testing.T) {
	net, _ := smallNet(t)
	good, err := StateDict(net)
	if err != nil {
		t.Fatal(err)
	}
	conv1, _ := net.Get(net.Params[0])

	// DataParallel prefix, no num_batches_tracked, and conv1 in BF16 and F64.
	var variant []safetensors.Tensor
	for _, x := range good.Tensors {
		if strings.HasSuffix(x.Name, batchesTrackedSuffix) {
			continue
		}
		x.Name = "module." + x.Name
		variant = append(variant, x)
	}
	bf16 := make([]byte, 2*len(conv1))
	want := make([]float32, len(conv1))
	for i, v := range conv1 {
		b := math.Float32bits(v) >> 16 // truncation: exact in BF16 by construction
		binary.LittleEndian.PutUint16(bf16[2*i:], uint16(b))
		want[i] = math.Float32frombits(b << 16)
	}
	variant[0] = safetensors.Tensor{Name: "module.conv1.weight", DType: safetensors.BFloat16, Shape: []int{16, 3, 3, 3}, Data: bf16}
	net.BatchesTracked = 9
	if err := Load(net, &safetensors.File{Tensors: variant}, "dp.safetensors"); err != nil {
		t.Fatal(err)
	}
	got, _ := net.Get(net.Params[0])
	if !slices.Equal(got, want) || net.BatchesTracked != 0 {
		t.Errorf("BF16 conv1.weight or the missing counters did not load as expected (batches tracked %d)", net.BatchesTracked)
	}
}

func TestFloat32s(t *testing.T) {
	half := []uint16{0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555}
	wantHalf := []float32{1, -2, 0x1p-24, 1023 * 0x1p-24, 65504, float32(math.Inf(1)), float32(math.Inf(-1)), 0, 0.333251953125}
	data := make([]byte, 2*len(half))
	for i, h := range half {
		binary.LittleEndian.PutUint16(data[2*i:], h)
	}
	got, err := Float32s(safetensors.Tensor{Name: "h", DType: safetensors.Float16, Shape: []int{len(half)}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != wantHalf[i] {
			t.Errorf("F16 %#04x = %v, want %v", half[i], got[i], wantHalf[i])
		}
	}
	if math.Float32bits(got[7]) != 1<<31 {
		t.Errorf("F16 -0 lost its sign")
	}
	if v, _ := Float32s(safetensors.Tensor{DType: safetensors.Float16, Shape: []int{1}, Data: []byte{0x01, 0x7e}}); v[0] == v[0] {
		t.Errorf("F16 NaN = %v", v[0])
	}

	f64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.1))
	binary.LittleEndian.PutUint64(f64[8:], math.Float64bits(-1e300))
	if v, err := Float32s(safetensors.Tensor{DType: safetensors.Float64, Shape: []int{2}, Data: f64}); err != nil || v[0] != float32(0.1) || !math.IsInf(float64(v[1]), -1) {
		t.Errorf("F64 = %v, %v", v, err)
	}
	if v, err := Float32s(safetensors.Tensor{DType: safetensors.BFloat16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0xa0, 0xc0}}); err != nil || v[0] != 1 || v[1] != -5 {
		t.Errorf("BF16 = %v, %v", v, err)
	}
	if _, err := Float32s(safetensors.Tensor{DType: safetensors.Float32, Shape: []int{3}, Data: make([]byte, 8)}); err == nil ||
		err.Error() != "F32 shape [3] needs 12 bytes of data, the file holds 8" {
		t.Errorf("short data: %v", err)
	}
}

func TestReadStateDictNeedsClassifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := safetensors.WriteFile(path, &safetensors.File{Tensors: []safetensors.Tensor{safetensors.F32("w", []int{1}, []float32{1})}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadStateDict(path); err == nil || err.Error() != path+": no fc.weight, head.fc.weight, classifier.weight or classif.weight tensor: not a state_dict of a net of the zoo" {
		t.Errorf("ReadStateDict: %v", err)
	}
}

// An export names the torchvision class that loads it, for the ResNets and the wider family alike, and
// none for a net torchvision has no class of.
func TestTorchvisionFit(t *testing.T) {
	for name, want := range map[string]string{
		"resnet50":                 "torchvision.models.resnet50(num_classes=1000)",
		"resnext50_32x4d":          "torchvision.models.resnext50_32x4d(num_classes=1000)",
		"resnext101_64x4d":         "torchvision.models.resnext101_64x4d(num_classes=1000)",
		"wide_resnet50_2":          "torchvision.models.wide_resnet50_2(num_classes=1000)",
		"seresnet50":               `timm.create_model("seresnet50", num_classes=1000)`,
		"seresnext50_32x4d":        `timm.create_model("seresnext50_32x4d", num_classes=1000)`,
		"resnetv2_50":              `timm.create_model("resnetv2_50", num_classes=1000)`,
		"inception_resnet_v2":      `timm.create_model("inception_resnet_v2", num_classes=1000)`,
		"densenet121":              "torchvision.models.densenet121(num_classes=1000)",
		"densenet161":              "torchvision.models.densenet161(num_classes=1000)",
		"cifar_densenet_bc100_k12": "none",
		"resnext50_8x16d":          "none",
		"plain50":                  "none",
		"cifar_resnet20":           "none",
	} {
		s, err := model.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := torchvisionFit(s); !strings.HasPrefix(got, want) {
			t.Errorf("torchvisionFit(%s) = %q, want %q", name, got, want)
		}
	}
}

// A pre-activation net goes out and back in with timm's names, its classifier a (classes, features, 1, 1)
// head.fc.weight from which ReadStateDict takes the class count.
func TestExportImportPreAct(t *testing.T) {
	cfg, err := config.Load(config.Source{File: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model.Arch, cfg.Model.Depth = "cifar_preact_resnet20", 0
	spec, err := train.SpecFor(cfg.Model, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	net, err := buildCPU(spec)
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
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if _, err := train.NewRunDir(run).SaveCheckpoint(net, train.State{Step: 1}, yml, 1); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "model.safetensors")
	if _, err := Export(run, out); err != nil {
		t.Fatal(err)
	}
	f, fc, err := ReadStateDict(out)
	if err != nil || fc != (Classifier{"head.fc.weight", 10}) {
		t.Fatalf("ReadStateDict: %+v, %v", fc, err)
	}
	if fc, ok := f.Get("head.fc.weight"); !ok || !model.SameShape(fc.Shape, backend.Shape{10, 64, 1, 1}) {
		t.Errorf("head.fc.weight: %v, %v", fc.Shape, ok)
	}
	want, err := StateDict(net)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "export", f, want)
	path, err := Import(f, out, spec, cfg, filepath.Join(dir, "imported"))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := train.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want.Tensors {
		if got, ok := ck.Tensor(w.Name); !ok || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("imported checkpoint: %s differs from the exported tensor", w.Name)
		}
	}
}
