package cuda

// The kernels of kernels/*.cu that the device looks up in the fatbin when it opens, with the parameter
// list each one takes. A launcher packs its arguments against this table and the launch is refused when
// they differ; TestKernelTableMatchesSources checks the table against the extern "C" signatures in the
// .cu files, so a kernel and its launcher cannot drift apart silently.
//
// The names are stable: LaunchCounts reports launches under them, and tests use them to prove which path
// (fused or unfused) ran. Library calls are counted too, under the names in libCallNames.

type kernelID int

const (
	// kernels/batchnorm.cu, fused path.
	kBNForwardStats kernelID = iota
	kBNForwardApply
	kBNForwardApplyReLU
	kBNForwardApplyAdd
	kBNForwardApplyAddReLU
	kBNInferenceApply
	kBNInferenceApplyReLU
	kBNInferenceApplyAdd
	kBNInferenceApplyAddReLU
	kBNBackwardReduce
	kBNBackwardReduceReLU
	kBNBackwardDX
	kBNBackwardDXReLU
	kBNBackwardDXAdd
	kBNBackwardDXAddReLU
	// kernels/batchnorm.cu, unfused path.
	kBNStatsPartial
	kBNStatsFinalize
	kBNInferenceParams
	kBNNormalize
	kResidualAdd
	kReLUForward
	kReLUBackward
	kResidualBackward
	kBNBackwardReducePartial
	kBNBackwardFinalize
	kBNBackwardInput
	// kernels/pooling.cu
	kMaxPoolForward
	kMaxPoolBackward
	kAvgPoolForward
	kAvgPoolBackward
	// kernels/loss.cu
	kSoftmaxCrossEntropy
	// kernels/linear.cu
	kLinearBiasAdd
	kLinearBiasGrad
	// kernels/sgd.cu
	kSGDStep
	kSGDStepSingle
	// kernels/check.cu
	kFindNonFinite

	// kernels/convert.cu: convolution filters to and from the formats cuDNN convolves other activation
	// formats with.
	kFilterToF32NHWC
	kFilterToBF16NCHW
	kFilterToBF16NHWC
	kFilterToF16NCHW
	kFilterToF16NHWC
	kFilterFromF32NHWC
	kFilterFromBF16NCHW
	kFilterFromBF16NHWC
	kFilterFromF16NCHW
	kFilterFromF16NHWC

	numKernels
)

// kernelInfo names a kernel and its parameters, one letter each: p pointer, i int (32-bit), l long long,
// f float.
type kernelInfo struct {
	name, sig string
}

