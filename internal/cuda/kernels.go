package cuda

// The kernels of kernels/*.cu that the device looks up in the fatbin when it opens, with the parameter
// list each one takes. A launcher packs its arguments against this table and the launch is refused when
// they differ; TestKernelTableMatchesSources checks the table against the extern "C" signatures in the
// .cu files, so a kernel and its launcher cannot drift apart silently.
//
// The names are stable: LaunchCounts reports launches under them, and tests use them to prove which path
// (fused or unfused) ran. Library calls are counted too, under the names in libCallNames.

import "resnet/internal/backend"

type kernelID int

// The ids below are the float NCHW kernels; variant gives the id of a kernel's other activation formats.
// Kernels built in every format come first, then those built per dtype only, then the float-only ones.
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
	kBNNormalize
	kResidualAdd
	kResidualBackward
	kBNBackwardReducePartial
	kBNBackwardInput
	// kernels/batchnorm.cu, synchronised (both paths).
	kBNSyncStats
	kBNSyncGradReduce
	// kernels/pooling.cu
	kMaxPoolForward
	kMaxPoolBackward
	kAvgPoolForward
	kAvgPoolBackward
	// kernels/residual.cu
	kResidualAddOut
	kResidualBackwardAccumulate
	// kernels/gate.cu, fused path, then unfused path.
	kGateForward
	kGateBackward
	kGateBackwardData
	kGateScale
	kGateGradReduce
	kGatePoolAdd
	// kernels/dropout.cu
	kDropoutApply
	// kernels/pooling.cu: windowed average pooling.
	kAvgPoolWindowForward
	kAvgPoolWindowBackward
	// kernels/concat.cu
	kCopyChannels
	// kernels/scaled_residual.cu, fused path, then unfused path, then both.
	kScaledResidualForward
	kScaledResidualBackward
	kScaledBias
	kScaledResidualBiasGrad

	// Built per dtype (element-wise: the layout does not matter). kernels/batchnorm.cu, unfused path.
	kReLUForward
	kReLUBackward

	// Float only: no activation operands. kernels/batchnorm.cu, unfused path.
	kBNInferenceParams
	kBNBackwardFinalize
	// kernels/batchnorm.cu, synchronised (both paths).
	kBNSyncFinalize
	kBNSyncGradFinalize
	// kernels/loss.cu
	kSoftmaxCrossEntropy
	kSoftTargetCrossEntropy
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
	// kernels/convert.cu: activations to and from the f32 NCHW values Upload and Download see.
	kActivationToF32NHWC
	kActivationToBF16NCHW
	kActivationToBF16NHWC
	kActivationToF16NCHW
	kActivationToF16NHWC
	kActivationFromF32NHWC
	kActivationFromBF16NCHW
	kActivationFromBF16NHWC
	kActivationFromF16NCHW
	kActivationFromF16NHWC

	// kernels/gate.cu: the SE excitation's bias and ReLU steps.
	kExciteBiasReLU
	kExciteReLUBiasGrad

	numBaseKernels
)

// The ranges of the enumeration above, and the count of every kernel the device loads: the base ones and
// the variants of the first two ranges (RN_ACT_FORMATS and RN_ACT_DTYPES in kernels/common.cuh).
const (
	numFormatKernels = kScaledResidualBiasGrad + 1
	numDTypeKernels  = kReLUBackward + 1 - numFormatKernels
	numKernels       = numBaseKernels + numFormatKernels*(numFormats-1) + numDTypeKernels*(numDTypes-1)
)

// kernelInfo names a kernel and its parameters, one letter each: p pointer, i int (32-bit), l long long,
// f float.
type kernelInfo struct {
	name, sig string
}

