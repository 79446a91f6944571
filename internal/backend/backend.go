// Package backend defines the device interface that every compute backend implements (the pure-Go CPU
// reference in internal/cpu, the CUDA one in internal/cuda) and the descriptors shared by them. It holds no
// implementation: backends register themselves by name and the model code only sees Device and Tensor.
package backend

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// DType is the element type of a tensor.
type DType uint8

const (
	F32  DType = iota // float32
	I32               // int32 (class labels)
	BF16              // bfloat16: 4-D activations of a device running in bf16 (cuda.precision: bf16)
	F16               // IEEE 754 half: 4-D activations of a device running in fp16 (cuda.precision: fp16)
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case I32:
		return "i32"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Known reports whether d is one of the dtypes above.
func (d DType) Known() bool { return d <= F16 }

// Size is the number of bytes one element takes (0 for an unknown dtype).
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

// Float reports whether d holds floating-point values (an activation may be any of them).
func (d DType) Float() bool { return d == F32 || d == BF16 || d == F16 }

// Precisions are the names of the activation dtypes as the config key cuda.precision spells them.
var precisions = []struct {
	name string
	dt   DType
}{{"fp32", F32}, {"bf16", BF16}, {"fp16", F16}}

// ParsePrecision maps a cuda.precision value (fp32, bf16, fp16) to the activation dtype.
func ParsePrecision(s string) (DType, error) {
	for _, p := range precisions {
		if p.name == s {
			return p.dt, nil
		}
	}
	return F32, fmt.Errorf("unknown precision %q (want fp32, bf16 or fp16)", s)
}

// PrecisionName is the cuda.precision spelling of an activation dtype.
func PrecisionName(d DType) string {
	for _, p := range precisions {
		if p.dt == d {
			return p.name
		}
	}
	return d.String()
}

// Layout is the memory order of a 4-D activation tensor. Weights are always stored (Cout, Cin, kH, kW)
// (NCHW) in the model's parameter table; a backend may keep a private copy in another order. Only 4-D
// tensors may be NHWC.
type Layout uint8

const (
	NCHW Layout = iota // channels first: element (n, c, h, w) at ((n*C + c)*H + h)*W + w
	NHWC               // channels last: element (n, c, h, w) at ((n*H + h)*W + w)*C + c
)

func (l Layout) String() string {
	switch l {
	case NCHW:
		return "NCHW"
	case NHWC:
		return "NHWC"
	}
	return fmt.Sprintf("layout(%d)", uint8(l))
}

// ParseLayout maps a cuda.layout value (nchw, nhwc) to the layout.
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "nchw":
		return NCHW, nil
	case "nhwc":
		return NHWC, nil
	}
	return NCHW, fmt.Errorf("unknown layout %q (want nchw or nhwc)", s)
}

// Shape is a tensor shape, outermost dimension first. Activations are (N, C, H, W) whatever the layout;
// the layout only says how those are ordered in memory.
type Shape []int

// Numel is the number of elements.
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func (s Shape) String() string { return fmt.Sprint([]int(s)) }

// Equal reports whether two shapes are the same.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Buffer is backend-owned storage. Its concrete type belongs to the backend that allocated it.
type Buffer interface {
	// Len is the capacity in elements.
	Len() int
	// DType is the element type the storage holds.
	DType() DType
	// Freed reports whether Device.Free has released the storage.
	Freed() bool
}

// Tensor is a typed view of a backend buffer: Numel elements starting at element Off. Host code sees every
// floating-point tensor as float32 values in (N, C, H, W) order: Upload and Download convert to and from
// the tensor's dtype and layout.
type Tensor struct {
	Shape  Shape
	DType  DType
	Layout Layout
	Buf    Buffer
	Off    int
}

// Numel is the number of elements the view covers.
func (t Tensor) Numel() int { return t.Shape.Numel() }

// Valid reports whether the tensor refers to storage.
func (t Tensor) Valid() bool { return t.Buf != nil }

// WithBatch returns the same storage viewed with a leading dimension of n (n <= the allocated one), so a
// network allocated for a batch of B can run a smaller last batch without new allocations.
func (t Tensor) WithBatch(n int) Tensor {
	s := append(Shape(nil), t.Shape...)
	s[0] = n
	t.Shape = s
	return t
}

