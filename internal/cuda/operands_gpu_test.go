//go:build cuda

package cuda

import (
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
)

// Bad operands of every op return the errors of the checks in internal/backend, as on every backend: on
// the GPU, and on the kernel emulator under -tags 'cuda kernelemu'. Both paths, since the unfused one takes
// some operands apart on its own (SGD slot by slot).
func TestOperandChecks(t *testing.T) {
	for _, m := range gpuModes {
		t.Run(m.name, func(t *testing.T) { backendtest.RunOperandChecks(t, openGPU(t, m.opt)) })
	}
}

// The check that stays in the backend: a tensor must come from the device it is passed to (gpuModes open
// two devices).
func TestTensorOfAnotherDevice(t *testing.T) {
	a, b := openGPU(t, backend.Options{}), openGPU(t, backend.Options{Unfused: true})
	x, err := a.Alloc(backend.Shape{2}, backend.F32, backend.NCHW)
	mustOK(t, err)
	defer a.Free(x)
	const want = "cuda: Zero: t was allocated by another CUDA device"
	if err := b.Zero(x); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