// kernelTable lists every kernel: the base ones here, their variants added by withVariants.
var kernelTable = withVariants([numKernels]kernelInfo{
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

	kBNSyncStats:        {"bn_sync_stats", "piiiippp"},
	kBNSyncGradReduce:   {"bn_sync_grad_reduce", "ppppiiiiippip"},
	kBNSyncFinalize:     {"bn_sync_finalize", "piiffpppppp"},
	kBNSyncGradFinalize: {"bn_sync_grad_finalize", "piippppp"},

	kMaxPoolForward:  {"maxpool_forward", "ppiiiiiiiii"},
	kMaxPoolBackward: {"maxpool_backward", "pppiiiiiiiii"},
	kAvgPoolForward:  {"avgpool_forward", "ppiii"},
	kAvgPoolBackward: {"avgpool_backward", "ppiii"},

	kResidualAddOut:             {"residual_add_out", "pppiiiiii"},
	kResidualBackwardAccumulate: {"residual_backward_accumulate", "ppiiiiii"},
	kGateForward:                {"gate_forward", "ppppiiiii"},
	kGateBackward:               {"gate_backward", "ppppppiiii"},
	kGateBackwardData:           {"gate_backward_data", "ppppiii"},
	kGateScale:                  {"gate_scale", "pppiii"},
	kGateGradReduce:             {"gate_grad_reduce", "ppppiii"},
	kGatePoolAdd:                {"gate_pool_add", "ppiii"},

	kDropoutApply: {"dropout_apply", "ppiiiilif"},

	kAvgPoolWindowForward:   {"avgpool_window_forward", "ppiiiiiiiiii"},
	kAvgPoolWindowBackward:  {"avgpool_window_backward", "ppiiiiiiiiiii"},
	kCopyChannels:           {"copy_channels", "ppiiiiiiii"},
	kScaledResidualForward:  {"scaled_residual_forward", "ppppiiifi"},
	kScaledResidualBackward: {"scaled_residual_backward", "ppppiiifii"},
	kScaledBias:             {"scaled_bias", "pppiiif"},
	kScaledResidualBiasGrad: {"scaled_residual_bias_grad", "pppiiifi"},

	kSoftmaxCrossEntropy:    {"softmax_cross_entropy", "ppppiif"},
	kSoftTargetCrossEntropy: {"soft_target_cross_entropy", "ppppiif"},

	kLinearBiasAdd:  {"linear_bias_add", "ppii"},
	kLinearBiasGrad: {"linear_bias_grad", "ppii"},

	kSGDStep:       {"sgd_step", "piffif"},
	kSGDStepSingle: {"sgd_step_single", "ppplffiff"},

	kFindNonFinite: {"find_nonfinite", "plip"},

	kFilterToF32NHWC:        {"filter_to_f32_nhwc", "ppiil"},
	kFilterToBF16NCHW:       {"filter_to_bf16_nchw", "ppiil"},
	kFilterToBF16NHWC:       {"filter_to_bf16_nhwc", "ppiil"},
	kFilterToF16NCHW:        {"filter_to_f16_nchw", "ppiil"},
	kFilterToF16NHWC:        {"filter_to_f16_nhwc", "ppiil"},
	kFilterFromF32NHWC:      {"filter_from_f32_nhwc", "ppiil"},
	kFilterFromBF16NCHW:     {"filter_from_bf16_nchw", "ppiil"},
	kFilterFromBF16NHWC:     {"filter_from_bf16_nhwc", "ppiil"},
	kFilterFromF16NCHW:      {"filter_from_f16_nchw", "ppiil"},
	kFilterFromF16NHWC:      {"filter_from_f16_nhwc", "ppiil"},
	kActivationToF32NHWC:    {"activation_to_f32_nhwc", "ppiil"},
	kActivationToBF16NCHW:   {"activation_to_bf16_nchw", "ppiil"},
	kActivationToBF16NHWC:   {"activation_to_bf16_nhwc", "ppiil"},
	kActivationToF16NCHW:    {"activation_to_f16_nchw", "ppiil"},
	kActivationToF16NHWC:    {"activation_to_f16_nhwc", "ppiil"},
	kActivationFromF32NHWC:  {"activation_from_f32_nhwc", "ppiil"},
	kActivationFromBF16NCHW: {"activation_from_bf16_nchw", "ppiil"},
	kActivationFromBF16NHWC: {"activation_from_bf16_nhwc", "ppiil"},
	kActivationFromF16NCHW:  {"activation_from_f16_nchw", "ppiil"},
	kActivationFromF16NHWC:  {"activation_from_f16_nhwc", "ppiil"},

	kExciteBiasReLU:     {"excite_bias_relu", "ppii"},
	kExciteReLUBiasGrad: {"excite_relu_bias_grad", "pppii"},
})

// sectorBytes is RN_SECTOR of kernels/common.cuh: the bytes of a memory sector, which one NHWC load of a
// reduction's warp fills with consecutive channels.
const sectorBytes = 32

// channelTiles is how many tiles of a reduction over the channels' positions cover c channels of dt in
// layout: the y extent of the batch-norm reductions' grids, the warps per image of the average pool. A
// tile (rn::ChannelTile in kernels/common.cuh) is one channel in NCHW and a sector of channels in NHWC.
func channelTiles(dt backend.DType, layout backend.Layout, c int) int {
	width := 1
	if layout == backend.NHWC {
		width = sectorBytes / dt.Size()
	}
	return (c + width - 1) / width
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
	libGraphLaunch // a replay of a recorded graph, whose kernels and library calls are not counted again
	numLibCalls
)

var libCallNames = [numLibCalls]string{
	libConvForward:        "cudnnConvolutionForward",
	libConvBackwardData:   "cudnnConvolutionBackwardData",
	libConvBackwardFilter: "cudnnConvolutionBackwardFilter",
	libSgemm:              "cublasSgemm",
	libGraphLaunch:        "cuGraphLaunch",
}

