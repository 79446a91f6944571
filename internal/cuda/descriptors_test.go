//go:build cuda

package cuda

// cuDNN's descriptor calls need no GPU, only libcudnn.so.9: the descriptors of every convolution of the
// zoo's networks, in every activation format and with every math type a device may list algorithms with,
// are built here wherever cuDNN loads (in CI from the toolchain cache, see the Makefile's cuda-emu-test).
// What cuDNN accepts is then known before a GPU runs them; which algorithms it offers is not (that takes
// a handle, and a handle takes a GPU).

import (
	"fmt"
	"os"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/model"
)

// envRequireCUDNN makes the descriptor test fail instead of skipping when libcudnn.so.9 does not load.
const envRequireCUDNN = "RESNET_REQUIRE_CUDNN"

func TestConvDescriptorsWithoutGPU(t *testing.T) {
	if err := loadCUDNN(); err != nil {
		if os.Getenv(envRequireCUDNN) == "1" {
			t.Fatalf("%s=1 but cuDNN does not load: %v", envRequireCUDNN, err)
		}
		t.Skipf("cuDNN does not load (set LD_LIBRARY_PATH to its lib folder): %v", err)
	}
	nets := []struct {
		arch  string
		batch int
	}{{"resnet50", 256}, {"cifar_resnet56", 128}, {"resnet18", 1}, {"resnext50_32x4d", 256}, {"resnext101_64x4d", 32},
		{"wide_resnet50_2", 64}}
	formats := []struct {
		dt     backend.DType
		layout backend.Layout
		math   []int // the math types listed for f32 (FMA, or DEFAULT under RESNET_CUDA_TF32=1); 16-bit: TENSOR_OP
	}{
		{backend.F32, backend.NCHW, []int{mathFMA, mathDefault}},
		{backend.F32, backend.NHWC, []int{mathFMA, mathDefault}},
		{backend.BF16, backend.NCHW, []int{mathTensorOp}},
		{backend.BF16, backend.NHWC, []int{mathTensorOp}},
		{backend.F16, backend.NCHW, []int{mathTensorOp}},
		{backend.F16, backend.NHWC, []int{mathTensorOp}},
	}
	plans := 0
	for _, n := range nets {
		spec, err := model.Lookup(n.arch)
		mustOK(t, err)
		net, err := model.Build(cpuRef(), spec, 1)
		mustOK(t, err)
		layers := net.ConvLayers(n.batch)
		net.Free()
		for _, f := range formats {
			for _, math := range f.math {
				t.Run(fmt.Sprintf("%s/%v_%v/%s", n.arch, f.dt, f.layout, mathNames[math]), func(t *testing.T) {
					for _, l := range layers {
						g := l.Geometry
						g.DType, g.Layout = f.dt, f.layout
						p, err := makeConvPlan(g, math)
						if err != nil {
							t.Fatalf("%s: %v", l.Name, err)
						}
						destroyConvDescriptors(p)
						plans++
					}
				})
			}
		}
	}
	t.Logf("%d sets of convolution descriptors built and checked against the operand checks' output shapes", plans)
}

var mathNames = map[int]string{mathFMA: "fma", mathDefault: "default", mathTensorOp: "tensor_op"}

// A geometry cuDNN reads differently from the operand checks is refused with both shapes named.
func TestConvPlanRefusesAnOutputCuDNNDoesNotCompute(t *testing.T) {
	if err := loadCUDNN(); err != nil {
		if os.Getenv(envRequireCUDNN) == "1" {
			t.Fatalf("%s=1 but cuDNN does not load: %v", envRequireCUDNN, err)
		}
		t.Skipf("cuDNN does not load: %v", err)
	}
	g := convGeom{N: 2, Cin: 3, H: 8, W: 8, Cout: 4, KH: 3, KW: 3, Stride: 1, PadH: 1, PadW: 1, OH: 7, OW: 8}
	_, err := makeConvPlan(g, mathFMA)
	want := "cuda: cuDNN computes the output of x [2 3 8 8], w [4 3 3 3], stride 1, padding 1 as [2 4 8 8], the operand checks as [2 4 7 8]"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
}