// N, C, H, W of a 4-D activation tensor (or N, C of a 2-D one, with H = W = 1).
func (t Tensor) NCHW() (n, c, h, w int) {
	switch len(t.Shape) {
	case 4:
		return t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	case 2:
		return t.Shape[0], t.Shape[1], 1, 1
	}
	return 0, 0, 0, 0
}

// ConvParams describes a 2-D convolution without bias: x (N, Cin, H, W), w (Cout, Cin/Groups, KH, KW),
// y (N, Cout, OH, OW), OH = (H + 2*PadH - KH)/Stride + 1, OW = (W + 2*PadW - KW)/Stride + 1. With Groups > 1
// the channels are cut into Groups consecutive slices and output slice g sees only input slice g (ResNeXt's
// grouped 3x3); 0 and 1 both mean an ungrouped convolution.
type ConvParams struct {
	// Pad pads both axes by the same amount (PyTorch's padding=p). A padding that differs between the
	// axes (padding=(ph, pw), as Inception-ResNet's 1x7 and 7x1 convolutions take (0, 3) and (3, 0)) is
	// given by PadH and PadW instead, with Pad left 0; the checks refuse Pad together with either.
	Stride, Pad int
	Groups      int
	PadH, PadW  int
}

// GroupCount is Groups with 0 read as 1.
func (p ConvParams) GroupCount() int { return max(p.Groups, 1) }

// Padding is the padding of the two axes: (Pad, Pad), or (PadH, PadW) when either is set.
func (p ConvParams) Padding() (h, w int) {
	if p.PadH != 0 || p.PadW != 0 {
		return p.PadH, p.PadW
	}
	return p.Pad, p.Pad
}

// OutSize is the output extent of a convolution or pooling window along one axis.
func OutSize(in, k, stride, pad int) int { return (in+2*pad-k)/stride + 1 }

// BatchNormParams configures a batch-norm op. The forward computes
//
//	y = act(gamma * (x - mean) / sqrt(var + Eps) + beta + shortcut(z))
//
// where act is ReLU when ReLU is set (else the identity), and shortcut(z) is present when Residual is set.
// z may have the shape of x, or be the input of an option-A shortcut: (N, Cz, Hz, Wz) with Cz <= C and
// Hz = H*s, Wz = W*s for an integer stride s; then shortcut(z)[n, c, h, w] = z[n, c-(C-Cz)/2, h*s, w*s] for
// channels inside the centred window of width Cz and 0 outside it (zero-padded identity, no parameters).
type BatchNormParams struct {
	Eps      float32 // 1e-5 as in PyTorch
	Momentum float32 // running = (1-Momentum)*running + Momentum*batch; 0.1 as in PyTorch
	ReLU     bool
	Residual bool
	// Sync, when not nil, makes a training forward and its backward synchronised batch norm (PyTorch's
	// SyncBatchNorm): the statistics are those of the global batch, every rank's X together, so that the
	// ranks of a data-parallel job compute what one process would on the whole batch. The forward
	// normalises with the global mean and biased variance and updates the running statistics with the
	// global mean and unbiased variance; the backward's DX uses the global sums, and DGamma and DBeta
	// are each rank's equal share of the global gradient (see BatchNormSyncer). Every rank must run the
	// same layers in the same order. Inference ignores it; nil (or a syncer of one rank) is local batch
	// norm.
	Sync BatchNormSyncer
}

// BatchNormSyncer sums small per-channel tensors over the ranks of a data-parallel job (synchronised BN).
//
// A synchronised forward gathers every rank's (count, mean, M2) per channel, M2 the sum of squared
// deviations from the rank's own mean: each rank writes its three rows into its slot of a zeroed
// (WorldSize, 3, C) tensor, SumStats turns that into an all-gather, and every rank merges the slots in rank
// order, so all ranks get the same bits. The backward sums a (2*C + WorldSize) tensor: the per-channel sums
// of the masked output gradient and of its product with x - mean, then each rank's count in its own
// element (ranks may hold slices of different sizes).
//
// DGamma and DBeta are written as the global gradient divided by WorldSize, the same on every rank: the
// trainer's gradient all-reduce sums the ranks' values and divides by WorldSize, as for every other
// parameter, and so arrives at the gradient of the global batch's loss (PyTorch writes each rank's local
// sums, whose sum over the ranks is the same).
type BatchNormSyncer interface {
	// SumStats replaces the F32 tensor t, on every rank, with its element-wise sum over the ranks.
	SumStats(t Tensor) error
	Rank() int
	WorldSize() int
}

