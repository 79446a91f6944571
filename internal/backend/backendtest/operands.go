// Package backendtest holds the tests every backend must pass, for each backend's own tests to run on its
// device. RunOperandChecks gives a device every kind of bad operand the checks in internal/backend catch.
package backendtest

import (
	"fmt"
	"math"
	"testing"

	"resnet/internal/backend"
)

// RunOperandChecks calls each op of dev with bad operands and expects the exact error of the checks in
// internal/backend, with the device's name in front, and no panic. Every case runs on every backend.
func RunOperandChecks(t *testing.T, dev backend.Device) {
	for _, c := range operandCases {
		t.Run(c.name, func(t *testing.T) {
			err := callSafely(t, func() error { return c.call(&ops{test: t, dev: dev}) })
			if want := dev.Name() + ": " + c.want; err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant  %s", err, want)
			}
		})
	}
	t.Run("rejected SGD step changes no parameter", func(t *testing.T) { rejectedSGDStep(t, dev) })
}

func callSafely(t *testing.T, call func() error) error {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panicked: %v", r)
		}
	}()
	return call()
}

// operandCase is one bad call: want is its error after the device's name.
type operandCase struct {
	name, want string
	call       func(o *ops) error
}

var (
	same   = backend.ConvParams{Stride: 1, Pad: 1}
	plain  = backend.BatchNormParams{Eps: 1e-5}
	resid  = backend.BatchNormParams{Eps: 1e-5, Residual: true}
	pool   = backend.PoolParams{Kernel: 3, Stride: 2, Pad: 1}
	sgd    = backend.SGDParams{LR: 0.1}
	sgdMom = backend.SGDParams{LR: 0.1, Momentum: 0.9}
)

// grouped is a 3x3 stride-1 padding-1 convolution in groups.
func grouped(groups int) backend.ConvParams {
	return backend.ConvParams{Stride: 1, Pad: 1, Groups: groups}
}

// shortcutCase is a training forward over (2, 8, 4, 4) whose option-A shortcut input of zshape is wrong
// for the reason why.
func shortcutCase(name, why string, zshape ...int) operandCase {
	want := fmt.Sprintf("BatchNormForwardTraining: Z has shape %v, want (2, Cz, H*s, W*s) for the output [2 8 4 4]: %s",
		zshape, why)
	return operandCase{name, want, func(o *ops) error { return o.dev.BatchNormForwardTraining(resid, o.withZ(zshape...)) }}
}

const (
	evenCz    = "Cz must be <= 8 and differ from it by an even count"
	oneStride = "the spatial size must be the output's times one integer stride"
)

