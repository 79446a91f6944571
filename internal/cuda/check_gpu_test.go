//go:build cuda

package cuda

import (
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
)

// FindNonFinite on the GPU gives the CPU reference's answers: the kernel compares, it computes nothing, so
// the answers are exact.
func TestFindNonFinite(t *testing.T) {
	d := openGPU(t, backend.Options{})
	backendtest.RunFindNonFinite(t, d)
}

// One check is one memset, one launch per non-empty tensor and one download of the flags.
func TestFindNonFiniteLaunchesOneKernelPerTensor(t *testing.T) {
	d := openGPU(t, backend.Options{})
	var ts []backend.Tensor
	for _, n := range []int{5, 0, 300000} {
		x, err := d.Alloc(backend.Shape{n}, backend.F32, backend.NCHW)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Free(x)
		ts = append(ts, x)
	}
	d.ResetLaunchCounts()
	if i, err := d.FindNonFinite(ts, []bool{true, true, false}); i != -1 || err != nil {
		t.Fatalf("FindNonFinite = %d, %v; want -1", i, err)
	}
	if got := d.LaunchCounts()["find_nonfinite"]; got != 2 {
		t.Fatalf("find_nonfinite ran %d times, want 2 (one per non-empty tensor)", got)
	}
}
