package cpu

import (
	"fmt"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
)

func TestFindNonFinite(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			d := NewWithWorkers(workers)
			defer d.Close()
			backendtest.RunFindNonFinite(t, d)
		})
	}
}

// A training step checks every gradient with FindNonFinite: after the first call it allocates nothing.
func TestFindNonFiniteDoesNotAllocate(t *testing.T) {
	d := NewWithWorkers(2)
	defer d.Close()
	var ts []backend.Tensor
	for _, n := range []int{64, 1000, 1 << 16} {
		x, err := d.Alloc(backend.Shape{n}, backend.F32, backend.NCHW)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, x)
	}
	nonNegative := []bool{true, false, false}
	if allocs := testing.AllocsPerRun(10, func() {
		if i, err := d.FindNonFinite(ts, nonNegative); i != -1 || err != nil {
			t.Fatalf("FindNonFinite = %d, %v; want -1", i, err)
		}
	}); allocs != 0 {
		t.Fatalf("FindNonFinite allocates %v times per call", allocs)
	}
}