var operandCases = []operandCase{
	// Every operand of every op: storage, dtype, layout, dimensions, view.
	{"unallocated", "Zero: t is not allocated", func(o *ops) error { return o.dev.Zero(backend.Tensor{}) }},
	{"freed", "Zero: t was freed", func(o *ops) error { return o.dev.Zero(o.freed(2)) }},
	{"another backend's buffer", "ConvForward: w was allocated by another backend (backendtest.foreignBuffer)",
		func(o *ops) error {
			return o.dev.ConvForward(same, o.t(2, 3, 8, 8), o.foreign(4, 3, 3, 3), o.t(2, 4, 8, 8))
		}},
	{"label unlike the buffer", "Zero: t is labelled i32 but its buffer holds f32", func(o *ops) error {
		return o.dev.Zero(o.relabelled(backend.I32, 2))
	}},
	{"unknown layout", "ConvForward: x has layout(7); want NCHW or NHWC", func(o *ops) error {
		x := o.t(2, 3, 8, 8)
		x.Layout = 7
		return o.dev.ConvForward(same, x, o.t(4, 3, 3, 3), o.t(2, 4, 8, 8))
	}},
	{"negative dimension", "Zero: t has shape [2 -1] with a negative dimension", func(o *ops) error {
		return o.dev.Zero(o.reshaped(o.t(2), 2, -1))
	}},
	{"view past the end of the buffer", "ConvForward: x views elements [1, 385) of a buffer of 384", func(o *ops) error {
		x := o.t(2, 3, 8, 8)
		x.Off = 1
		return o.dev.ConvForward(same, x, o.t(4, 3, 3, 3), o.t(2, 4, 8, 8))
	}},
	{"i32 where f32 is wanted", "ConvForward: x is i32, want a floating-point activation", func(o *ops) error {
		return o.dev.ConvForward(backend.ConvParams{Stride: 1}, o.reshaped(o.labels(0, 1), 1, 1, 1, 2), o.t(1, 1, 1, 1), o.t(1, 1, 1, 2))
	}},

	// Memory.
	{"alloc unknown layout", "Alloc: layout(7) is not supported; want NCHW or NHWC", func(o *ops) error {
		return o.alloc(backend.Shape{1}, backend.F32, 7)
	}},
	{"alloc unknown dtype", "Alloc: dtype(9) is not supported; tensors hold f32, i32 or a 16-bit float", func(o *ops) error {
		return o.alloc(backend.Shape{1}, 9, backend.NCHW)
	}},
	{"alloc NHWC of rank 2", "Alloc: f32 NHWC with shape [2 3]: only 4-D activations may be other than f32 or i32 NCHW",
		func(o *ops) error { return o.alloc(backend.Shape{2, 3}, backend.F32, backend.NHWC) }},
	{"alloc bf16 on a device in f32", "Alloc: bf16 NCHW is not this device's activation format (f32 NCHW); " +
		"bf16 activations need the cuda backend with cuda.precision: bf16", func(o *ops) error {
		return o.alloc(backend.Shape{2, 3, 4, 4}, backend.BF16, backend.NCHW)
	}},
	{"alloc NHWC on a device in NCHW", "Alloc: f32 NHWC is not this device's activation format (f32 NCHW); " +
		"NHWC activations need the cuda backend with cuda.layout: nhwc", func(o *ops) error {
		return o.alloc(backend.Shape{2, 3, 4, 4}, backend.F32, backend.NHWC)
	}},
	{"alloc negative dimension", "Alloc: shape [2 -1] has a negative dimension", func(o *ops) error {
		return o.alloc(backend.Shape{2, -1}, backend.F32, backend.NCHW)
	}},
	{"upload length", "Upload: source has 2 values, tensor [3] holds 3", func(o *ops) error {
		return o.dev.Upload(o.t(3), []float32{1, 2})
	}},
	{"upload int32 into f32", "UploadInt32: dst is f32, want i32", func(o *ops) error {
		return o.dev.UploadInt32(o.t(2), []int32{1, 2})
	}},
	{"download length", "Download: destination has room for 2 values, tensor [3] holds 3", func(o *ops) error {
		return o.dev.Download(make([]float32, 2), o.t(3))
	}},
	{"download i32", "Download: src is i32, want a floating-point tensor", func(o *ops) error {
		return o.dev.Download(make([]float32, 2), o.labels(0, 1))
	}},
	{"copy dtypes", "Copy: dst is f32, src is i32", func(o *ops) error { return o.dev.Copy(o.t(2), o.labels(0, 1)) }},
	{"copy counts", "Copy: dst [2] holds 2 values, src [3] holds 3", func(o *ops) error { return o.dev.Copy(o.t(2), o.t(3)) }},

	// Convolution: x (2, 3, 8, 8), w (4, 3, 3, 3), y (2, 4, 8, 8) with stride 1, padding 1.
	{"conv zero stride", "ConvForward: stride must be >= 1 and padding >= 0 (got stride 0, padding 0)", func(o *ops) error {
		return o.dev.ConvForward(backend.ConvParams{}, o.t(2, 3, 8, 8), o.t(4, 3, 3, 3), o.t(2, 4, 8, 8))
	}},
	{"conv negative padding", "ConvBackwardFilter: stride must be >= 1 and padding >= 0 (got stride 1, padding -1)",
		func(o *ops) error {
			return o.dev.ConvBackwardFilter(backend.ConvParams{Stride: 1, Pad: -1}, o.t(2, 3, 8, 8), o.t(2, 4, 8, 8), o.t(4, 3, 3, 3))
		}},
	{"conv 3-D input", "ConvForward: x has shape [2 3 64], want 4-D (N, C, H, W)", func(o *ops) error {
		return o.dev.ConvForward(same, o.t(2, 3, 64), o.t(4, 3, 3, 3), o.t(2, 4, 8, 8))
	}},
	{"conv 3-D weight", "ConvForward: w has shape [4 3 9], want 4-D (Cout, Cin, KH, KW)", func(o *ops) error {
		return o.dev.ConvForward(same, o.t(2, 3, 8, 8), o.t(4, 3, 9), o.t(2, 4, 8, 8))
	}},
	{"conv channel mismatch", "ConvForward: w [4 3 3 3] has 3 input channels but x [2 5 8 8] has 5 channels",
		func(o *ops) error { return o.dev.ConvForward(same, o.t(2, 5, 8, 8), o.t(4, 3, 3, 3), o.t(2, 4, 8, 8)) }},
	{"conv kernel larger than input", "ConvForward: kernel 3x3 does not fit the 2x2 input padded by 0", func(o *ops) error {
		return o.dev.ConvForward(backend.ConvParams{Stride: 1}, o.t(1, 3, 2, 2), o.t(4, 3, 3, 3), o.t(1, 4, 1, 1))
	}},
	{"conv output extent", "ConvForward: y has shape [2 4 8 8], want [2 4 4 4] (from x [2 3 8 8], w [4 3 3 3], stride 2, padding 1)",
		func(o *ops) error {
			return o.dev.ConvForward(backend.ConvParams{Stride: 2, Pad: 1}, o.t(2, 3, 8, 8), o.t(4, 3, 3, 3), o.t(2, 4, 8, 8))
		}},
	{"conv batch mismatch", "ConvForward: y has shape [3 4 8 8], want [2 4 8 8] (from x [2 3 8 8], w [4 3 3 3], stride 1, padding 1)",
		func(o *ops) error { return o.dev.ConvForward(same, o.t(2, 3, 8, 8), o.t(4, 3, 3, 3), o.t(3, 4, 8, 8)) }},
	{"conv backward data dx", "ConvBackwardData: dy has shape [2 4 8 8], want [2 4 7 8] (from dx [2 3 7 8], w [4 3 3 3], stride 1, padding 1)",
		func(o *ops) error {
			return o.dev.ConvBackwardData(same, o.t(2, 4, 8, 8), o.t(4, 3, 3, 3), o.t(2, 3, 7, 8), false)
		}},
	{"conv backward filter dw", "ConvBackwardFilter: dy has shape [2 4 8 8], want [2 4 10 10] (from x [2 3 8 8], dw [4 3 1 1], stride 1, padding 1)",
		func(o *ops) error {
			return o.dev.ConvBackwardFilter(same, o.t(2, 3, 8, 8), o.t(2, 4, 8, 8), o.t(4, 3, 1, 1))
		}},
	// Grouped convolution: x (2, 8, 6, 6), w (12, 8/groups, 3, 3).
	{"conv negative groups", "ConvForward: groups must be >= 1, or 0 for an ungrouped convolution (got -2)", func(o *ops) error {
		return o.dev.ConvForward(backend.ConvParams{Stride: 1, Pad: 1, Groups: -2}, o.t(2, 8, 6, 6), o.t(12, 8, 3, 3), o.t(2, 12, 6, 6))
	}},
	{"conv groups not dividing the input channels", "ConvForward: 3 groups must divide the 8 input and 12 output channels of x [2 8 6 6] and w [12 2 3 3]",
		func(o *ops) error {
			return o.dev.ConvForward(grouped(3), o.t(2, 8, 6, 6), o.t(12, 2, 3, 3), o.t(2, 12, 6, 6))
		}},
	{"conv groups not dividing the output channels", "ConvBackwardData: 4 groups must divide the 8 input and 6 output channels of dx [2 8 6 6] and w [6 2 3 3]",
		func(o *ops) error {
			return o.dev.ConvBackwardData(grouped(4), o.t(2, 6, 6, 6), o.t(6, 2, 3, 3), o.t(2, 8, 6, 6), false)
		}},
	{"conv grouped weight with every input channel", "ConvBackwardFilter: dw [12 8 3 3] has 8 input channels per group but x [2 8 6 6] has 8 channels in 4 groups",
		func(o *ops) error {
			return o.dev.ConvBackwardFilter(grouped(4), o.t(2, 8, 6, 6), o.t(2, 12, 6, 6), o.t(12, 8, 3, 3))
		}},
	{"conv grouped output extent", "ConvForward: y has shape [2 12 6 6], want [2 12 3 3] (from x [2 8 6 6], w [12 2 3 3], stride 2, padding 1, 4 groups)",
		func(o *ops) error {
			return o.dev.ConvForward(backend.ConvParams{Stride: 2, Pad: 1, Groups: 4}, o.t(2, 8, 6, 6), o.t(12, 2, 3, 3), o.t(2, 12, 6, 6))
		}},

	// Batch norm: X (2, C, 4, 4).
	{"bn 2-D input", "BatchNormForwardInference: X has shape [2 4], want 4-D (N, C, H, W)", func(o *ops) error {
		return o.dev.BatchNormForwardInference(plain, o.bn(4, func(t *backend.BatchNormTensors) { t.X = o.t(2, 4) }))
	}},
	{"bn output shape", "BatchNormForwardInference: Y has shape [2 4 4 5], want [2 4 4 4]", func(o *ops) error {
		return o.dev.BatchNormForwardInference(plain, o.bn(4, func(t *backend.BatchNormTensors) { t.Y = o.t(2, 4, 4, 5) }))
	}},
	{"bn gamma shape", "BatchNormForwardTraining: Gamma has shape [5], want [4]", func(o *ops) error {
		return o.dev.BatchNormForwardTraining(plain, o.bn(4, func(t *backend.BatchNormTensors) { t.Gamma = o.t(5) }))
	}},
	{"bn running variance shape", "BatchNormForwardInference: RunningVar has shape [4 1], want [4]", func(o *ops) error {
		return o.dev.BatchNormForwardInference(plain, o.bn(4, func(t *backend.BatchNormTensors) { t.RunningVar = o.t(4, 1) }))
	}},
	{"bn saved statistics shape", "BatchNormForwardTraining: SaveInvStd has shape [3], want [4]", func(o *ops) error {
		return o.dev.BatchNormForwardTraining(plain, o.bn(4, func(t *backend.BatchNormTensors) { t.SaveInvStd = o.t(3) }))
	}},
	{"bn negative eps", "BatchNormForwardInference: Eps is -1, want >= 0", func(o *ops) error {
		return o.dev.BatchNormForwardInference(backend.BatchNormParams{Eps: -1}, o.bn(4, nil))
	}},
	{"bn one value per channel", "BatchNormForwardTraining: X [1 4 1 1] has 1 values per channel; training statistics need at least 2",
		func(o *ops) error {
			return o.dev.BatchNormForwardTraining(plain, o.bn(4, func(t *backend.BatchNormTensors) {
				t.X, t.Y = o.t(1, 4, 1, 1), o.t(1, 4, 1, 1)
			}))
		}},
	{"bn sync rank outside world", "BatchNormForwardTraining: Sync has rank 2 of a world of 2, want 0 <= rank < world",
		func(o *ops) error {
			return o.dev.BatchNormForwardTraining(backend.BatchNormParams{Eps: 1e-5, Sync: unusedSyncer{rank: 2, world: 2}}, o.bn(4, nil))
		}},
	{"bn residual without Z", "BatchNormForwardInference: Residual is set but Z is not allocated", func(o *ops) error {
		return o.dev.BatchNormForwardInference(resid, o.bn(8, nil))
	}},
	{"bn residual 3-D Z", "BatchNormForwardTraining: Z has shape [2 4 16], want 4-D (N, C, H, W)", func(o *ops) error {
		return o.dev.BatchNormForwardTraining(resid, o.withZ(2, 4, 16))
	}},
	shortcutCase("bn residual batch", "batch sizes differ", 3, 4, 8, 8),
	shortcutCase("bn residual odd channel difference", evenCz, 2, 5, 8, 8),
	shortcutCase("bn residual more channels", evenCz, 2, 10, 4, 4),
	shortcutCase("bn residual non-integer stride", oneStride, 2, 4, 6, 6),
	shortcutCase("bn residual unequal strides", oneStride, 2, 4, 8, 4),
	{"bn backward DX shape", "BatchNormBackward: DX has shape [2 4 4 3], want [2 4 4 4]", func(o *ops) error {
		return o.dev.BatchNormBackward(plain, o.bnGrads(func(g *backend.BatchNormGrads) { g.DX = o.t(2, 4, 4, 3) }))
	}},
	{"bn backward ReLU output", "BatchNormBackward: Y has shape [2 4], want [2 4 4 4]", func(o *ops) error {
		p := backend.BatchNormParams{ReLU: true}
		return o.dev.BatchNormBackward(p, o.bnGrads(func(g *backend.BatchNormGrads) { g.Y = o.t(2, 4) }))
	}},
	{"bn backward DGamma shape", "BatchNormBackward: DGamma has shape [3], want [4]", func(o *ops) error {
		return o.dev.BatchNormBackward(plain, o.bnGrads(func(g *backend.BatchNormGrads) { g.DGamma = o.t(3) }))
	}},
	{"bn backward DZ", "BatchNormBackward: DZ has shape [2 4 4 3], want (2, Cz, H*s, W*s) for the output [2 4 4 4]: " +
		oneStride, func(o *ops) error {
		return o.dev.BatchNormBackward(resid, o.bnGrads(func(g *backend.BatchNormGrads) { g.DZ = o.t(2, 4, 4, 3) }))
	}},
	{"bn backward empty batch", "BatchNormBackward: X [0 4 4 4] is empty", func(o *ops) error {
		return o.dev.BatchNormBackward(plain, o.bnGrads(func(g *backend.BatchNormGrads) {
			g.X, g.Y, g.DY, g.DX = o.t(0, 4, 4, 4), o.t(0, 4, 4, 4), o.t(0, 4, 4, 4), o.t(0, 4, 4, 4)
		}))
	}},

	// Pooling: x (2, 3, 8, 8).
	{"maxpool output shape", "MaxPoolForward: y has shape [2 3 3 3], want [2 3 4 4]", func(o *ops) error {
		return o.dev.MaxPoolForward(pool, o.t(2, 3, 8, 8), o.t(2, 3, 3, 3))
	}},
	{"maxpool zero stride", "MaxPoolForward: kernel 3, stride 0, padding 1: want kernel >= 1, stride >= 1 and 0 <= padding <= kernel/2",
		func(o *ops) error {
			return o.dev.MaxPoolForward(backend.PoolParams{Kernel: 3, Pad: 1}, o.t(2, 3, 8, 8), o.t(2, 3, 4, 4))
		}},
	{"maxpool padding over half the kernel", "MaxPoolForward: kernel 2, stride 1, padding 2: want kernel >= 1, stride >= 1 and 0 <= padding <= kernel/2",
		func(o *ops) error {
			return o.dev.MaxPoolForward(backend.PoolParams{Kernel: 2, Stride: 1, Pad: 2}, o.t(2, 3, 8, 8), o.t(2, 3, 11, 11))
		}},
	{"maxpool window larger than input", "MaxPoolForward: window 9 does not fit the 8x8 input padded by 0", func(o *ops) error {
		return o.dev.MaxPoolForward(backend.PoolParams{Kernel: 9, Stride: 1}, o.t(2, 3, 8, 8), o.t(2, 3, 1, 1))
	}},
	{"maxpool backward dy", "MaxPoolBackward: dy has shape [2 3 4 5], want [2 3 4 4]", func(o *ops) error {
		return o.dev.MaxPoolBackward(pool, o.t(2, 3, 8, 8), o.t(2, 3, 4, 4), o.t(2, 3, 4, 5), o.t(2, 3, 8, 8))
	}},
	{"maxpool backward dx", "MaxPoolBackward: dx has shape [2 3 8 7], want [2 3 8 8]", func(o *ops) error {
		return o.dev.MaxPoolBackward(pool, o.t(2, 3, 8, 8), o.t(2, 3, 4, 4), o.t(2, 3, 4, 4), o.t(2, 3, 8, 7))
	}},
	{"avgpool output channels", "GlobalAvgPoolForward: y has shape [2 4], want [2 3]", func(o *ops) error {
		return o.dev.GlobalAvgPoolForward(o.t(2, 3, 8, 8), o.t(2, 4))
	}},
	{"avgpool 4-D output", "GlobalAvgPoolForward: y has shape [2 3 2 2], want [2 3 1 1]", func(o *ops) error {
		return o.dev.GlobalAvgPoolForward(o.t(2, 3, 8, 8), o.t(2, 3, 2, 2))
	}},
	{"avgpool empty planes", "GlobalAvgPoolForward: x [2 3 0 4] has empty planes", func(o *ops) error {
		return o.dev.GlobalAvgPoolForward(o.t(2, 3, 0, 4), o.t(2, 3))
	}},
	{"avgpool backward dy", "GlobalAvgPoolBackward: dy has shape [3 3], want [2 3]", func(o *ops) error {
		return o.dev.GlobalAvgPoolBackward(o.t(3, 3), o.t(2, 3, 8, 8))
	}},

	// Linear: x (2, 4), w (3, 4).
	{"linear 3-D weight", "LinearForward: w has shape [3 4 1], want (Out, In)", func(o *ops) error {
		return o.dev.LinearForward(o.t(2, 4), o.t(3, 4, 1), o.t(3), o.t(2, 3))
	}},
	{"linear input features", "LinearForward: x has shape [2 5], want (N, 4) to match w [3 4]", func(o *ops) error {
		return o.dev.LinearForward(o.t(2, 5), o.t(3, 4), o.t(3), o.t(2, 3))
	}},
	{"linear bias", "LinearForward: b has shape [4], want [3]", func(o *ops) error {
		return o.dev.LinearForward(o.t(2, 4), o.t(3, 4), o.t(4), o.t(2, 3))
	}},
	{"linear output", "LinearForward: y has shape [2 4], want [2 3]", func(o *ops) error {
		return o.dev.LinearForward(o.t(2, 4), o.t(3, 4), o.t(3), o.t(2, 4))
	}},
	{"linear backward dx", "LinearBackward: dx has shape [2 5], want [2 4]", func(o *ops) error {
		return o.dev.LinearBackward(o.t(2, 4), o.t(3, 4), o.t(2, 3), o.t(2, 5), o.t(3, 4), o.t(3))
	}},
	{"linear backward dw", "LinearBackward: dw has shape [4 3], want [3 4]", func(o *ops) error {
		return o.dev.LinearBackward(o.t(2, 4), o.t(3, 4), o.t(2, 3), backend.Tensor{}, o.t(4, 3), o.t(3))
	}},

	// Softmax cross-entropy: logits (2, 10), labels (2).
	{"loss 3-D logits", "SoftmaxCrossEntropy: logits have shape [2 10 1], want (N, K)", func(o *ops) error {
		return o.dev.SoftmaxCrossEntropy(o.t(2, 10, 1), o.labels(0, 1), o.t(2), backend.Tensor{}, 1)
	}},
	{"loss without classes", "SoftmaxCrossEntropy: logits have shape [2 0]: no classes", func(o *ops) error {
		return o.dev.SoftmaxCrossEntropy(o.t(2, 0), o.labels(0, 1), o.t(2), backend.Tensor{}, 1)
	}},
	{"loss label count", "SoftmaxCrossEntropy: labels have shape [3], want [2]", func(o *ops) error {
		return o.dev.SoftmaxCrossEntropy(o.t(2, 10), o.labels(0, 1, 2), o.t(2), o.t(2, 10), 1)
	}},
	{"loss f32 labels", "SoftmaxCrossEntropy: labels is f32, want i32", func(o *ops) error {
		return o.dev.SoftmaxCrossEntropy(o.t(2, 10), o.t(2), o.t(2), o.t(2, 10), 1)
	}},
	{"loss output", "SoftmaxCrossEntropy: loss has shape [3], want [2]", func(o *ops) error {
		return o.dev.SoftmaxCrossEntropy(o.t(2, 10), o.labels(0, 1), o.t(3), o.t(2, 10), 1)
	}},
	{"loss gradient", "SoftmaxCrossEntropy: dlogits has shape [2 11], want [2 10]", func(o *ops) error {
		return o.dev.SoftmaxCrossEntropy(o.t(2, 10), o.labels(0, 1), o.t(2), o.t(2, 11), 1)
	}},

	// SGD: the error names the slot.
	{"sgd gradient shape", "SGDStep: Grad has shape [4], want [3] (slot 1)", func(o *ops) error {
		return o.dev.SGDStep(sgd, []backend.SGDSlot{{Param: o.t(3), Grad: o.t(3)}, {Param: o.t(3), Grad: o.t(4)}})
	}},
	{"sgd momentum without buffer", "SGDStep: Buf is not allocated but Momentum is 0.9 (slot 0)", func(o *ops) error {
		return o.dev.SGDStep(sgdMom, []backend.SGDSlot{{Param: o.t(3), Grad: o.t(3)}})
	}},
	{"sgd buffer shape", "SGDStep: Buf has shape [2], want [3] (slot 0)", func(o *ops) error {
		return o.dev.SGDStep(sgdMom, []backend.SGDSlot{{Param: o.t(3), Grad: o.t(3), Buf: o.t(2)}})
	}},
	{"sgd another backend's parameter", "SGDStep: Param was allocated by another backend (backendtest.foreignBuffer) (slot 0)",
		func(o *ops) error { return o.dev.SGDStep(sgd, []backend.SGDSlot{{Param: o.foreign(3), Grad: o.t(3)}}) }},

	// Finding non-finite values: the error names the first bad tensor.
	{"find nonfinite flags length", "FindNonFinite: nonNegative has 1 entries for 2 tensors; pass nil or one per tensor",
		func(o *ops) error { return o.find([]bool{true}, o.t(2), o.t(3)) }},
	{"find nonfinite unallocated", "FindNonFinite: tensor is not allocated (ts[1])", func(o *ops) error {
		return o.find(nil, o.t(2), backend.Tensor{})
	}},
	{"find nonfinite freed", "FindNonFinite: tensor was freed (ts[0])", func(o *ops) error {
		return o.find([]bool{false, true}, o.freed(2), o.t(3))
	}},
	{"find nonfinite i32", "FindNonFinite: tensor is i32, want f32 (ts[2])", func(o *ops) error {
		return o.find(nil, o.t(2), o.t(3), o.labels(0, 1))
	}},
	{"find nonfinite another backend's tensor", "FindNonFinite: tensor was allocated by another backend (backendtest.foreignBuffer) (ts[1])",
		func(o *ops) error { return o.find(nil, o.t(2), o.foreign(3)) }},

	// Residual add: a (2, 8, 4, 4), z identity-shaped or an option-A input.
	{"residual add output shape", "ResidualAdd: y has shape [2 8 4 3], want [2 8 4 4]", func(o *ops) error {
		return o.dev.ResidualAdd(o.t(2, 8, 4, 4), o.t(2, 8, 4, 4), o.t(2, 8, 4, 3))
	}},
	{"residual add without z", "ResidualAdd: z is not allocated", func(o *ops) error {
		return o.dev.ResidualAdd(o.t(2, 8, 4, 4), backend.Tensor{}, o.t(2, 8, 4, 4))
	}},
	{"residual add odd channel difference", "ResidualAdd: z has shape [2 5 8 8], want (2, Cz, H*s, W*s) for the output " +
		"[2 8 4 4]: " + evenCz, func(o *ops) error {
		return o.dev.ResidualAdd(o.t(2, 8, 4, 4), o.t(2, 5, 8, 8), o.t(2, 8, 4, 4))
	}},
	{"residual add 2-D input", "ResidualAdd: a has shape [2 8], want 4-D (N, C, H, W)", func(o *ops) error {
		return o.dev.ResidualAdd(o.t(2, 8), o.t(2, 8), o.t(2, 8))
	}},
	{"residual add i32 shortcut", "ResidualAdd: z is i32, want a floating-point activation", func(o *ops) error {
		return o.dev.ResidualAdd(o.t(1, 1, 1, 2), o.reshaped(o.labels(0, 1), 1, 1, 1, 2), o.t(1, 1, 1, 2))
	}},
	{"residual backward strides", "ResidualAddBackward: dz has shape [2 8 8 4], want (2, Cz, H*s, W*s) for the output " +
		"[2 8 4 4]: " + oneStride, func(o *ops) error {
		return o.dev.ResidualAddBackward(o.t(2, 8, 4, 4), o.t(2, 8, 8, 4), true)
	}},
	{"residual backward batch", "ResidualAddBackward: dz has shape [3 8 4 4], want (2, Cz, H*s, W*s) for the output " +
		"[2 8 4 4]: batch sizes differ", func(o *ops) error {
		return o.dev.ResidualAddBackward(o.t(2, 8, 4, 4), o.t(3, 8, 4, 4), false)
	}},
	{"residual backward another backend's gradient", "ResidualAddBackward: dz was allocated by another backend (backendtest.foreignBuffer)",
		func(o *ops) error { return o.dev.ResidualAddBackward(o.t(2, 8, 4, 4), o.foreign(2, 8, 4, 4), false) }},

	// The SE gate: x (2, 3, 4, 4), s (2, 3).
	{"gate 2-D input", "ChannelGateForward: x has shape [2 3], want 4-D (N, C, H, W)", func(o *ops) error {
		return o.dev.ChannelGateForward(seGate, o.t(2, 3), o.t(2, 3), o.t(2, 3, 4, 4), o.t(2, 3, 4, 4))
	}},
	{"gate logits", "ChannelGateForward: s has shape [2 4], want [2 3]", func(o *ops) error {
		return o.dev.ChannelGateForward(seGate, o.t(2, 3, 4, 4), o.t(2, 4), o.t(2, 3, 4, 4), o.t(2, 3, 4, 4))
	}},
	{"gate shortcut", "ChannelGateForward: z has shape [2 3 2 2], want [2 3 4 4]", func(o *ops) error {
		return o.dev.ChannelGateForward(seGate, o.t(2, 3, 4, 4), o.t(2, 3), o.t(2, 3, 2, 2), o.t(2, 3, 4, 4))
	}},
	{"gate backward logits gradient", "ChannelGateBackward: DS has shape [3 3], want [2 3]", func(o *ops) error {
		x := o.t(2, 3, 4, 4)
		return o.dev.ChannelGateBackward(seGate, backend.ChannelGateGrads{X: x, S: o.t(2, 3), Y: x, DY: x, DG: x, DS: o.t(3, 3)})
	}},
	{"gate backward data squeeze gradient", "ChannelGateBackwardData: dpool has shape [2 4], want [2 3]", func(o *ops) error {
		return o.dev.ChannelGateBackwardData(o.t(2, 3), o.t(2, 3, 4, 4), o.t(2, 4), o.t(2, 3, 4, 4))
	}},

	// Dropout: x (2, 3, 4, 4).
	{"dropout probability 1", "DropoutForward: p must be >= 0 and < 1 (got 1)", func(o *ops) error {
		return o.dev.DropoutForward(backend.DropoutParams{P: 1}, o.t(2, 3, 4, 4), o.t(2, 3, 4, 4))
	}},
	{"dropout negative probability", "DropoutBackward: p must be >= 0 and < 1 (got -0.5)", func(o *ops) error {
		return o.dev.DropoutBackward(backend.DropoutParams{P: -0.5}, o.t(2, 3, 4, 4), o.t(2, 3, 4, 4))
	}},
	{"dropout NaN probability", "DropoutForward: p must be >= 0 and < 1 (got NaN)", func(o *ops) error {
		return o.dev.DropoutForward(backend.DropoutParams{P: math.NaN()}, o.t(2, 3, 4, 4), o.t(2, 3, 4, 4))
	}},
	{"dropout output shape", "DropoutForward: y has shape [2 3 4 3], want [2 3 4 4]", func(o *ops) error {
		return o.dev.DropoutForward(backend.DropoutParams{P: 0.3}, o.t(2, 3, 4, 4), o.t(2, 3, 4, 3))
	}},
	{"dropout 2-D input", "DropoutForward: x has shape [2 3], want 4-D (N, C, H, W)", func(o *ops) error {
		return o.dev.DropoutForward(backend.DropoutParams{P: 0.3}, o.t(2, 3), o.t(2, 3))
	}},
	{"dropout backward without dx", "DropoutBackward: dx is not allocated", func(o *ops) error {
		return o.dev.DropoutBackward(backend.DropoutParams{P: 0.3}, o.t(2, 3, 4, 4), backend.Tensor{Shape: backend.Shape{2, 3, 4, 4}})
	}},
	{"dropout backward another backend's gradient", "DropoutBackward: dx was allocated by another backend (backendtest.foreignBuffer)",
		func(o *ops) error {
			return o.dev.DropoutBackward(backend.DropoutParams{P: 0.3}, o.t(2, 3, 4, 4), o.foreign(2, 3, 4, 4))
		}},

	// The SE excitation: P (2, 3), W1 (2, 3), W2 (3, 2).
	{"excitation 3-D features", "ExcitationForward: P has shape [2 3 1], want (N, C)", func(o *ops) error {
		return o.dev.ExcitationForward(backend.ExcitationTensors{P: o.t(2, 3, 1), W1: o.t(2, 3), B1: o.t(2), W2: o.t(3, 2),
			B2: o.t(3), H: o.t(2, 2), S: o.t(2, 3)})
	}},
	{"excitation second weight", "ExcitationForward: W2 has shape [2 3], want [3 2]", func(o *ops) error {
		return o.dev.ExcitationForward(backend.ExcitationTensors{P: o.t(2, 3), W1: o.t(2, 3), B1: o.t(2), W2: o.t(2, 3),
			B2: o.t(3), H: o.t(2, 2), S: o.t(2, 3)})
	}},
	{"excitation backward hidden gradient", "ExcitationBackward: DH has shape [2 3], want [2 2]", func(o *ops) error {
		return o.dev.ExcitationBackward(backend.ExcitationGrads{P: o.t(2, 3), W1: o.t(2, 3), W2: o.t(3, 2), H: o.t(2, 2),
			DS: o.t(2, 3), DH: o.t(2, 3), DP: o.t(2, 3), DW1: o.t(2, 3), DB1: o.t(2), DW2: o.t(3, 2), DB2: o.t(3)})
	}},
}

