package safetensors

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// These tests check files against the reference implementation (the Rust parser behind the Python
// safetensors package, the same one safetensors.torch uses). They skip where it is not installed.

// describeTensors is run by Python on a file path and prints each tensor's dtype, shape, raw bytes and
// values, plus the metadata, as JSON.
const describeTensors = `
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

tensors = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="np") as f:
    metadata = f.metadata()
out = {"metadata": metadata, "tensors": {}}
for name, a in tensors.items():
    out["tensors"][name] = {
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "hex": np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes().hex(),
        "values": a.astype(np.float64).ravel().tolist() if a.dtype.kind in "fiu" else None,
    }
json.dump(out, sys.stdout)
`

// writeTensors is run by Python with a file path and writes one tensor of each common dtype there;
// describeTensors is appended to it to report what was written.
const writeTensors = `
import sys
import numpy as np
from safetensors.numpy import save_file

save_file({
    "conv.weight": np.array([[1.5, -2.0, 3.25], [0.0, 1e-8, -1e30]], dtype=np.float32),
    "step": np.array([1, 1 << 40, -7], dtype=np.int64),
    "half": np.array([0.5, -65504.0], dtype=np.float16),
    "labels": np.array([[1, 2], [3, -4]], dtype=np.int32),
    "bytes": np.array([0, 128, 255], dtype=np.uint8),
    "double": np.array([3.141592653589793], dtype=np.float64),
    "flags": np.array([True, False, True]),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}, sys.argv[1], metadata={"epoch": "3", "arch": "resnet18"})
`

// numpyDTypes maps each dtype to the name numpy gives it.
var numpyDTypes = map[DType]string{
	Float32: "float32", Int64: "int64", Float16: "float16", Int32: "int32",
	Uint8: "uint8", Float64: "float64", Bool: "bool",
}

type pythonDescription struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  map[string]struct {
		DType  string    `json:"dtype"`
		Shape  []int     `json:"shape"`
		Hex    string    `json:"hex"`
		Values []float64 `json:"values"`
	} `json:"tensors"`
}

// findPython looks for python3 with safetensors and numpy once per test binary: starting Python is
// the slow part of these tests.
var findPython = sync.OnceValues(func() (python, skipReason string) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return "", "python3 not found; skipping the cross-check with the Python safetensors library"
	}
	if out, err := exec.Command(python, "-c", "import safetensors.numpy, numpy").CombinedOutput(); err != nil {
		return "", fmt.Sprintf("python3 cannot import safetensors and numpy (pip install safetensors numpy); skipping: %s", out)
	}
	return python, ""
})

// runPython runs script with args, skipping the test when python3 with safetensors and numpy is missing.
func runPython(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	python, skipReason := findPython()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"-c", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	return out
}

func describeInPython(t *testing.T, path string) pythonDescription {
	t.Helper()
	var d pythonDescription
	if err := json.Unmarshal(runPython(t, describeTensors, path), &d); err != nil {
		t.Fatalf("decode Python's description: %v", err)
	}
	return d
}

func TestPythonReadsGoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "from_go.safetensors")
	f := &File{
		Metadata: map[string]string{"epoch": "7", "arch": "resnet50", "note": "a<b & \"c\" ü"},
		Tensors: []Tensor{
			F32("conv1.weight", []int{2, 1, 1, 3}, []float32{1, -2, 3.5, 0, 1e-8, -1e30}),
			I64("step", []int{3}, []int64{1, 1 << 40, -1}),
			I64("bn1.num_batches_tracked", nil, []int64{42}),
			{Name: "half", DType: Float16, Shape: []int{2}, Data: []byte{0x00, 0x38, 0xff, 0xfb}}, // 0.5, -65504
			{Name: "labels", DType: Int32, Shape: []int{2, 1}, Data: []byte{1, 0, 0, 0, 0xfc, 0xff, 0xff, 0xff}},
			{Name: "double", DType: Float64, Shape: []int{1}, Data: []byte{0x18, 0x2d, 0x44, 0x54, 0xfb, 0x21, 0x09, 0x40}},
			F32("empty", []int{0, 3}, nil),
			{Name: "mask", DType: Uint8, Shape: []int{3}, Data: []byte{1, 0, 255}},
			{Name: "flags", DType: Bool, Shape: []int{2}, Data: []byte{1, 0}},
		},
	}
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	got := describeInPython(t, path)
	if !reflect.DeepEqual(got.Metadata, f.Metadata) {
		t.Errorf("Python read metadata %v, want %v", got.Metadata, f.Metadata)
	}
	if len(got.Tensors) != len(f.Tensors) {
		t.Errorf("Python read %d tensors, want %d", len(got.Tensors), len(f.Tensors))
	}
	for _, want := range f.Tensors {
		py, ok := got.Tensors[want.Name]
		if !ok {
			t.Errorf("Python did not find tensor %q", want.Name)
			continue
		}
		shape := want.Shape
		if shape == nil {
			shape = []int{}
		}
		if py.DType != numpyDTypes[want.DType] || !reflect.DeepEqual(py.Shape, shape) || py.Hex != hex.EncodeToString(want.Data) {
			t.Errorf("Python read tensor %q as %s %v %s, want %s %v %x",
				want.Name, py.DType, py.Shape, py.Hex, numpyDTypes[want.DType], shape, want.Data)
		}
	}
	weights, _ := f.Get("conv1.weight")
	values, _ := weights.Float32s()
	for i, v := range values {
		if py := got.Tensors["conv1.weight"].Values; py[i] != float64(v) {
			t.Errorf("conv1.weight[%d]: Python read %v, want %v", i, py[i], v)
		}
	}
}

func TestGoReadsPythonFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "from_python.safetensors")
	var want pythonDescription
	if err := json.Unmarshal(runPython(t, writeTensors+describeTensors, path), &want); err != nil {
		t.Fatalf("decode Python's description: %v", err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile of Python's file: %v", err)
	}
	if !reflect.DeepEqual(f.Metadata, want.Metadata) {
		t.Errorf("metadata = %v, want %v", f.Metadata, want.Metadata)
	}
	if len(f.Tensors) != len(want.Tensors) {
		t.Errorf("read %d tensors, want %d", len(f.Tensors), len(want.Tensors))
	}
	for _, tensor := range f.Tensors {
		py, ok := want.Tensors[tensor.Name]
		if !ok {
			t.Errorf("read tensor %q, which Python does not list", tensor.Name)
			continue
		}
		if numpyDTypes[tensor.DType] != py.DType || !reflect.DeepEqual(tensor.Shape, py.Shape) || hex.EncodeToString(tensor.Data) != py.Hex {
			t.Errorf("tensor %q = %s %v %x, want %s %v %s",
				tensor.Name, tensor.DType, tensor.Shape, tensor.Data, py.DType, py.Shape, py.Hex)
		}
		var values []float64
		switch tensor.DType {
		case Float32:
			v, err := tensor.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range v {
				values = append(values, float64(x))
			}
		case Int64:
			v, err := tensor.Int64s()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range v {
				values = append(values, float64(x))
			}
		default:
			continue
		}
		if !reflect.DeepEqual(values, py.Values) && !(len(values) == 0 && len(py.Values) == 0) {
			t.Errorf("tensor %q values = %v, want %v", tensor.Name, values, py.Values)
		}
	}
}