// Synced reports whether p synchronises the statistics over more than one rank.
func (p BatchNormParams) Synced() bool { return p.Sync != nil && p.Sync.WorldSize() > 1 }

// BatchNormTensors are the operands of a batch-norm forward. Statistics are per channel, shape (C).
// Running variance is updated with the unbiased batch variance, as PyTorch does; the saved inverse
// standard deviation uses the biased one.
type BatchNormTensors struct {
	X, Z, Y                 Tensor // Z only when Residual
	Gamma, Beta             Tensor
	RunningMean, RunningVar Tensor
	SaveMean, SaveInvStd    Tensor // written by training forward, read by backward
}

// BatchNormGrads are the operands of a batch-norm backward. Y is the forward output (its sign gives the
// ReLU mask). DZ receives the gradient of the shortcut input z (same shape as Z; positions an option-A
// shortcut does not read get 0) and is written, not accumulated. DGamma and DBeta are written.
type BatchNormGrads struct {
	X, Y, DY             Tensor
	Gamma                Tensor
	SaveMean, SaveInvStd Tensor
	DX, DZ               Tensor // DZ only when Residual
	DGamma, DBeta        Tensor
}

// PoolParams describes a pooling window, square, with PyTorch's semantics: for max pooling padding counts
// as -inf; for average pooling padded positions count as zeros in the window's divisor (kernel*kernel,
// count_include_pad=True, PyTorch's default) unless ExcludePad is set, when a window divides by the number
// of its positions inside the input (count_include_pad=False, Inception-ResNet's 3x3/1 average pool).
type PoolParams struct {
	Kernel, Stride, Pad int
	ExcludePad          bool // average pooling only
}

// ChannelCopyParams describes Device.CopyChannels: Channels channels starting at SrcOffset in src go to
// the channels starting at DstOffset in dst, added to what dst holds when Accumulate is set.
type ChannelCopyParams struct {
	SrcOffset, DstOffset, Channels int
	Accumulate                     bool
}

// ScaledResidualParams configures the sum that closes an Inception-ResNet unit,
//
//	y = act(Scale * (a + bias) + z)
//
// a (N, C, H, W) is the unit's last (1x1, biased) convolution before its bias, bias (C) is that bias
// (f32), z (N, C, H, W) the unit's input (the identity shortcut), and act is ReLU when ReLU is set, else the
// identity (timm's last Block8 has no ReLU and scale 1).
type ScaledResidualParams struct {
	Scale float32
	ReLU  bool
}

// ScaledResidualGrads are the operands of Device.ScaledResidualBackward. From the forward's output Y (its
// sign gives the ReLU mask) and the output gradient DY, with g = DY * act'(Y), it writes DA = Scale * g,
// DBias (C) = Scale * the sum of g over (N, H, W), and DZ = g, added to what DZ holds when Accumulate is
// set (z feeds the unit's branches too). DA may be DY itself.
type ScaledResidualGrads struct {
	Y, DY         Tensor
	DA, DBias, DZ Tensor
	Accumulate    bool
}

// SGDParams are the hyper-parameters of one SGD step (PyTorch semantics):
//
//	g = grad*GradScale + wd*p;  buf = Momentum*buf + g;  g = Nesterov ? g + Momentum*buf : buf;  p -= LR*g
type SGDParams struct {
	LR, Momentum float32
	Nesterov     bool
	// GradScale multiplies every gradient before it is used: the reciprocal of the loss scale (rounded to
	// f32, as GradScaler's unscale_ multiplies by float(1/scale)), so that the update sees the gradient of
	// the unscaled loss. 0 means 1: the zero value scales nothing, and a scale of 1 gives the same bits as
	// no scale.
	GradScale float32
}

// Unscale is GradScale with its zero value read as 1.
func (p SGDParams) Unscale() float32 {
	if p.GradScale == 0 {
		return 1
	}
	return p.GradScale
}

// SGDSlot is one parameter in an SGD step. WeightDecay is per parameter so BN and bias terms can be
// excluded.
type SGDSlot struct {
	Param, Grad, Buf Tensor
	WeightDecay      float32
}

