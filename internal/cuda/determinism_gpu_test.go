//go:build cuda

package cuda

// Determinism on the GPU: with cuda.deterministic (the default) a convolution gives the same bits every
// time it runs, on this device and on a device opened afresh (which chooses its algorithms again), and the
// fused and unfused paths give the same bits for a whole training step. On the kernel emulator these pass
// trivially; on a GPU they are the point (cuDNN's nondeterministic algorithms use atomics, and timed
// choices can differ from one opening to the next).

import (
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// determinismConvCases are CIFAR and ImageNet shapes with backward passes whose fastest cuDNN algorithms
// are often nondeterministic (many output positions summed into each weight), and an odd one. Under
// -short the ImageNet shapes are left out: the kernel emulator's naive convolution takes seconds on them.
func determinismConvCases() []convCase {
	cases := []convCase{{8, 16, 32, 32, 16, 3, 1, 1}, {8, 32, 16, 16, 64, 3, 2, 1}, {5, 17, 6, 6, 9, 3, 1, 1}}
	if !testing.Short() {
		cases = append(cases, convCase{2, 64, 56, 56, 64, 3, 1, 1}, convCase{2, 256, 56, 56, 128, 1, 1, 0})
	}
	return cases
}

// convResults runs forward, backward data (accumulating into a fixed dx) and backward filter of case c on
// d, from operands drawn from seed, and downloads y, dx and dw.
func convResults(t *testing.T, d *Device, c convCase, seed uint64) [3][]float32 {
	t.Helper()
	r := seededRand(seed)
	upload := func(lo, hi float32, shape ...int) backend.Tensor {
		x, err := d.Alloc(backend.Shape(shape), backend.F32, backend.NCHW)
		mustOK(t, err)
		t.Cleanup(func() { d.Free(x) })
		mustOK(t, d.Upload(x, uniformValues(r, x.Numel(), lo, hi)))
		return x
	}
	p := backend.ConvParams{Stride: c.stride, Pad: c.pad}
	x, w := upload(-1, 1, c.n, c.cin, c.h, c.w), upload(-0.2, 0.2, c.cout, c.cin, c.k, c.k)
	y, dy := upload(-1, 1, c.n, c.cout, c.oh(), c.ow()), upload(-1, 1, c.n, c.cout, c.oh(), c.ow())
	dx, dw := upload(-1, 1, c.n, c.cin, c.h, c.w), upload(-1, 1, c.cout, c.cin, c.k, c.k)
	mustOK(t, d.ConvForward(p, x, w, y))
	mustOK(t, d.ConvBackwardData(p, dy, w, dx, true))
	mustOK(t, d.ConvBackwardFilter(p, x, dy, dw))
	var out [3][]float32
	for i, v := range []backend.Tensor{y, dx, dw} {
		out[i] = make([]float32, v.Numel())
		mustOK(t, d.Download(out[i], v))
	}
	return out
}

// freshGPU opens a CUDA device of its own (not the tests' shared one), so that it chooses its convolution
// algorithms anew; it is closed when the test ends.
func freshGPU(t *testing.T, opt backend.Options) *Device {
	t.Helper()
	openGPU(t, opt) // skips (or fails under RESNET_REQUIRE_GPU=1) without a GPU
	d, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// sameBits fails the test at the first element whose bits differ.
func sameBits(t *testing.T, what string, a, b []float32) {
	t.Helper()
	if i := firstDifference(a, b); i >= 0 {
		t.Errorf("%s: element %d is %v, then %v", what, i, a[i], b[i])
	}
}

// Deterministic algorithms chosen by heuristics: the same bits when the op runs again, and on a device
// opened again; every algorithm chosen says it is deterministic.
func TestDeterministicConvolutionsRepeatBitForBit(t *testing.T) {
	first, second := freshGPU(t, backend.Options{}), freshGPU(t, backend.Options{})
	for i, c := range determinismConvCases() {
		t.Run(c.String(), func(t *testing.T) {
			seed := uint64(900 + i)
			a, again, b := convResults(t, first, c, seed), convResults(t, first, c, seed), convResults(t, second, c, seed)
			for k, name := range []string{"y", "dx", "dw"} {
				sameBits(t, name+" run twice", a[k], again[k])
				sameBits(t, name+" on a device opened again", a[k], b[k])
			}
		})
	}
	for _, d := range []*Device{first, second} {
		for _, c := range d.ConvAlgorithms() {
			if !c.Deterministic || c.ChosenBy != chosenByHeuristic && c.ChosenBy != chosenByFallback {
				t.Errorf("%v %s: %s chosen by %s, deterministic %v", c.Geometry, c.Direction, c.Algorithm, c.ChosenBy, c.Deterministic)
			}
		}
	}
	if a, b := first.ConvAlgorithms(), second.ConvAlgorithms(); len(a) != len(b) {
		t.Errorf("the two devices chose %d and %d algorithms", len(a), len(b))
	} else {
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("choice %d: %+v, then %+v", i, a[i], b[i])
			}
		}
	}
}

// Timed choices among deterministic algorithms may differ between openings, but each chosen algorithm is
// deterministic: the same bits when the op runs again.
func TestTimedDeterministicConvolutionsRepeatBitForBit(t *testing.T) {
	d := freshGPU(t, backend.Options{Benchmark: true})
	for i, c := range determinismConvCases() {
		t.Run(c.String(), func(t *testing.T) {
			a, again := convResults(t, d, c, uint64(950+i)), convResults(t, d, c, uint64(950+i))
			for k, name := range []string{"y", "dx", "dw"} {
				sameBits(t, name+" run twice", a[k], again[k])
			}
		})
	}
	for _, c := range d.ConvAlgorithms() {
		if !c.Deterministic {
			t.Errorf("%v %s: %s (chosen by %s) is not deterministic", c.Geometry, c.Direction, c.Algorithm, c.ChosenBy)
		}
	}
}

// A whole training step (forward, backward, SGD) of a CIFAR ResNet with option-A shortcuts gives the same
// bits on the fused and the unfused path: the kernels share each step's code, and both devices choose the
// same deterministic convolution algorithms for the same shapes.
func TestFusedAndUnfusedTrainingStepsAreBitIdentical(t *testing.T) {
	spec, err := model.Lookup("cifar_resnet8")
	mustOK(t, err)
	x, y := randomBatch(spec, 4, 41)
	var states [2]netState
	var updated [2]netState
	for k, m := range gpuModes {
		net := buildNet(t, openGPU(t, m.opt), spec, 4)
		mustOK(t, net.Init(5))
		states[k], updated[k] = trainStep(t, net, x, y)
	}
	if states[0].loss != states[1].loss {
		t.Errorf("loss: fused %v, unfused %v", states[0].loss, states[1].loss)
	}
	sameBits(t, "logits", states[0].logits, states[1].logits)
	for name, v := range states[0].tensors {
		sameBits(t, name+" after the backward", v, states[1].tensors[name])
	}
	for name, v := range updated[0].tensors {
		sameBits(t, name+" after the SGD step", v, updated[1].tensors[name])
	}
}
