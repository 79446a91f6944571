// Package interop moves weights between this project's nets and PyTorch. A net's parameter table already
// uses torchvision's state_dict names and shapes (conv weights (Cout, Cin, kH, kW), fc.weight
// (classes, features), BN weight/bias/running_mean/running_var, the projection shortcut as
// layerN.i.downsample.0 (conv) and .1 (BN)); what this package adds is the per-BN num_batches_tracked
// buffer, the checks that a file from elsewhere fits a net exactly, and the dtype conversion.
//
// The CIFAR nets have no torchvision class; they use the same naming pattern (conv1, bn1,
// layerN.i.conv1/bn1/conv2/bn2, fc), and their option-A shortcuts have no parameters. The nets torchvision
// does not define use the names of timm's (resnetv2_50's stages.i.blocks.j, seresnet50's layerN.i.se,
// inception_resnet_v2's conv2d_1a.conv, repeat.i.branchK.j.bn, repeat.i.conv2d.bias and classif).
package interop

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"resnet/internal/half"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// batchesTrackedSuffix is the name of the counter torchvision keeps beside every BN's running statistics.
const batchesTrackedSuffix = "num_batches_tracked"

// batchesTrackedName is the num_batches_tracked key of the BN that owns the running-variance tensor p.
func batchesTrackedName(p *model.Param) string {
	return strings.TrimSuffix(p.Name, "running_var") + batchesTrackedSuffix
}

// StateDict returns the net's weights and BN buffers as a torchvision state_dict: every tensor of the
// parameter table as F32 under its own name, and each BN's num_batches_tracked as an I64 scalar. Optimizer
// state is not part of it. The counters come first so every tensor stays aligned to its element size.
func StateDict(net *model.Net) (*safetensors.File, error) {
	f := &safetensors.File{Metadata: map[string]string{}}
	for _, p := range net.Params {
		if p.Kind == model.BNRunningVar {
			f.Tensors = append(f.Tensors, safetensors.I64(batchesTrackedName(p), []int{}, []int64{net.BatchesTracked}))
		}
	}
	for _, p := range net.Params {
		v, err := net.Get(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p.Name, err)
		}
		f.Tensors = append(f.Tensors, safetensors.F32(p.Name, p.Shape, v))
	}
	return f, nil
}

// maxListed bounds how many problems of a file an error spells out.
const maxListed = 12

// Load copies a state_dict into net. Every tensor of the net's parameter table must be present with its
// shape and a floating-point dtype (F32, F16, BF16 and F64 are converted to float32); a key the net has
// no place for is an error, as with PyTorch's load_state_dict(strict=True). num_batches_tracked may be
// absent (the counter then starts at 0); when present it must be an integer scalar. Every value must be a
// finite number, and running variances >= 0. A file saved from a DataParallel wrapper, whose keys all
// start with "module.", is read without that prefix. label names the file in errors.
func Load(net *model.Net, f *safetensors.File, label string) error {
	tensors := make(map[string]safetensors.Tensor, len(f.Tensors))
	prefix := "module."
	for _, t := range f.Tensors {
		if !strings.HasPrefix(t.Name, prefix) {
			prefix = ""
		}
	}
	for _, t := range f.Tensors {
		tensors[strings.TrimPrefix(t.Name, prefix)] = t
	}

	var problems []string
	seen := make(map[string]bool, len(tensors))
	values := make([][]float32, len(net.Params))
	var tracked int64
	for i, p := range net.Params {
		t, ok := tensors[p.Name]
		seen[p.Name] = true
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing key %s (%s needs %v)", p.Name, net.Spec.Name, []int(p.Shape)))
		case !model.SameShape(t.Shape, p.Shape):
			problems = append(problems, fmt.Sprintf("key %s has shape %v in the file, %s needs %v", p.Name, t.Shape, net.Spec.Name, []int(p.Shape)))
		default:
			v, err := Float32s(t)
			if err != nil {
				problems = append(problems, fmt.Sprintf("key %s: %v", p.Name, err))
			}
			values[i] = v
		}
		if p.Kind != model.BNRunningVar {
			continue
		}
		name := batchesTrackedName(p)
		seen[name] = true
		if t, ok := tensors[name]; ok {
			n, err := counter(t)
			if err != nil {
				problems = append(problems, fmt.Sprintf("key %s: %v", name, err))
			}
			tracked = max(tracked, n)
		}
	}
	for _, t := range f.Tensors {
		if name := strings.TrimPrefix(t.Name, prefix); !seen[name] {
			problems = append(problems, fmt.Sprintf("unexpected key %s (%s %v): %s has no such tensor", name, t.DType, t.Shape, net.Spec.Name))
		}
	}
	if len(problems) > 0 {
		return loadError(label, net.Spec.Name, problems)
	}
	for i, p := range net.Params {
		if err := model.CheckValues(p.Name, values[i]); err != nil {
			return fmt.Errorf("%s: %w: the file is damaged or was saved from a diverged run", label, err)
		}
	}
	for i, p := range net.Params {
		if err := net.Set(p, values[i]); err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
	}
	net.BatchesTracked = tracked
	return nil
}

func loadError(label, arch string, problems []string) error {
	var b strings.Builder
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "%s does not fit %s (%d %s):", label, arch, len(problems), noun)
	for i, p := range problems {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(problems)-maxListed)
			break
		}
		b.WriteString("\n  " + p)
	}
	return fmt.Errorf("%s", b.String())
}

// counter reads an integer scalar (any integer dtype PyTorch writes for num_batches_tracked).
func counter(t safetensors.Tensor) (int64, error) {
	if len(t.Shape) > 1 || (len(t.Shape) == 1 && t.Shape[0] != 1) {
		return 0, fmt.Errorf("shape %v, want a scalar", t.Shape)
	}
	switch t.DType {
	case safetensors.Int64:
		v, err := t.Int64s()
		if err != nil {
			return 0, err
		}
		return v[0], nil
	case safetensors.Int32:
		if len(t.Data) != 4 {
			return 0, fmt.Errorf("I32 scalar holds %d bytes, want 4", len(t.Data))
		}
		return int64(int32(binary.LittleEndian.Uint32(t.Data))), nil
	}
	return 0, fmt.Errorf("dtype %s, want I64", t.DType)
}

// Float32s decodes a floating-point tensor of any dtype PyTorch commonly saves (F32, F16, BF16, F64) to
// float32. F16 and BF16 convert exactly; F64 rounds to nearest.
func Float32s(t safetensors.Tensor) ([]float32, error) {
	size := map[safetensors.DType]int{safetensors.Float32: 4, safetensors.Float16: 2, safetensors.BFloat16: 2, safetensors.Float64: 8}[t.DType]
	if size == 0 {
		return nil, fmt.Errorf("dtype %s is not a floating-point type; want F32, F16, BF16 or F64", t.DType)
	}
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	if len(t.Data) != n*size {
		return nil, fmt.Errorf("%s shape %v needs %d bytes of data, the file holds %d", t.DType, t.Shape, n*size, len(t.Data))
	}
	v := make([]float32, n)
	for i := range v {
		switch t.DType {
		case safetensors.Float32:
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		case safetensors.Float64:
			v[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		case safetensors.BFloat16:
			v[i] = half.FromBF16(binary.LittleEndian.Uint16(t.Data[2*i:]))
		case safetensors.Float16:
			v[i] = half.FromF16(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	}
	return v, nil
}
