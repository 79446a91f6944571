//go:build cuda

package cuda

import (
	"testing"

	"resnet/internal/backend"
)

// FreeMemory counts the blocks the allocator keeps for reuse as free: a tensor's memory is gone while it
// lives and back once it is freed. The driver allocates in pages, so on a GPU the figures agree to a few
// MiB (and other processes may move them); on the emulator they agree exactly.
func TestFreeMemoryCountsCachedBlocks(t *testing.T) {
	d := testDevice(t, backend.Options{})
	var _ backend.MemoryReporter = d
	var _ backend.PeakMemoryReporter = d // bench reports its peak
	before, err := d.FreeMemory()
	if err != nil || before <= 0 {
		t.Fatalf("FreeMemory = %d, %v", before, err)
	}
	const n = 16 << 20 // 64 MiB of float32
	x, err := d.Alloc(backend.Shape{n}, backend.F32, backend.NCHW)
	if err != nil {
		t.Fatal(err)
	}
	during, err := d.FreeMemory()
	if err != nil {
		t.Fatal(err)
	}
	d.Free(x)
	after, err := d.FreeMemory()
	if err != nil {
		t.Fatal(err)
	}
	const slack = 8 << 20
	if before-during < 4*n-slack {
		t.Errorf("a 64 MiB tensor took %d bytes of FreeMemory (%d before, %d with it)", before-during, before, during)
	}
	if d := after - before; d < -slack || d > slack {
		t.Errorf("FreeMemory %d after freeing the tensor, %d before", after, before)
	}
}
