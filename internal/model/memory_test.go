package model

import (
	"testing"

	"resnet/internal/backend"
	"resnet/internal/cpu"
	"resnet/internal/sysmem"
)

// countingDevice counts the bytes of every tensor allocated through it.
type countingDevice struct {
	backend.Device
	bytes int64
}

func (d *countingDevice) Alloc(shape backend.Shape, dt backend.DType, layout backend.Layout) (backend.Tensor, error) {
	d.bytes += int64(shape.Numel()) * int64(dt.Size())
	return d.Device.Alloc(shape, dt, layout)
}

// formatDevice stands for a GPU running in another activation format: it reports the format and records
// every allocation without making it (the CPU refuses 16-bit and NHWC tensors), so the net can be built
// and planned but not run.
type formatDevice struct {
	backend.Device // nil: only Alloc, Free and ActivationFormat are called
	dt             backend.DType
	layout         backend.Layout
	allocs         []backend.Tensor
	bytes          int64
}

// planBuffer is the storage of a formatDevice tensor: none.
type planBuffer struct {
	n  int
	dt backend.DType
}

func (b planBuffer) Len() int             { return b.n }
func (b planBuffer) DType() backend.DType { return b.dt }
func (b planBuffer) Freed() bool          { return false }

func (d *formatDevice) ActivationFormat() (backend.DType, backend.Layout) { return d.dt, d.layout }

func (d *formatDevice) Alloc(shape backend.Shape, dt backend.DType, layout backend.Layout) (backend.Tensor, error) {
	t := backend.Tensor{Shape: append(backend.Shape(nil), shape...), DType: dt, Layout: layout, Buf: planBuffer{shape.Numel(), dt}}
	d.allocs = append(d.allocs, t)
	d.bytes += int64(shape.Numel()) * int64(dt.Size())
	return t, nil
}

func (d *formatDevice) Free(backend.Tensor) {}

// On a device keeping activations in bf16 NHWC, Build allocates every 4-D activation and its gradient in
// that format and everything else (parameters, gradients, momentum, pooled features, logits, losses,
// BN statistics) in f32 (labels i32) NCHW; the estimate for bf16 is what it allocates, and its activation
// share is smaller than f32's by the 2 bytes saved on each 4-D value.
func TestBuildAllocatesActivationsInTheDeviceFormat(t *testing.T) {
	for _, tc := range []struct {
		spec  Spec
		batch int
	}{{tinySpec(true, 'A'), 3}, {tinySpec(false, 'C'), 2}} {
		dev := &formatDevice{dt: backend.BF16, layout: backend.NHWC}
		net, err := Build(dev, tc.spec, tc.batch)
		if err != nil {
			t.Fatal(err)
		}
		var fourD, values4D int64
		for _, a := range dev.allocs {
			switch {
			case len(a.Shape) == 4 && (a.DType != backend.BF16 || a.Layout != backend.NHWC):
				t.Errorf("%s: 4-D tensor %v allocated %v %v, want bf16 NHWC", tc.spec.Name, a.Shape, a.DType, a.Layout)
			case len(a.Shape) != 4 && (a.Layout != backend.NCHW || (a.DType != backend.F32 && a.DType != backend.I32)):
				t.Errorf("%s: tensor %v allocated %v %v, want f32 (or i32) NCHW", tc.spec.Name, a.Shape, a.DType, a.Layout)
			case len(a.Shape) == 4:
				fourD++
				values4D += int64(a.Shape.Numel())
			}
		}
		if fourD == 0 {
			t.Fatalf("%s: no 4-D activation allocated", tc.spec.Name)
		}
		m16, err := EstimateMemory(tc.spec, tc.batch, backend.BF16)
		if err != nil {
			t.Fatal(err)
		}
		m32, _ := EstimateMemory(tc.spec, tc.batch, backend.F32)
		if m16.Device() != dev.bytes || m16.Params != m32.Params || m16.Other != m32.Other ||
			m32.Activations-m16.Activations != 2*values4D {
			t.Errorf("%s: bf16 estimate %+v (f32 %+v), Build allocated %d bytes with %d 4-D values", tc.spec.Name, m16, m32,
				dev.bytes, values4D)
		}
		net.Free()
	}
}