// seGate is the configuration of the gate that closes an SE unit.
var seGate = backend.ChannelGateParams{ReLU: true, Residual: true}

// rejectedSGDStep checks that SGDStep checks every slot before it changes any parameter, whether a later
// slot has a bad shape or another backend's tensor.
func rejectedSGDStep(t *testing.T, dev backend.Device) {
	o := &ops{test: t, dev: dev}
	p := o.t(2)
	if err := dev.Upload(p, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	g := o.t(2)
	if err := dev.Upload(g, []float32{1, 1}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []backend.SGDSlot{{Param: o.t(2), Grad: o.t(3)}, {Param: o.foreign(2), Grad: o.t(2)}} {
		if err := dev.SGDStep(backend.SGDParams{LR: 1}, []backend.SGDSlot{{Param: p, Grad: g}, bad}); err == nil {
			t.Fatal("no error for a bad second slot")
		}
		got := make([]float32, 2)
		if err := dev.Download(got, p); err != nil {
			t.Fatal(err)
		}
		if got[0] != 1 || got[1] != 2 {
			t.Fatalf("the first slot's parameter is %v after the step was rejected, want [1 2]", got)
		}
	}
}

// unusedSyncer is the syncer of operands the checks refuse, before any exchange.
type unusedSyncer struct{ rank, world int }

func (s unusedSyncer) SumStats(backend.Tensor) error {
	return fmt.Errorf("SumStats called on refused operands")
}
func (s unusedSyncer) Rank() int      { return s.rank }
func (s unusedSyncer) WorldSize() int { return s.world }
