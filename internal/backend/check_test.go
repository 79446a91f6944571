package backend

// Unit tests of the operand checks: the geometry they return for good operands. The bad operands are
// tested on every backend by backendtest.RunOperandChecks.

import (
	"math"
	"testing"
)

// hostBuffer is storage for the tests: n elements of dt.
type hostBuffer struct {
	n     int
	dt    DType
	freed bool
}

func (b *hostBuffer) Len() int     { return b.n }
func (b *hostBuffer) DType() DType { return b.dt }
func (b *hostBuffer) Freed() bool  { return b.freed }

// f32 returns an f32 tensor of shape in a buffer of its size.
func f32(shape ...int) Tensor {
	return Tensor{Shape: Shape(shape), DType: F32, Buf: &hostBuffer{n: Shape(shape).Numel(), dt: F32}}
}

func i32(n int) Tensor { return Tensor{Shape: Shape{n}, DType: I32, Buf: &hostBuffer{n: n, dt: I32}} }

func mustCheck[G comparable](t *testing.T, what string, got G, err error, want G) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: geometry %+v, want %+v", what, got, want)
	}
}

// The three convolution passes return the geometry of the forward with the same shapes.
func TestConvGeometry(t *testing.T) {
	p := ConvParams{Stride: 2, Pad: 1}
	x, w, y := f32(2, 3, 7, 9), f32(4, 3, 3, 3), f32(2, 4, 4, 5)
	want := ConvGeometry{N: 2, Cin: 3, H: 7, W: 9, Cout: 4, KH: 3, KW: 3, Stride: 2, PadH: 1, PadW: 1, OH: 4, OW: 5, Groups: 1}
	g := mustCheckConvPasses(t, p, x, w, y, want)
	if g.XLen() != 2*3*7*9 || g.WLen() != 4*3*3*3 || g.YLen() != 2*4*4*5 {
		t.Fatalf("XLen, WLen, YLen = %d, %d, %d", g.XLen(), g.WLen(), g.YLen())
	}
	if s := g.String(); s != "x [2 3 7 9], w [4 3 3 3], stride 2, padding 1" {
		t.Fatalf("String() = %q", s)
	}
}

// mustCheckConvPasses checks the operands of the forward convolution x, w -> y through all three passes,
// each of which must return want.
func mustCheckConvPasses(t *testing.T, p ConvParams, x, w, y Tensor, want ConvGeometry) ConvGeometry {
	t.Helper()
	g, err := CheckConvForward(p, x, w, y)
	mustCheck(t, "forward", g, err, want)
	g, err = CheckConvBackwardData(p, y, w, x)
	mustCheck(t, "backward data", g, err, want)
	g, err = CheckConvBackwardFilter(p, x, y, w)
	mustCheck(t, "backward filter", g, err, want)
	return g
}

// A grouped convolution's weight holds Cin/groups input channels; 0 and 1 groups are the same
// ungrouped geometry, so they share a plan.
func TestGroupedConvGeometry(t *testing.T) {
	p := ConvParams{Stride: 1, Pad: 1, Groups: 4}
	x, w, y := f32(2, 8, 5, 5), f32(12, 2, 3, 3), f32(2, 12, 5, 5)
	want := ConvGeometry{N: 2, Cin: 8, H: 5, W: 5, Cout: 12, KH: 3, KW: 3, Stride: 1, PadH: 1, PadW: 1, OH: 5, OW: 5, Groups: 4}
	g := mustCheckConvPasses(t, p, x, w, y, want)
	if g.WLen() != 12*2*3*3 || g.GroupCin() != 2 || g.GroupCout() != 3 {
		t.Fatalf("WLen, GroupCin, GroupCout = %d, %d, %d", g.WLen(), g.GroupCin(), g.GroupCout())
	}
	if s := g.String(); s != "x [2 8 5 5], w [12 2 3 3], stride 1, padding 1, 4 groups" {
		t.Fatalf("String() = %q", s)
	}
	g0, err0 := CheckConvForward(ConvParams{Stride: 1, Pad: 1}, x, f32(12, 8, 3, 3), y)
	g1, err1 := CheckConvForward(ConvParams{Stride: 1, Pad: 1, Groups: 1}, x, f32(12, 8, 3, 3), y)
	if err0 != nil || err1 != nil || g0 != g1 || g0.Groups != 1 {
		t.Fatalf("groups 0: %+v, %v; groups 1: %+v, %v; want the same geometry with Groups 1", g0, err0, g1, err1)
	}
}