var kernelTable = [numKernels]kernelInfo{
	kBNForwardStats:          {"bn_forward_stats", "piiiippffpppppp"},
	kBNForwardApply:          {"bn_forward_apply", "ppppppiiiiii"},
	kBNForwardApplyReLU:      {"bn_forward_apply_relu", "ppppppiiiiii"},
	kBNForwardApplyAdd:       {"bn_forward_apply_add", "ppppppiiiiii"},
	kBNForwardApplyAddReLU:   {"bn_forward_apply_add_relu", "ppppppiiiiii"},
	kBNInferenceApply:        {"bn_inference_apply", "pppppppfiiiiii"},
	kBNInferenceApplyReLU:    {"bn_inference_apply_relu", "pppppppfiiiiii"},
	kBNInferenceApplyAdd:     {"bn_inference_apply_add", "pppppppfiiiiii"},
	kBNInferenceApplyAddReLU: {"bn_inference_apply_add_relu", "pppppppfiiiiii"},
	kBNBackwardReduce:        {"bn_backward_reduce", "ppppiiiippppppp"},
	kBNBackwardReduceReLU:    {"bn_backward_reduce_relu", "ppppiiiippppppp"},
	kBNBackwardDX:            {"bn_backward_dx", "pppppppiiiiii"},
	kBNBackwardDXReLU:        {"bn_backward_dx_relu", "pppppppiiiiii"},
	kBNBackwardDXAdd:         {"bn_backward_dx_add", "pppppppiiiiii"},
	kBNBackwardDXAddReLU:     {"bn_backward_dx_add_relu", "pppppppiiiiii"},

	kBNStatsPartial:          {"bn_stats_partial", "piiiip"},
	kBNStatsFinalize:         {"bn_stats_finalize", "ppiiilffpppppp"},
	kBNInferenceParams:       {"bn_inference_params", "ppfip"},
	kBNNormalize:             {"bn_normalize", "pppppiiii"},
	kResidualAdd:             {"residual_add", "ppiiiiii"},
	kReLUForward:             {"relu_forward", "ppl"},
	kReLUBackward:            {"relu_backward", "pppl"},
	kResidualBackward:        {"residual_backward", "ppiiiiii"},
	kBNBackwardReducePartial: {"bn_backward_reduce_partial", "pppiiiip"},
	kBNBackwardFinalize:      {"bn_backward_finalize", "piilppppp"},
	kBNBackwardInput:         {"bn_backward_input", "pppppiiii"},

	kMaxPoolForward:  {"maxpool_forward", "ppiiiiiiii"},
	kMaxPoolBackward: {"maxpool_backward", "pppiiiiiiii"},
	kAvgPoolForward:  {"avgpool_forward", "ppii"},
	kAvgPoolBackward: {"avgpool_backward", "ppii"},

	kSoftmaxCrossEntropy: {"softmax_cross_entropy", "ppppiif"},

	kLinearBiasAdd:  {"linear_bias_add", "ppii"},
	kLinearBiasGrad: {"linear_bias_grad", "ppii"},

	kSGDStep:       {"sgd_step", "piffif"},
	kSGDStepSingle: {"sgd_step_single", "ppplffiff"},

	kFindNonFinite: {"find_nonfinite", "plip"},

	kFilterToF32NHWC:    {"filter_to_f32_nhwc", "ppiil"},
	kFilterToBF16NCHW:   {"filter_to_bf16_nchw", "ppiil"},
	kFilterToBF16NHWC:   {"filter_to_bf16_nhwc", "ppiil"},
	kFilterToF16NCHW:    {"filter_to_f16_nchw", "ppiil"},
	kFilterToF16NHWC:    {"filter_to_f16_nhwc", "ppiil"},
	kFilterFromF32NHWC:  {"filter_from_f32_nhwc", "ppiil"},
	kFilterFromBF16NCHW: {"filter_from_bf16_nchw", "ppiil"},
	kFilterFromBF16NHWC: {"filter_from_bf16_nhwc", "ppiil"},
	kFilterFromF16NCHW:  {"filter_from_f16_nchw", "ppiil"},
	kFilterFromF16NHWC:  {"filter_from_f16_nhwc", "ppiil"},
}

// maxKernelArgs bounds the parameter count of any kernel (the launch packs arguments into a fixed array).
const maxKernelArgs = 16

// Library calls counted next to the kernels.
type libCall int

const (
	libConvForward libCall = iota
	libConvBackwardData
	libConvBackwardFilter
	libSgemm
	numLibCalls
)

var libCallNames = [numLibCalls]string{
	libConvForward:        "cudnnConvolutionForward",
	libConvBackwardData:   "cudnnConvolutionBackwardData",
	libConvBackwardFilter: "cudnnConvolutionBackwardFilter",
	libSgemm:              "cublasSgemm",
}

// The fused kernels, and the unfused kernels that replace them with backend.Options.Unfused: a device
// opened one way never launches a kernel of the other list.
var (
	FusedKernels = []string{
		"bn_forward_stats", "bn_forward_apply", "bn_forward_apply_relu", "bn_forward_apply_add",
		"bn_forward_apply_add_relu", "bn_inference_apply", "bn_inference_apply_relu", "bn_inference_apply_add",
		"bn_inference_apply_add_relu", "bn_backward_reduce", "bn_backward_reduce_relu", "bn_backward_dx",
		"bn_backward_dx_relu", "bn_backward_dx_add", "bn_backward_dx_add_relu", "sgd_step",
	}
	UnfusedKernels = []string{
		"bn_stats_partial", "bn_stats_finalize", "bn_inference_params", "bn_normalize", "residual_add",
		"relu_forward", "relu_backward", "residual_backward", "bn_backward_reduce_partial",
		"bn_backward_finalize", "bn_backward_input", "sgd_step_single",
	}
)