// Device is a compute backend. All tensors passed to a device were allocated by it. Methods return an error
// for shape mismatches and backend failures; they never panic on bad input.
type Device interface {
	Name() string
	// Alloc returns a zeroed tensor.
	Alloc(shape Shape, dt DType, layout Layout) (Tensor, error)
	Free(t Tensor)
	Upload(dst Tensor, src []float32) error
	UploadInt32(dst Tensor, src []int32) error
	Download(dst []float32, src Tensor) error
	Zero(t Tensor) error
	Copy(dst, src Tensor) error
	// Sync waits for all queued work.
	Sync() error

	ConvForward(p ConvParams, x, w, y Tensor) error
	// ConvBackwardData writes dx, or adds into it when accumulate is set (the residual fork).
	ConvBackwardData(p ConvParams, dy, w, dx Tensor, accumulate bool) error
	ConvBackwardFilter(p ConvParams, x, dy, dw Tensor) error

	BatchNormForwardTraining(p BatchNormParams, t BatchNormTensors) error
	// BatchNormForwardInference uses the running statistics; SaveMean/SaveInvStd are not touched.
	BatchNormForwardInference(p BatchNormParams, t BatchNormTensors) error
	BatchNormBackward(p BatchNormParams, g BatchNormGrads) error

	MaxPoolForward(p PoolParams, x, y Tensor) error
	MaxPoolBackward(p PoolParams, x, y, dy, dx Tensor) error
	// AvgPoolForward and AvgPoolBackward are average pooling over a window (DenseNet's 2x2/2 transition,
	// Inception-ResNet's 3x3/1 branch with ExcludePad). The backward writes dx, or adds into it when
	// accumulate is set (x also feeds other layers).
	AvgPoolForward(p PoolParams, x, y Tensor) error
	AvgPoolBackward(p PoolParams, dy, dx Tensor, accumulate bool) error
	// GlobalAvgPoolForward: x (N, C, H, W) -> y (N, C).
	GlobalAvgPoolForward(x, y Tensor) error
	GlobalAvgPoolBackward(dy, dx Tensor) error

	// LinearForward: y (N, Out) = x (N, In) * w (Out, In)^T + b (Out).
	LinearForward(x, w, b, y Tensor) error
	// LinearBackward writes dx (if valid), dw and db.
	LinearBackward(x, w, dy, dx, dw, db Tensor) error

	// SoftmaxCrossEntropy: logits (N, K), labels (N) int32; writes loss (N) per sample and
	// dlogits = (softmax - onehot) * gradScale.
	SoftmaxCrossEntropy(logits, labels, loss, dlogits Tensor, gradScale float32) error
	// SoftTargetCrossEntropy is the cross-entropy against soft targets (N, K) f32 (label smoothing, mixup,
	// CutMix): loss (N) = -sum_c t_c log softmax_c, dlogits = ((sum_c t_c) softmax - t) * gradScale, as
	// PyTorch's cross_entropy with probability targets computes them.
	SoftTargetCrossEntropy(logits, targets, loss, dlogits Tensor, gradScale float32) error

	SGDStep(p SGDParams, slots []SGDSlot) error

	// FindNonFinite returns the index in ts of the first tensor that holds a NaN or an infinity, or a
	// negative value where nonNegative[i] is set (a BN running variance; -0 is not negative), and -1 when
	// none does. nonNegative is nil (no tensor must be non-negative) or has one entry per tensor. The
	// answer is exact and deterministic: a training step checks every gradient with it and reads back only
	// the index, downloading a tensor only to name its first bad value.
	FindNonFinite(ts []Tensor, nonNegative []bool) (int, error)

	// ResidualAdd writes y = a + shortcut(z), the sum that closes a pre-activation residual unit (no BN
	// after it). z has a's shape (identity or projection shortcut) or is the input of an option-A shortcut,
	// mapped as in BatchNormParams. y may be a.
	ResidualAdd(a, z, y Tensor) error
	// ResidualAddBackward writes dz = shortcut^T(dy) (0 where the shortcut reads nothing), or adds it into
	// dz when accumulate is set (z also feeds another layer). The gradient of a is dy itself: the caller
	// reads dy as a's gradient (or copies it), so the op has nothing to write for it.
	ResidualAddBackward(dy, dz Tensor, accumulate bool) error
	// ExcitationForward runs the excitation of a squeeze-and-excitation (SE) module on pooled features.
	ExcitationForward(t ExcitationTensors) error
	// ExcitationBackward propagates the gate logits' gradient through the excitation.
	ExcitationBackward(g ExcitationGrads) error
	// ChannelGateForward: y = act(x * sigmoid(s) + z), the SE gate, with the residual add and ReLU of the
	// unit it closes (see ChannelGateParams).
	ChannelGateForward(p ChannelGateParams, x, s, z, y Tensor) error
	// ChannelGateBackward writes g.DG and g.DS (see ChannelGateGrads).
	ChannelGateBackward(p ChannelGateParams, g ChannelGateGrads) error
	// ChannelGateBackwardData: dx = dg * sigmoid(s) + dpool/(H*W), the gradient of the gate's input x (N,
	// C, H, W) from the gradient dg of the gate's output (before the residual add), plus, when dpool (N, C)
	// is valid, that of the squeeze which pooled x. dx may be dg itself.
	ChannelGateBackwardData(s, dg, dpool, dx Tensor) error

	// CopyChannels writes dst[n, p.DstOffset+c, h, w] = src[n, p.SrcOffset+c, h, w] for c < p.Channels (or
	// adds it, with p.Accumulate): channel concatenation, one input at a time, and, from the concatenation's
	// gradient to an input's, its backward. src and dst are 4-D with the same N, H and W, dtype and layout;
	// they may have different channel counts and must not overlap.
	CopyChannels(p ChannelCopyParams, src, dst Tensor) error
	// ScaledResidual writes y = act(Scale*(a + bias) + z), Inception-ResNet's scaled residual sum, fused
	// with the bias of the convolution before it and the ReLU after it. y may be a.
	ScaledResidual(p ScaledResidualParams, a, bias, z, y Tensor) error
	// ScaledResidualBackward writes g.DA, g.DBias and g.DZ (see ScaledResidualGrads).
	ScaledResidualBackward(p ScaledResidualParams, g ScaledResidualGrads) error

	// DropoutForward writes y = x * mask / (1-P), inverted dropout: each element of x (N, C, H, W) is kept
	// or dropped as DropoutParams.Mask draws it, whatever the layout. y may be x. Training forwards only.
	DropoutForward(p DropoutParams, x, y Tensor) error
	// DropoutBackward writes dx = dy * mask / (1-P) with the forward's mask (the same p). dx may be dy.
	DropoutBackward(p DropoutParams, dy, dx Tensor) error
}