// Without a residual the shortcut fields describe x itself; an option-A shortcut is read at stride s from
// the channels centred among the output's.
func TestBatchNormGeometry(t *testing.T) {
	bn := func(c int, z Tensor) BatchNormTensors {
		return BatchNormTensors{X: f32(2, c, 4, 4), Y: f32(2, c, 4, 4), Z: z, Gamma: f32(c), Beta: f32(c),
			RunningMean: f32(c), RunningVar: f32(c), SaveMean: f32(c), SaveInvStd: f32(c)}
	}
	g, err := CheckBatchNormForwardTraining(BatchNormParams{}, bn(8, Tensor{}))
	mustCheck(t, "plain", g, err, BatchNormGeometry{N: 2, C: 8, H: 4, W: 4, ZC: 8, ZStride: 1})
	g, err = CheckBatchNormForwardInference(BatchNormParams{Residual: true}, bn(8, f32(2, 8, 4, 4)))
	mustCheck(t, "identity shortcut", g, err, BatchNormGeometry{N: 2, C: 8, H: 4, W: 4, ZC: 8, ZStride: 1})
	g, err = CheckBatchNormForwardTraining(BatchNormParams{Residual: true}, bn(8, f32(2, 4, 8, 8)))
	mustCheck(t, "option-A shortcut", g, err, BatchNormGeometry{N: 2, C: 8, H: 4, W: 4, ZC: 4, ZStride: 2})
	if g.ZOff() != 2 || g.XLen() != 256 || g.ZLen() != 512 || g.PerChannel() != 32 {
		t.Fatalf("ZOff, XLen, ZLen, PerChannel = %d, %d, %d, %d, want 2, 256, 512, 32", g.ZOff(), g.XLen(), g.ZLen(), g.PerChannel())
	}

	gr := BatchNormGrads{X: f32(2, 8, 4, 4), DY: f32(2, 8, 4, 4), DX: f32(2, 8, 4, 4), DZ: f32(2, 4, 8, 8),
		Gamma: f32(8), SaveMean: f32(8), SaveInvStd: f32(8), DGamma: f32(8), DBeta: f32(8)}
	g, err = CheckBatchNormBackward(BatchNormParams{Residual: true}, gr)
	mustCheck(t, "backward, no Y without ReLU", g, err, BatchNormGeometry{N: 2, C: 8, H: 4, W: 4, ZC: 4, ZStride: 2})
}

func TestPoolGeometry(t *testing.T) {
	p := PoolParams{Kernel: 3, Stride: 2, Pad: 1}
	x, y := f32(2, 3, 7, 9), f32(2, 3, 4, 5)
	want := PoolGeometry{N: 2, C: 3, H: 7, W: 9, OH: 4, OW: 5, Kernel: 3, Stride: 2, Pad: 1}
	g, err := CheckMaxPoolForward(p, x, y)
	mustCheck(t, "max pool", g, err, want)
	g, err = CheckMaxPoolBackward(p, x, y, f32(2, 3, 4, 5), f32(2, 3, 7, 9))
	mustCheck(t, "max pool backward", g, err, want)
	if g.Planes() != 6 || g.XLen() != 378 || g.YLen() != 120 {
		t.Fatalf("Planes, XLen, YLen = %d, %d, %d", g.Planes(), g.XLen(), g.YLen())
	}

	avg := PoolGeometry{N: 2, C: 3, H: 7, W: 9, OH: 1, OW: 1}
	g, err = CheckGlobalAvgPoolForward(x, f32(2, 3))
	mustCheck(t, "global average pool to (N, C)", g, err, avg)
	g, err = CheckGlobalAvgPoolForward(x, f32(2, 3, 1, 1))
	mustCheck(t, "global average pool to (N, C, 1, 1)", g, err, avg)
	g, err = CheckGlobalAvgPoolBackward(f32(2, 3), x)
	mustCheck(t, "global average pool backward", g, err, avg)
}

// x may keep trailing dimensions of size 1; dx may be left out.
func TestLinearGeometry(t *testing.T) {
	g, err := CheckLinearForward(f32(2, 4, 1, 1), f32(3, 4), f32(3), f32(2, 3))
	mustCheck(t, "forward", g, err, LinearGeometry{N: 2, In: 4, Out: 3})
	g, err = CheckLinearBackward(f32(2, 4), f32(3, 4), f32(2, 3), Tensor{}, f32(3, 4), f32(3))
	mustCheck(t, "backward without dx", g, err, LinearGeometry{N: 2, In: 4, Out: 3})
}