// The fused kernels, and the unfused kernels that replace them with backend.Options.Unfused, in every
// activation format: a device opened one way never launches a kernel of the other list.
var (
	FusedKernels = kernelNames(kBNForwardStats, kBNForwardApply, kBNForwardApplyReLU, kBNForwardApplyAdd,
		kBNForwardApplyAddReLU, kBNInferenceApply, kBNInferenceApplyReLU, kBNInferenceApplyAdd,
		kBNInferenceApplyAddReLU, kBNBackwardReduce, kBNBackwardReduceReLU, kBNBackwardDX, kBNBackwardDXReLU,
		kBNBackwardDXAdd, kBNBackwardDXAddReLU, kSGDStep, kGateForward, kGateBackward, kGateBackwardData,
		kScaledResidualForward, kScaledResidualBackward)
	UnfusedKernels = kernelNames(kBNStatsPartial, kBNStatsFinalize, kBNInferenceParams, kBNNormalize, kResidualAdd,
		kReLUForward, kReLUBackward, kResidualBackward, kBNBackwardReducePartial, kBNBackwardFinalize,
		kBNBackwardInput, kSGDStepSingle, kGateScale, kGateGradReduce, kGatePoolAdd, kScaledBias)
)

// kernelNames lists the names of kernels ks in every format each is built in.
func kernelNames(ks ...kernelID) []string {
	var out []string
	for _, k := range ks {
		seen := map[kernelID]bool{}
		for _, f := range actFormats {
			if v, ok := variant(k, f.dt, f.layout); ok && !seen[v] {
				seen[v] = true
				out = append(out, kernelTable[v].name)
			}
		}
	}
	return out
}

// actFormats are the activation formats in the order of RN_ACT_FORMATS (kernels/common.cuh): dtype major,
// layout minor. A kernel's name takes the dtype's suffix and then the layout's, none for f32 and NCHW, so
// the float NCHW kernel keeps the plain name: bn_forward_apply, bn_forward_apply_nhwc,
// bn_forward_apply_bf16, bn_forward_apply_bf16_nhwc, ...
var actFormats = [numFormats]struct {
	dt     backend.DType
	layout backend.Layout
}{
	{backend.F32, backend.NCHW}, {backend.F32, backend.NHWC},
	{backend.BF16, backend.NCHW}, {backend.BF16, backend.NHWC},
	{backend.F16, backend.NCHW}, {backend.F16, backend.NHWC},
}

const (
	numDTypes  = 3 // f32, bf16, f16
	numFormats = numDTypes * 2
)

// dtypeIndex is dt's place among the activation dtypes, -1 for one that activations never hold.
func dtypeIndex(dt backend.DType) int {
	switch dt {
	case backend.F32:
		return 0
	case backend.BF16:
		return 1
	case backend.F16:
		return 2
	}
	return -1
}

// formatSuffix is the part of a kernel name that says its activation format (see actFormats); withLayout
// false gives the suffix of the kernels built per dtype only.
func formatSuffix(dt backend.DType, layout backend.Layout, withLayout bool) string {
	s := [numDTypes]string{"", "_bf16", "_f16"}[dtypeIndex(dt)]
	if withLayout && layout == backend.NHWC {
		s += "_nhwc"
	}
	return s
}

// variant is the id of kernel k built for activations of dt in layout: k itself for f32 NCHW and for the
// layout of a kernel built per dtype. ok is false when k has no such variant.
func variant(k kernelID, dt backend.DType, layout backend.Layout) (v kernelID, ok bool) {
	d := dtypeIndex(dt)
	switch {
	case d < 0 || (layout != backend.NCHW && layout != backend.NHWC):
		return k, false
	case k < numFormatKernels:
		if f := 2*d + int(layout); f > 0 {
			return numBaseKernels + k*(numFormats-1) + kernelID(f-1), true
		}
		return k, true
	case k < numFormatKernels+numDTypeKernels:
		if d > 0 {
			return numBaseKernels + numFormatKernels*(numFormats-1) + (k-numFormatKernels)*(numDTypes-1) +
				kernelID(d-1), true
		}
		return k, true
	}
	return k, d == 0 && layout == backend.NCHW
}

// withVariants adds to a table of the base kernels the entries of their variants: the base kernel's name
// with the format's suffix and its parameter list.
func withVariants(t [numKernels]kernelInfo) [numKernels]kernelInfo {
	for k := kernelID(0); k < numFormatKernels+numDTypeKernels; k++ {
		for _, f := range actFormats {
			if v, _ := variant(k, f.dt, f.layout); v != k {
				t[v] = kernelInfo{t[k].name + formatSuffix(f.dt, f.layout, k < numFormatKernels), t[k].sig}
			}
		}
	}
	return t
}
