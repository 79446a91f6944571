//go:build cuda && kernelemu

package cuda

import (
	"os"
	"testing"
	"unsafe"

	"resnet/internal/backend"
	"resnet/internal/cpu"
)

func init() {
	// EMU_CPU_CONV=1 runs the emulated device's convolutions with the CPU backend's implementation: a
	// whole-network comparison then isolates the kernels from convolution rounding (and runs faster).
	if os.Getenv("EMU_CPU_CONV") == "1" {
		emuConvOverride = cpuConv
	}
}

func TestEmulatorKnowsEveryKernel(t *testing.T) {
	if got := emuKernels(); got != int(numKernels) {
		t.Fatalf("the emulator knows %d kernels, the table has %d", got, numKernels)
	}
}

// cpuConv runs a queued convolution with the CPU backend on the emulator's (host) memory.
func cpuConv(cv *convArgs) error {
	g := cv.plan.geom
	dev := cpu.NewWithWorkers(2)
	defer dev.Close()
	in := func(addr uint64, shape ...int) backend.Tensor {
		t, _ := dev.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
		if v, _ := cpu.Float32s(t); len(v) > 0 {
			emuMemcpy(uint64(uintptr(unsafe.Pointer(&v[0]))), addr, int64(4*len(v)))
		}
		return t
	}
	out := func(addr uint64, t backend.Tensor) {
		if v, _ := cpu.Float32s(t); len(v) > 0 {
			emuMemcpy(addr, uint64(uintptr(unsafe.Pointer(&v[0]))), int64(4*len(v)))
		}
	}
	x := in(cv.x, g.N, g.Cin, g.H, g.W)
	w := in(cv.w, g.Cout, g.Cin, g.KH, g.KW)
	y := in(cv.y, g.N, g.Cout, g.OH, g.OW)
	p := backend.ConvParams{Stride: g.Stride, PadH: g.PadH, PadW: g.PadW}
	var err error
	switch cv.dir {
	case convForward:
		err = dev.ConvForward(p, x, w, y)
		out(cv.y, y)
	case convBackwardData:
		err = dev.ConvBackwardData(p, y, w, x, cv.beta != 0)
		out(cv.x, x)
	default:
		err = dev.ConvBackwardFilter(p, x, y, w)
		out(cv.w, w)
	}
	return err
}

// liveGraphs is how many recorded graphs the emulator holds.
func (e *emuGPU) liveGraphs() int { return len(e.graphs) }