// dlogits may be left out; an empty batch may have no classes.
func TestLossGeometry(t *testing.T) {
	g, err := CheckSoftmaxCrossEntropy(f32(2, 10), i32(2), f32(2), Tensor{})
	mustCheck(t, "loss only", g, err, LossGeometry{N: 2, K: 10})
	g, err = CheckSoftmaxCrossEntropy(f32(0, 0), i32(0), f32(0), f32(0, 0))
	mustCheck(t, "empty batch", g, err, LossGeometry{})
}

// Good operands of the ops without a geometry pass.
func TestGoodOperandsPass(t *testing.T) {
	checks := map[string]error{
		"alloc":                    CheckAlloc(Shape{2, 0}, I32, NCHW, F32, NCHW),
		"alloc a bf16 activation":  CheckAlloc(Shape{2, 3, 4, 5}, BF16, NHWC, BF16, NHWC),
		"upload":                   CheckUpload(f32(2, 2), make([]float32, 4)),
		"upload labels":            CheckUploadInt32(i32(3), make([]int32, 3)),
		"download a view":          CheckDownload(make([]float32, 2), Tensor{Shape: Shape{2}, Buf: &hostBuffer{n: 4}, Off: 2}),
		"zero":                     CheckZero(i32(3)),
		"copy into another shape":  CheckCopy(f32(2, 3), f32(6)),
		"sgd without momentum":     CheckSGDStep(SGDParams{LR: 1}, []SGDSlot{{Param: f32(3), Grad: f32(3)}}),
		"sgd with momentum buffer": CheckSGDStep(SGDParams{Momentum: 0.9}, []SGDSlot{{Param: f32(3), Grad: f32(3), Buf: f32(3)}}),
	}
	for name, err := range checks {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The errors name the op and leave the device to the backend.
func TestErrorsStartWithTheOp(t *testing.T) {
	_, err := CheckLinearForward(f32(2, 4), f32(2), f32(3), f32(2, 3))
	if want := "LinearForward: w has shape [2], want (Out, In)"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	x := f32(2)
	x.Buf.(*hostBuffer).freed = true
	if err := CheckZero(x); err == nil || err.Error() != "Zero: t was freed" {
		t.Fatalf("error %v, want %q", err, "Zero: t was freed")
	}
}

// The checks run in every op of a training step, which must not allocate.
func TestChecksAllocateNothing(t *testing.T) {
	p := ConvParams{Stride: 1, Pad: 1}
	x, w, y := f32(2, 3, 8, 8), f32(4, 3, 3, 3), f32(2, 4, 8, 8)
	c := f32(4)
	bn := BatchNormTensors{X: y, Y: y, Z: y, Gamma: c, Beta: c, RunningMean: c, RunningVar: c, SaveMean: c, SaveInvStd: c}
	slots := []SGDSlot{{Param: w, Grad: w, Buf: w}}
	allocs := testing.AllocsPerRun(10, func() {
		_, e1 := CheckConvForward(p, x, w, y)
		_, e2 := CheckBatchNormForwardTraining(BatchNormParams{Residual: true}, bn)
		_, e3 := CheckMaxPoolForward(PoolParams{Kernel: 3, Stride: 1, Pad: 1}, y, y)
		e4 := CheckSGDStep(SGDParams{Momentum: 0.9}, slots)
		if e1 != nil || e2 != nil || e3 != nil || e4 != nil {
			t.Fatal(e1, e2, e3, e4)
		}
	})
	if allocs != 0 {
		t.Fatalf("the checks allocate %v times", allocs)
	}
}

// act returns a 4-D activation of dt in layout.
func act(dt DType, layout Layout, shape ...int) Tensor {
	return Tensor{Shape: Shape(shape), DType: dt, Layout: layout, Buf: &hostBuffer{n: Shape(shape).Numel(), dt: dt}}
}

// Activations may be any float type in either layout, the same for all of an op's activations; the
// geometry carries the format; weights stay f32 NCHW.
func TestActivationFormats(t *testing.T) {
	p := ConvParams{Stride: 1, Pad: 1}
	g, err := CheckConvForward(p, act(BF16, NHWC, 2, 3, 4, 4), f32(5, 3, 3, 3), act(BF16, NHWC, 2, 5, 4, 4))
	mustCheck(t, "bf16 NHWC convolution", g, err, ConvGeometry{N: 2, Cin: 3, H: 4, W: 4, Cout: 5, KH: 3, KW: 3,
		Stride: 1, PadH: 1, PadW: 1, OH: 4, OW: 4, DType: BF16, Layout: NHWC, Groups: 1})
	if s := g.String(); s != "x [2 3 4 4], w [5 3 3 3], stride 1, padding 1, bf16 NHWC" {
		t.Fatalf("String() = %q", s)
	}
	bad := map[string]struct {
		err  error
		want string
	}{
		"mixed formats": {
			func() error {
				_, err := CheckConvForward(p, act(F16, NCHW, 2, 3, 4, 4), f32(5, 3, 3, 3), act(F32, NCHW, 2, 5, 4, 4))
				return err
			}(),
			"ConvForward: y is f32 NCHW but x is f16 NCHW; an op's activations share one dtype and layout (from x [2 3 4 4], w [5 3 3 3], stride 1, padding 1)",
		},
		"channels-last weight": {
			func() error {
				_, err := CheckConvForward(p, act(F32, NHWC, 2, 3, 4, 4), act(F32, NHWC, 5, 3, 3, 3), act(F32, NHWC, 2, 5, 4, 4))
				return err
			}(),
			"ConvForward: w is NHWC; only 4-D activations may be",
		},
		"bf16 pooled features": {
			func() error {
				_, err := CheckGlobalAvgPoolForward(act(BF16, NCHW, 2, 3, 4, 4), act(BF16, NCHW, 2, 3, 1, 1))
				return err
			}(),
			"GlobalAvgPoolForward: y is bf16, want f32",
		},
		"bf16 parameter": {
			CheckSGDStep(SGDParams{LR: 1}, []SGDSlot{{Param: act(BF16, NCHW, 1, 1, 1, 3), Grad: f32(1, 1, 1, 3)}}),
			"SGDStep: Param is bf16, want f32 (slot 0)",
		},
		"negative gradient scale": {
			CheckSGDStep(SGDParams{LR: 1, GradScale: -1}, []SGDSlot{{Param: f32(3), Grad: f32(3)}}),
			"SGDStep: GradScale must be a finite number >= 0 (0 means 1), got -1",
		},
		"infinite gradient scale": {
			CheckSGDStep(SGDParams{LR: 1, GradScale: float32(math.Inf(1))}, []SGDSlot{{Param: f32(3), Grad: f32(3)}}),
			"SGDStep: GradScale must be a finite number >= 0 (0 means 1), got +Inf",
		},
		"copy across layouts": {
			CheckCopy(act(F32, NHWC, 1, 2, 2, 2), f32(1, 2, 2, 2)),
			"Copy: dst is NHWC, src is NCHW",
		},
	}
	for name, c := range bad {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("%s: error %v\nwant %s", name, c.err, c.want)
		}
	}
	g2, err := CheckGlobalAvgPoolForward(act(F16, NHWC, 2, 3, 4, 4), f32(2, 3))
	mustCheck(t, "f16 NHWC global pool", g2, err, PoolGeometry{N: 2, C: 3, H: 4, W: 4, OH: 1, OW: 1, DType: F16, Layout: NHWC})
	if err := CheckUpload(act(BF16, NHWC, 1, 2, 2, 2), make([]float32, 8)); err != nil {
		t.Fatalf("upload into a bf16 NHWC tensor: %v", err)
	}
}

func TestParsePrecisionAndLayout(t *testing.T) {
	for s, want := range map[string]DType{"fp32": F32, "bf16": BF16, "fp16": F16} {
		if d, err := ParsePrecision(s); err != nil || d != want || PrecisionName(d) != s {
			t.Errorf("ParsePrecision(%q) = %v, %v; name %q", s, d, err, PrecisionName(d))
		}
	}
	if _, err := ParsePrecision("tf32"); err == nil || err.Error() != `unknown precision "tf32" (want fp32, bf16 or fp16)` {
		t.Errorf("ParsePrecision(tf32): %v", err)
	}
	for s, want := range map[string]Layout{"nchw": NCHW, "nhwc": NHWC} {
		if l, err := ParseLayout(s); err != nil || l != want {
			t.Errorf("ParseLayout(%q) = %v, %v", s, l, err)
		}
	}
	if _, err := ParseLayout("NHWC"); err == nil {
		t.Error("ParseLayout accepts NHWC; the config spells it nhwc")
	}
	if BF16.Size() != 2 || F16.Size() != 2 || F32.Size() != 4 || DType(9).Size() != 0 {
		t.Error("element sizes")
	}
}
