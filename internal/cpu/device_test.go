package cpu

import (
	"strings"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
)

func TestRegisteredAsCPU(t *testing.T) {
	d, err := backend.Open("cpu", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "cpu" {
		t.Fatalf("Name() = %q, want cpu", d.Name())
	}
	must(t, d.Sync())
}

// The environment names the backend, the GEMM kernel in use and the worker count.
func TestEnvironment(t *testing.T) {
	d := NewWithWorkers(3)
	defer d.Close()
	env := d.Environment()
	for k, want := range map[string]string{"backend": "cpu", "gemm_kernel": gemmDefault.name, "workers": "3"} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	for _, k := range []string{"gomaxprocs", "go_version", "platform"} {
		if env[k] == "" {
			t.Errorf("%s is missing from %v", k, env)
		}
	}
	if d.ConvAlgorithms() != nil {
		t.Errorf("the CPU reports convolution algorithm choices")
	}
}

func TestBufferOps(t *testing.T) {
	d := NewWithWorkers(1)
	x, err := d.Alloc(backend.Shape{2, 3}, backend.F32, backend.NCHW)
	must(t, err)
	assertClose(t, "fresh alloc", values(t, x), make([]float64, 6), 0, 0)
	must(t, d.Upload(x, []float32{1, 2, 3, 4, 5, 6}))
	out := make([]float32, 6)
	must(t, d.Download(out, x))
	assertClose(t, "download", out, []float64{1, 2, 3, 4, 5, 6}, 0, 0)

	y := tensor(t, d, nil, 3, 2) // same count, other shape
	must(t, d.Copy(y, x))
	assertClose(t, "copy", values(t, y), []float64{1, 2, 3, 4, 5, 6}, 0, 0)

	// A view of the second row only.
	row := backend.Tensor{Shape: backend.Shape{3}, DType: backend.F32, Buf: x.Buf, Off: 3}
	v, err := Float32s(row)
	must(t, err)
	assertClose(t, "view", v, []float64{4, 5, 6}, 0, 0)
	must(t, d.Zero(row))
	assertClose(t, "zero view", values(t, x), []float64{1, 2, 3, 0, 0, 0}, 0, 0)

	l, err := d.Alloc(backend.Shape{3}, backend.I32, backend.NCHW)
	must(t, err)
	must(t, d.UploadInt32(l, []int32{7, -1, 2}))
	iv, err := Int32s(l)
	must(t, err)
	if iv[0] != 7 || iv[1] != -1 || iv[2] != 2 {
		t.Fatalf("Int32s = %v", iv)
	}
	must(t, d.Zero(l))
	if iv[0] != 0 {
		t.Fatalf("Zero left %v", iv)
	}

	d.Free(x)
	if err := d.Upload(x, out); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Fatalf("Upload to a freed tensor: err = %v, want one saying it was freed", err)
	}
}

// Bad operands of every op return the errors of the checks in internal/backend, as on every backend.
func TestOperandChecks(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	backendtest.RunOperandChecks(t, d)
}

// The CPU backend also checks the label values, which the CUDA one would have to copy back to do.
func TestLabelOutsideTheClasses(t *testing.T) {
	d := NewWithWorkers(1)
	defer d.Close()
	err := d.SoftmaxCrossEntropy(tensor(t, d, nil, 2, 10), labelsTensor(t, d, []int32{0, 10}), tensor(t, d, nil, 2),
		backend.Tensor{}, 1)
	const want = "cpu: SoftmaxCrossEntropy: label 10 of sample 1 is outside [0, 10)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