// ExcitationTensors are the operands of Device.ExcitationForward, the two-layer bottleneck of an SE module
// applied to each sample's pooled features (timm's SEModule, whose 1x1 convolutions on a 1x1 map are these
// fully connected layers):
//
//	H = relu(P W1^T + B1),  S = H W2^T + B2
//
// P (N, C) are the squeezed features, W1 (R, C), B1 (R), W2 (C, R), B2 (C). H (N, R) receives the hidden
// layer (kept for backward) and S (N, C) the gate's logits, before the sigmoid. All f32.
type ExcitationTensors struct {
	P, W1, B1, W2, B2 Tensor
	H, S              Tensor
}

// ExcitationGrads are the operands of Device.ExcitationBackward: from DS (N, C), the gradient of the logits
// S, it writes DW2, DB2, DW1, DB1 and DP (N, C), the gradient of the pooled features; DH (N, R) is scratch
// that receives the gradient of the hidden layer's input. P, W1, W2 and H are the forward's.
type ExcitationGrads struct {
	P, W1, W2, H       Tensor
	DS, DH, DP         Tensor
	DW1, DB1, DW2, DB2 Tensor
}

// ChannelGateParams configures the SE gate y = act(x * sigmoid(s) + z): x (N, C, H, W) is scaled per
// (n, c) by the sigmoid of s (N, C) (f32); z, of x's shape, is added when Residual is set; act is ReLU when
// ReLU is set, else the identity.
type ChannelGateParams struct {
	ReLU     bool
	Residual bool
}

// ChannelGateGrads are the operands of Device.ChannelGateBackward. From the forward's X, S, Y and the
// output gradient DY it writes DG = DY * act'(Y), the gradient of x * sigmoid(s) + z (and so of z, when
// Residual), and DS (N, C) = sigmoid'(S) * the sum over (H, W) of DG * X. DG has X's shape; it may be DY
// itself.
type ChannelGateGrads struct {
	X, S, Y, DY Tensor
	DG, DS      Tensor
}

// HostStager is implemented by devices whose uploads are faster from memory they provide (pinned host
// memory for CUDA): the data loader then fills its batches there.
type HostStager interface {
	// PinnedFloat32s returns n float32 values of such memory, or nil when none can be had (the caller
	// falls back to ordinary memory).
	PinnedFloat32s(n int) []float32
}