// The estimate is what Build and BuildFullyConv allocate, to the byte.
func TestEstimateMemoryMatchesBuild(t *testing.T) {
	oneByOne := tinySpec(true, 'B') // its second stage has a 1x1 map
	oneByOne.InputSize = 2
	for _, tc := range []struct {
		spec  Spec
		batch int
	}{
		{tinySpec(true, 'A'), 3}, {tinySpec(true, 'C'), 1}, {tinySpec(false, 'A'), 5}, {oneByOne, 2},
		{tinyDenseNet(CIFAR), 2},
	} {
		dev := &countingDevice{Device: cpu.New()}
		net, err := Build(dev, tc.spec, tc.batch)
		if err != nil {
			t.Fatal(err)
		}
		m, err := EstimateMemory(tc.spec, tc.batch, backend.F32)
		if err != nil {
			t.Fatal(err)
		}
		if m.Device() != dev.bytes {
			t.Errorf("%s-%c at batch %d: estimate %d bytes (%+v), Build allocated %d", tc.spec.Name, tc.spec.Shortcut, tc.batch, m.Device(), m, dev.bytes)
		}
		before := dev.bytes
		fc, err := BuildFullyConv(net, 12, 16, 2)
		if err != nil {
			t.Fatal(err)
		}
		fm, err := EstimateFullyConvMemory(tc.spec, 12, 16, 2, backend.F32)
		if err != nil {
			t.Fatal(err)
		}
		if fm.Params != 0 || fm.Device() != dev.bytes-before {
			t.Errorf("%s-%c fully-convolutional at 12x16: estimate %+v, BuildFullyConv allocated %d", tc.spec.Name, tc.spec.Shortcut, fm, dev.bytes-before)
		}
		fc.Free()
		net.Free()
	}
}

// cifar_resnet8 at batch 2, counted by hand. Per example, in float32 values: the input 3x32x32 = 3072;
// the stem's conv and BN, 2 x 16x32x32; stage 1's two convs and two BNs, 4 x 16x32x32; stage 2's,
// 4 x 32x16x16; stage 3's, 4 x 64x8x8 (option A adds no tensors); the pooled 64 and the 10 logits:
// 3072 + 32768 + 65536 + 32768 + 16384 + 64 + 10 = 150602. The gradients share buffers (gradslots.go): at
// most three 16x32x32 ones are alive at once (in stage 1's backward, a unit's output gradient, its input
// gradient and the one inside its branch), and the pooled features' and the logits' two f32 ones: 3 x 16384
// + 64 + 10 = 49226. For two examples, 2 x 4 x (150602 + 49226) = 1,598,624 bytes. The parameters: 75,290
// trainable values plus 480 running statistics, three times (values, gradients, momentum): 909,240 bytes.
// The rest: 2 labels, 2 losses and 2 x 10 soft targets, and the saved mean and inverse deviation of the 7
// BN layers (3 of 16 channels, 2 of 32, 2 of 64: 480 values): 16 + 80 + 1920 = 2016 bytes. The host
// copies: 2 x (10 logits + 1 loss). The workspace: stage 1's 3x3 convolutions over 16 channels at 32x32, a
// 144 x 1024 patch matrix.
func TestEstimateMemoryByHand(t *testing.T) {
	s, _ := Lookup("cifar_resnet8")
	m, err := EstimateMemory(s, 2, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	want := Memory{Activations: 1598624, Params: 909240, Other: 2016, Host: 4 * 2 * 11, Workspace: 4 * 144 * 1024}
	if m != want {
		t.Errorf("estimate %+v, want %+v", m, want)
	}
}

// Absurd sizes saturate instead of overflowing, and Build refuses them before allocating anything.
func TestEstimateMemorySaturates(t *testing.T) {
	s, _ := Lookup("resnet18")
	m, err := EstimateMemory(s, 100000000, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	// 224x224: the stem's conv alone holds 64x112x112 values and their gradients per example.
	if m.Activations < 2*4*64*112*112*100000000 || m.Activations == sysmem.Saturated {
		t.Errorf("activations at batch 1e8: %d", m.Activations)
	}
	s.InputSize = 1 << 30
	m, err = EstimateMemory(s, 1<<20, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	if m.Activations != sysmem.Saturated || m.Device() != sysmem.Saturated {
		t.Errorf("activations at 2^30 x 2^30, batch 2^20: %+v", m)
	}
	dev := &countingDevice{Device: cpu.New()}
	_, err = Build(dev, s, 1<<20)
	want := "model resnet18: a batch of 1048576 at 1073741824x1073741824 is too large to address"
	if err == nil || err.Error() != want || dev.bytes != 0 {
		t.Errorf("Build: %v after allocating %d bytes; want %q and nothing allocated", err, dev.bytes, want)
	}
}