// CollectiveDevice is implemented by devices whose own library runs collectives among the processes of a
// data-parallel job on tensors in device memory (NCCL on a CUDA device). The trainer falls back to a
// host communicator (internal/dist) on devices without it.
type CollectiveDevice interface {
	// NewCollectiveID makes the id of a new group; rank 0 makes it and hands it to every rank at
	// rendezvous.
	NewCollectiveID() ([]byte, error)
	// JoinCollectives joins the group that id names as rank of world ranks. Every rank of the job calls it;
	// it returns once all have joined.
	JoinCollectives(id []byte, rank, world int) (Collectives, error)
}

// Collectives run among the ranks of a group on tensors in device memory, queued in order after the
// device work queued before them. Every rank calls the same collectives in the same order with operands
// of the same size.
type Collectives interface {
	// AllReduceSum replaces values [offset, offset+count) of the F32 tensor t, on every rank, with their
	// element-wise sum over all ranks.
	AllReduceSum(t Tensor, offset, count int) error
	// Broadcast replaces the F32 tensor t on every rank with root's.
	Broadcast(t Tensor, root int) error
	// Close leaves the group, after the queued collectives finished.
	Close() error
}

// MemoryReporter is implemented by devices with memory of their own (a GPU): the memory check made
// before a network is built compares its estimate with what the device can still give.
type MemoryReporter interface {
	// FreeMemory is how many bytes new tensors can still get: the device's free memory plus what its
	// allocator holds unused.
	FreeMemory() (int64, error)
}

// PeakMemoryReporter is implemented by devices that count the memory their tensors and scratch buffers
// hold (a GPU): bench reports the peak over its timed steps, as PyTorch's benchmark reports
// torch.cuda.max_memory_allocated.
type PeakMemoryReporter interface {
	// PeakBytes is the most memory held at once since the device opened or ResetPeakBytes was called.
	PeakBytes() int64
	ResetPeakBytes()
}

// Grapher is implemented by devices that can record a sequence of ops once and replay it with one launch
// (CUDA graphs), taking the host's per-op cost out of a training step. The model hands it the part of a
// step that is the same every time: forward, loss and backward, with the uploads of the batch before it
// and the downloads of the results after it.
type Grapher interface {
	// Graph runs fn's device work. On a device opened without Options.Graphs it calls fn. Otherwise the
	// first call with a key calls fn eagerly (the warm-up: algorithms are chosen, scratch and workspaces
	// sized, weights converted), the second calls fn again and records its device work into a graph that
	// it then launches, and every later call launches that graph without calling fn. So fn must queue the
	// same ops on the same tensors every time, and must not wait for the device (download, Sync), upload
	// from the host or allocate new device memory while it is recorded: those are errors naming the op.
	// Host work fn does is done only when fn is called; bookkeeping belongs outside it.
	Graph(key GraphKey, fn func() error) error
	// DropGraphs destroys the graphs recorded under keys with this owner (the owner frees the tensors
	// they use).
	DropGraphs(owner any)
}

// GraphKey names a recorded graph: who records it (a comparable value, e.g. the net's pointer) and the
// values its ops freeze into kernel arguments that change between steps. A step with another batch size,
// loss-gradient scale or BN momentum gets a graph of its own.
type GraphKey struct {
	Owner      any
	Batch      int
	GradScale  float32
	BNMomentum float32
	// SoftTargets: the loss is against soft targets (SoftTargetCrossEntropy), not labels.
	SoftTargets bool
}

// Reporter is implemented by devices that can say what their results depend on: the run's
// reproducibility record (<run>/reproducibility.json) and `resnet bench --json` carry it.
type Reporter interface {
	// Environment names the device, its libraries and the settings that change results, as key/value
	// pairs (backend, device, versions, deterministic, ...). The map is the caller's.
	Environment() map[string]string
	// ConvAlgorithms lists the convolution algorithm chosen for each geometry and direction so far, in the
	// order they were chosen; nil when the device has no choice to make.
	ConvAlgorithms() []ConvChoice
}

// ConvChoice is the algorithm a device chose for one direction of one convolution geometry.
type ConvChoice struct {
	Geometry  ConvGeometry
	Direction string // "forward", "backward_data" or "backward_filter"
	// Algorithm is the library's name for it, e.g. CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM.
	Algorithm      string
	WorkspaceBytes int64
	// Deterministic: the algorithm gives the same bits on every run.
	Deterministic bool
	// ChosenBy says how: "heuristic", "timed", or "fallback" when nothing offered was usable; a heuristic
	// choice made because timing failed or offered nothing usable says why in parentheses.
	ChosenBy string
}

// Options are the settings a device is opened with. The zero value is the default. The fields are plain
// values, so that Options is comparable (tests keep one opened device per Options).
type Options struct {
	// Unfused runs the unfused reference path of every fused kernel (config key cuda.fuse: false).
	Unfused bool
	// Nondeterministic lets the device use algorithms whose results vary from run to run (config key
	// cuda.deterministic: false).
	Nondeterministic bool
	// Benchmark chooses each convolution shape's algorithm by timing the candidates once, instead of by
	// the library's heuristics (config key cuda.benchmark).
	Benchmark bool
	// Precision is the dtype of the 4-D activations (config key cuda.precision): F32, or BF16/F16 with
	// convolutions in that type accumulating in f32, and the parameters, BN statistics and optimizer in f32.
	Precision DType
	// Layout is the memory order of the 4-D activations (config key cuda.layout).
	Layout Layout
	// Graphs records a training step's forward, loss and backward once per shape and replays them (config
	// key cuda.graphs; see Grapher). The numbers are the same bits as without.
	Graphs bool
	// Ordinal is the index of the GPU to open among those the process sees (a data-parallel worker's
	// local rank); 0 is the first.
	Ordinal int
}

// formatName names the activation format as the config keys set it: "cuda.precision bf16, cuda.layout nhwc".
func (o Options) formatName() string {
	var parts []string
	if o.Precision != F32 {
		parts = append(parts, "cuda.precision "+PrecisionName(o.Precision))
	}
	if o.Layout != NCHW {
		parts = append(parts, "cuda.layout "+strings.ToLower(o.Layout.String()))
	}
	return strings.Join(parts, " with ")
}

// ActivationFormatter is implemented by devices that keep 4-D activations in a dtype or layout other than
// f32 NCHW: the model allocates its 4-D activations (and their gradients) in that format, and every other
// tensor (parameters, the pooled features, logits, statistics) in f32. A device without it uses f32 NCHW.
type ActivationFormatter interface {
	ActivationFormat() (DType, Layout)
}

// ActivationFormat is the format dev keeps 4-D activations in.
func ActivationFormat(dev Device) (DType, Layout) {
	if f, ok := dev.(ActivationFormatter); ok {
		return f.ActivationFormat()
	}
	return F32, NCHW
}

// Factory opens a device. Backends register one under their name ("cpu", "cuda").
type Factory func(Options) (Device, error)

var (
	mu        sync.Mutex
	factories = map[string]Factory{}
)

// Register makes a backend available to Open. It is called from the backend package's init.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	factories[name] = f
}

// Names lists the registered backends.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Open returns the named device. "auto" picks cuda when it opens, else cpu.
func Open(name string, opt Options) (Device, error) {
	d, _, err := OpenExplained(name, opt)
	return d, err
}

// OpenExplained is Open that also says why "auto" fell back to the CPU: fallback is the error that opening
// cuda gave (nil when no fallback happened).
func OpenExplained(name string, opt Options) (d Device, fallback, err error) {
	mu.Lock()
	f, ok := factories[name]
	cudaF, hasCUDA := factories["cuda"]
	cpuF, hasCPU := factories["cpu"]
	mu.Unlock()
	if name == "auto" {
		fallback = errors.New("no CUDA backend is registered")
		if hasCUDA {
			gpu, cudaErr := cudaF(opt)
			if cudaErr == nil {
				return gpu, nil, nil
			}
			fallback = cudaErr
		}
		if !hasCPU {
			return nil, nil, fmt.Errorf("backend: no device available: %w", fallback)
		}
		// The CPU computes in f32 NCHW only: training there in another precision than the one asked for
		// would give other numbers without saying so.
		if opt.Precision != F32 || opt.Layout != NCHW {
			return nil, nil, fmt.Errorf("backend: device auto: %s needs the cuda backend, which did not open (%v); "+
				"set device: cpu with cuda.precision: fp32 and cuda.layout: nchw to run on the CPU", opt.formatName(), fallback)
		}
		d, err = cpuF(opt)
		return d, fallback, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("backend: unknown device %q (available: %v)", name, Names())
	}
	d, err = f(opt)
	return d, nil, err
}
