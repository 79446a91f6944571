package backend

// The operand checks of the layer ops (see check.go), and the geometry each returns.

import (
	"fmt"
	"math"
)

// ConvGeometry is the geometry of a checked convolution: x (N, Cin, H, W), w (Cout, Cin/Groups, KH, KW) and
// y (N, Cout, OH, OW), x and y holding DType in Layout (w is always f32 NCHW). Groups is at least 1. It is
// comparable, so a backend can key a cache of plans by it.
type ConvGeometry struct {
	N, Cin, H, W int
	Cout, KH, KW int
	Stride       int
	PadH, PadW   int
	OH, OW       int
	DType        DType
	Layout       Layout
	Groups       int
}

// GroupCin and GroupCout are the input and output channels of one group: w is (Cout, GroupCin, KH, KW).
func (g ConvGeometry) GroupCin() int  { return g.Cin / max(g.Groups, 1) }
func (g ConvGeometry) GroupCout() int { return g.Cout / max(g.Groups, 1) }

func (g ConvGeometry) String() string {
	s := fmt.Sprintf("x %v, w %v, stride %d, padding %s", []int{g.N, g.Cin, g.H, g.W}, []int{g.Cout, g.GroupCin(), g.KH, g.KW},
		g.Stride, padding(g.PadH, g.PadW))
	if g.Groups > 1 {
		s += fmt.Sprintf(", %d groups", g.Groups)
	}
	if g.DType != F32 || g.Layout != NCHW {
		s += fmt.Sprintf(", %v %v", g.DType, g.Layout)
	}
	return s
}

// XLen, WLen and YLen are the element counts of x, w and y.
func (g ConvGeometry) XLen() int { return g.N * g.Cin * g.H * g.W }
func (g ConvGeometry) WLen() int { return g.Cout * g.GroupCin() * g.KH * g.KW }
func (g ConvGeometry) YLen() int { return g.N * g.Cout * g.OH * g.OW }

// CheckConvForward checks the operands of Device.ConvForward.
func CheckConvForward(p ConvParams, x, w, y Tensor) (ConvGeometry, error) {
	return checkConv("ConvForward", p, "x", x, "w", w, "y", y)
}

// CheckConvBackwardData checks the operands of Device.ConvBackwardData: dx plays x, dy plays y.
func CheckConvBackwardData(p ConvParams, dy, w, dx Tensor) (ConvGeometry, error) {
	return checkConv("ConvBackwardData", p, "dx", dx, "w", w, "dy", dy)
}

// CheckConvBackwardFilter checks the operands of Device.ConvBackwardFilter: dw plays w, dy plays y.
func CheckConvBackwardFilter(p ConvParams, x, dy, dw Tensor) (ConvGeometry, error) {
	return checkConv("ConvBackwardFilter", p, "x", x, "dw", dw, "dy", dy)
}

// checkConv checks x-like (N, Cin, H, W), w-like (Cout, Cin/groups, KH, KW) and y-like (N, Cout, OH, OW)
// operands, whatever role (input or gradient) each plays in op.
func checkConv(op string, p ConvParams, xName string, x Tensor, wName string, w Tensor, yName string,
	y Tensor) (ConvGeometry, error) {
	k := checker{op: op}
	ph, pw := p.Padding()
	if p.Stride < 1 || p.Pad < 0 || ph < 0 || pw < 0 {
		k.failf("stride must be >= 1 and padding >= 0 (got stride %d, padding %s)", p.Stride, padding(ph, pw))
	}
	if p.Pad != 0 && (p.PadH != 0 || p.PadW != 0) {
		k.failf("Pad %d is set together with PadH %d and PadW %d; give one padding per axis in PadH and PadW, or one for both in Pad",
			p.Pad, p.PadH, p.PadW)
	}
	if p.Groups < 0 {
		k.failf("groups must be >= 1, or 0 for an ungrouped convolution (got %d)", p.Groups)
	}
	var g ConvGeometry
	g.Groups = p.GroupCount()
	g.N, g.Cin, g.H, g.W = k.act4(xName, x)
	if k.err == nil && len(w.Shape) != 4 {
		k.failf("%s has shape %v, want 4-D (Cout, Cin, KH, KW)", wName, w.Shape)
	}
	var wcin int
	g.Cout, wcin, g.KH, g.KW = k.dims4(wName, w)
	switch {
	case k.err != nil:
	case g.Cin%g.Groups != 0 || g.Cout%g.Groups != 0:
		k.failf("%d groups must divide the %d input and %d output channels of %s %v and %s %v", g.Groups, g.Cin,
			g.Cout, xName, x.Shape, wName, w.Shape)
	case g.Groups > 1 && wcin != g.Cin/g.Groups:
		k.failf("%s %v has %d input channels per group but %s %v has %d channels in %d groups", wName, w.Shape, wcin,
			xName, x.Shape, g.Cin, g.Groups)
	case wcin != g.Cin/g.Groups:
		k.failf("%s %v has %d input channels but %s %v has %d channels", wName, w.Shape, wcin, xName, x.Shape, g.Cin)
	case g.KH < 1 || g.KW < 1 || g.H+2*ph < g.KH || g.W+2*pw < g.KW:
		k.failf("kernel %dx%d does not fit the %dx%d input padded by %s", g.KH, g.KW, g.H, g.W, padding(ph, pw))
	}
	if k.err != nil {
		return g, k.err
	}
	g.Stride, g.PadH, g.PadW = p.Stride, ph, pw
	g.OH, g.OW = OutSize(g.H, g.KH, g.Stride, ph), OutSize(g.W, g.KW, g.Stride, pw)
	k.actShaped(yName, y, g.N, g.Cout, g.OH, g.OW)
	g.DType, g.Layout = x.DType, x.Layout
	if k.err != nil {
		if g.Groups > 1 {
			return g, fmt.Errorf("%w (from %s %v, %s %v, stride %d, padding %s, %d groups)", k.err, xName, x.Shape, wName,
				w.Shape, p.Stride, padding(ph, pw), g.Groups)
		}
		return g, fmt.Errorf("%w (from %s %v, %s %v, stride %d, padding %s)", k.err, xName, x.Shape, wName, w.Shape, p.Stride,
			padding(ph, pw))
	}
	return g, nil
}

// padding writes a convolution's padding as PyTorch prints it: 1 when both axes take it, (0, 3) otherwise.
func padding(h, w int) string {
	if h == w {
		return fmt.Sprint(h)
	}
	return fmt.Sprintf("(%d, %d)", h, w)
}

// BatchNormGeometry is the geometry of a checked batch norm: x (N, C, H, W) and, with a residual, the
// shortcut input z (N, ZC, H*ZStride, W*ZStride) of BatchNormParams. Without one, ZC = C and ZStride = 1.
// The activations (x, y, z and their gradients) hold DType in Layout; the per-channel operands are f32.
type BatchNormGeometry struct {
	N, C, H, W  int
	ZC, ZStride int
	DType       DType
	Layout      Layout
}

// ZOff is the first output channel the shortcut feeds: its ZC channels sit centred among the C.
func (g BatchNormGeometry) ZOff() int { return (g.C - g.ZC) / 2 }

// XLen and ZLen are the element counts of x and z.
func (g BatchNormGeometry) XLen() int { return g.N * g.C * g.H * g.W }
func (g BatchNormGeometry) ZLen() int { return g.N * g.ZC * g.H * g.ZStride * g.W * g.ZStride }

// PerChannel is the number of values each channel's statistics are taken over.
func (g BatchNormGeometry) PerChannel() int { return g.N * g.H * g.W }

// CheckBatchNormForwardTraining checks the operands of Device.BatchNormForwardTraining.
func CheckBatchNormForwardTraining(p BatchNormParams, t BatchNormTensors) (BatchNormGeometry, error) {
	k := checker{op: "BatchNormForwardTraining"}
	g := k.bnForward(p, t)
	if g.PerChannel() < 2 {
		k.failf("X %v has %d values per channel; training statistics need at least 2", t.X.Shape, g.PerChannel())
	}
	k.shaped("SaveMean", t.SaveMean, g.C)
	k.shaped("SaveInvStd", t.SaveInvStd, g.C)
	k.bnSync(p, g)
	return g, k.err
}

// maxSyncCount is the largest per-channel count of one rank that a synchronised batch norm carries exactly:
// the counts travel between the ranks as float32.
const maxSyncCount = 1 << 24

// bnSync checks the syncer of a synchronised batch norm: a rank inside the world, and a count per channel
// that float32 holds exactly.
func (k *checker) bnSync(p BatchNormParams, g BatchNormGeometry) {
	if !p.Synced() || k.err != nil {
		return
	}
	if r, w := p.Sync.Rank(), p.Sync.WorldSize(); r < 0 || r >= w {
		k.failf("Sync has rank %d of a world of %d, want 0 <= rank < world", r, w)
	}
	if g.PerChannel() > maxSyncCount {
		k.failf("X %v has %d values per channel; synchronised statistics carry at most %d per rank", []int{g.N, g.C, g.H, g.W},
			g.PerChannel(), maxSyncCount)
	}
}

// CheckBatchNormForwardInference checks the operands of Device.BatchNormForwardInference (SaveMean and
// SaveInvStd are not used).
func CheckBatchNormForwardInference(p BatchNormParams, t BatchNormTensors) (BatchNormGeometry, error) {
	k := checker{op: "BatchNormForwardInference"}
	g := k.bnForward(p, t)
	return g, k.err
}

// bnForward checks what both forward passes read: X, Y, Z (with a residual), Eps, the parameters and the
// running statistics.
func (k *checker) bnForward(p BatchNormParams, t BatchNormTensors) BatchNormGeometry {
	var g BatchNormGeometry
	g.N, g.C, g.H, g.W = k.act4("X", t.X)
	g.ZC, g.ZStride = g.C, 1
	g.DType, g.Layout = t.X.DType, t.X.Layout
	k.actShaped("Y", t.Y, g.N, g.C, g.H, g.W)
	if p.Residual {
		k.shortcut("Z", t.Z, &g)
	}
	if p.Eps < 0 || math.IsNaN(float64(p.Eps)) {
		k.failf("Eps is %v, want >= 0", p.Eps)
	}
	k.shaped("Gamma", t.Gamma, g.C)
	k.shaped("Beta", t.Beta, g.C)
	k.shaped("RunningMean", t.RunningMean, g.C)
	k.shaped("RunningVar", t.RunningVar, g.C)
	return g
}

// CheckBatchNormBackward checks the operands of Device.BatchNormBackward. Y is needed only with ReLU, DZ
// only with Residual.
func CheckBatchNormBackward(p BatchNormParams, gr BatchNormGrads) (BatchNormGeometry, error) {
	k := checker{op: "BatchNormBackward"}
	var g BatchNormGeometry
	g.N, g.C, g.H, g.W = k.act4("X", gr.X)
	g.ZC, g.ZStride = g.C, 1
	g.DType, g.Layout = gr.X.DType, gr.X.Layout
	k.actShaped("DY", gr.DY, g.N, g.C, g.H, g.W)
	k.actShaped("DX", gr.DX, g.N, g.C, g.H, g.W)
	if p.ReLU {
		k.actShaped("Y", gr.Y, g.N, g.C, g.H, g.W)
	}
	if p.Residual {
		k.shortcut("DZ", gr.DZ, &g)
	}
	if k.err == nil && g.PerChannel() == 0 {
		k.failf("X %v is empty", gr.X.Shape)
	}
	k.shaped("Gamma", gr.Gamma, g.C)
	k.shaped("SaveMean", gr.SaveMean, g.C)
	k.shaped("SaveInvStd", gr.SaveInvStd, g.C)
	k.shaped("DGamma", gr.DGamma, g.C)
	k.shaped("DBeta", gr.DBeta, g.C)
	k.bnSync(p, g)
	return g, k.err
}

// shortcut checks the shortcut input z (or its gradient) of an output of g's (N, C, H, W) against the
// option-A rules of BatchNormParams, and sets g.ZC and g.ZStride.
func (k *checker) shortcut(name string, z Tensor, g *BatchNormGeometry) {
	if k.err == nil && !z.Valid() {
		k.failf("Residual is set but %s is not allocated", name)
	}
	zn, zc, zh, zw := k.act4(name, z)
	if k.err != nil {
		return
	}
	why := ""
	switch {
	case zn != g.N:
		why = "batch sizes differ"
	case zc > g.C || (g.C-zc)%2 != 0:
		why = fmt.Sprintf("Cz must be <= %d and differ from it by an even count", g.C)
	case g.H == 0 || g.W == 0 || zh%g.H != 0 || zh/g.H < 1 || zw != g.W*(zh/g.H):
		why = "the spatial size must be the output's times one integer stride"
	}
	if why != "" {
		k.failf("%s has shape %v, want (%d, Cz, H*s, W*s) for the output %v: %s",
			name, z.Shape, g.N, []int{g.N, g.C, g.H, g.W}, why)
		return
	}
	g.ZC, g.ZStride = zc, zh/g.H
}

// CheckResidualAdd checks the operands of Device.ResidualAdd. Its geometry is that of a batch norm closing
// a residual unit, X standing for the output.
func CheckResidualAdd(a, z, y Tensor) (BatchNormGeometry, error) {
	k := checker{op: "ResidualAdd"}
	g := k.residual("a", a, "z", z)
	k.actShaped("y", y, g.N, g.C, g.H, g.W)
	return g, k.err
}

// CheckResidualAddBackward checks the operands of Device.ResidualAddBackward.
func CheckResidualAddBackward(dy, dz Tensor) (BatchNormGeometry, error) {
	k := checker{op: "ResidualAddBackward"}
	g := k.residual("dy", dy, "dz", dz)
	return g, k.err
}

// residual checks an output-shaped activation and a shortcut input against it.
func (k *checker) residual(outName string, out Tensor, zName string, z Tensor) BatchNormGeometry {
	var g BatchNormGeometry
	g.N, g.C, g.H, g.W = k.act4(outName, out)
	g.ZC, g.ZStride = g.C, 1
	g.DType, g.Layout = out.DType, out.Layout
	if k.err == nil && !z.Valid() {
		k.failf("%s is not allocated", zName)
	}
	k.shortcut(zName, z, &g)
	return g
}

// PoolGeometry is the geometry of a checked pooling op: x (N, C, H, W) pooled to y (N, C, OH, OW) by a
// Kernel x Kernel window, x holding DType in Layout. For a global average pool OH = OW = 1, the window
// fields are 0 and y is f32 whatever x holds.
type PoolGeometry struct {
	N, C, H, W          int
	OH, OW              int
	Kernel, Stride, Pad int
	ExcludePad          bool
	DType               DType
	Layout              Layout
}

// Planes is the number of (H, W) planes pooled, N*C.
func (g PoolGeometry) Planes() int { return g.N * g.C }

// XLen and YLen are the element counts of x and y.
func (g PoolGeometry) XLen() int { return g.N * g.C * g.H * g.W }
func (g PoolGeometry) YLen() int { return g.N * g.C * g.OH * g.OW }

// CheckMaxPoolForward checks the operands of Device.MaxPoolForward.
func CheckMaxPoolForward(p PoolParams, x, y Tensor) (PoolGeometry, error) {
	if p.ExcludePad {
		return PoolGeometry{}, fmt.Errorf("MaxPoolForward: ExcludePad is a setting of average pooling")
	}
	k := checker{op: "MaxPoolForward"}
	g := k.maxPool(p, x, y)
	return g, k.err
}

// CheckMaxPoolBackward checks the operands of Device.MaxPoolBackward.
func CheckMaxPoolBackward(p PoolParams, x, y, dy, dx Tensor) (PoolGeometry, error) {
	k := checker{op: "MaxPoolBackward"}
	g := k.maxPool(p, x, y)
	k.actShaped("dy", dy, g.N, g.C, g.OH, g.OW)
	k.actShaped("dx", dx, g.N, g.C, g.H, g.W)
	return g, k.err
}

// CheckAvgPoolForward checks the operands of Device.AvgPoolForward.
func CheckAvgPoolForward(p PoolParams, x, y Tensor) (PoolGeometry, error) {
	k := checker{op: "AvgPoolForward"}
	g := k.maxPool(p, x, y)
	return g, k.err
}

// CheckAvgPoolBackward checks the operands of Device.AvgPoolBackward: dx plays x, dy plays y.
func CheckAvgPoolBackward(p PoolParams, dy, dx Tensor) (PoolGeometry, error) {
	k := checker{op: "AvgPoolBackward"}
	g := k.maxPool(p, dx, dy)
	return g, k.err
}

// maxPool checks x (N, C, H, W), the window, and y (N, C, OH, OW), the operands of every windowed pool.
func (k *checker) maxPool(p PoolParams, x, y Tensor) PoolGeometry {
	var g PoolGeometry
	g.N, g.C, g.H, g.W = k.act4("x", x)
	g.DType, g.Layout = x.DType, x.Layout
	if p.Kernel < 1 || p.Stride < 1 || p.Pad < 0 || p.Pad > p.Kernel/2 {
		k.failf("kernel %d, stride %d, padding %d: want kernel >= 1, stride >= 1 and 0 <= padding <= kernel/2",
			p.Kernel, p.Stride, p.Pad)
	}
	if g.H+2*p.Pad < p.Kernel || g.W+2*p.Pad < p.Kernel {
		k.failf("window %d does not fit the %dx%d input padded by %d", p.Kernel, g.H, g.W, p.Pad)
	}
	if k.err != nil {
		return g
	}
	g.Kernel, g.Stride, g.Pad, g.ExcludePad = p.Kernel, p.Stride, p.Pad, p.ExcludePad
	g.OH, g.OW = OutSize(g.H, p.Kernel, p.Stride, p.Pad), OutSize(g.W, p.Kernel, p.Stride, p.Pad)
	k.actShaped("y", y, g.N, g.C, g.OH, g.OW)
	return g
}

// CheckGlobalAvgPoolForward checks the operands of Device.GlobalAvgPoolForward: y may be (N, C) or
// (N, C, 1, 1).
func CheckGlobalAvgPoolForward(x, y Tensor) (PoolGeometry, error) {
	k := checker{op: "GlobalAvgPoolForward"}
	g := k.globalPool("x", x, "y", y)
	if k.err == nil && g.H*g.W == 0 {
		k.failf("x %v has empty planes", x.Shape)
	}
	return g, k.err
}

// CheckGlobalAvgPoolBackward checks the operands of Device.GlobalAvgPoolBackward: dy may be (N, C) or
// (N, C, 1, 1).
func CheckGlobalAvgPoolBackward(dy, dx Tensor) (PoolGeometry, error) {
	k := checker{op: "GlobalAvgPoolBackward"}
	g := k.globalPool("dx", dx, "dy", dy)
	return g, k.err
}

// globalPool checks a 4-D operand x and the pooled operand y of a global average pool.
func (k *checker) globalPool(xName string, x Tensor, yName string, y Tensor) PoolGeometry {
	g := PoolGeometry{OH: 1, OW: 1, DType: x.DType, Layout: x.Layout}
	g.N, g.C, g.H, g.W = k.act4(xName, x)
	if len(y.Shape) == 4 {
		k.shaped(yName, y, g.N, g.C, 1, 1)
	} else {
		k.shaped(yName, y, g.N, g.C)
	}
	return g
}

// LinearGeometry is the geometry of a checked fully connected layer: x (N, In), w (Out, In), y (N, Out).
type LinearGeometry struct {
	N, In, Out int
}

// CheckLinearForward checks the operands of Device.LinearForward.
func CheckLinearForward(x, w, b, y Tensor) (LinearGeometry, error) {
	k := checker{op: "LinearForward"}
	g := k.linear(x, w)
	k.shaped("b", b, g.Out)
	k.shaped("y", y, g.N, g.Out)
	return g, k.err
}

// CheckLinearBackward checks the operands of Device.LinearBackward (dx may be left unallocated).
func CheckLinearBackward(x, w, dy, dx, dw, db Tensor) (LinearGeometry, error) {
	k := checker{op: "LinearBackward"}
	g := k.linear(x, w)
	k.shaped("dy", dy, g.N, g.Out)
	if dx.Valid() {
		k.shaped("dx", dx, x.Shape...)
	}
	k.shaped("dw", dw, g.Out, g.In)
	k.shaped("db", db, g.Out)
	return g, k.err
}

// linear checks x (N, In...) against w (Out, In). x may keep trailing spatial dimensions of size 1
// (N, C, 1, 1): only the element count per sample must equal In.
func (k *checker) linear(x, w Tensor) LinearGeometry {
	if len(w.Shape) != 2 {
		k.failf("w has shape %v, want (Out, In)", w.Shape)
		return LinearGeometry{}
	}
	g := LinearGeometry{Out: w.Shape[0], In: w.Shape[1]}
	if len(x.Shape) < 2 || x.Shape[1:].Numel() != g.In {
		k.failf("x has shape %v, want (N, %d) to match w %v", x.Shape, g.In, w.Shape)
		return LinearGeometry{}
	}
	g.N = x.Shape[0]
	k.typed("x", x, F32)
	k.typed("w", w, F32)
	return g
}

// LossGeometry is the geometry of a checked softmax cross-entropy: N samples of K classes.
type LossGeometry struct {
	N, K int
}

// CheckSoftmaxCrossEntropy checks the operands of Device.SoftmaxCrossEntropy (dlogits may be left
// unallocated). It does not read the labels: a backend that can check their range cheaply does.
func CheckSoftmaxCrossEntropy(logits, labels, loss, dlogits Tensor) (LossGeometry, error) {
	k := checker{op: "SoftmaxCrossEntropy"}
	g, ok := k.logits(logits)
	if !ok {
		return g, k.err
	}
	if k.err == nil && !labels.Shape.Equal(Shape{g.N}) {
		k.failf("labels have shape %v, want [%d]", labels.Shape, g.N)
	}
	k.typed("labels", labels, I32)
	k.shaped("loss", loss, g.N)
	if dlogits.Valid() {
		k.shaped("dlogits", dlogits, g.N, g.K)
	}
	return g, k.err
}

// logits checks a loss's logits (N, K), f32 with at least one class; ok is false when they are not 2-D.
func (k *checker) logits(logits Tensor) (g LossGeometry, ok bool) {
	if len(logits.Shape) != 2 {
		k.failf("logits have shape %v, want (N, K)", logits.Shape)
		return g, false
	}
	g = LossGeometry{N: logits.Shape[0], K: logits.Shape[1]}
	k.typed("logits", logits, F32)
	if k.err == nil && g.K == 0 && g.N > 0 {
		k.failf("logits have shape %v: no classes", logits.Shape)
	}
	return g, true
}

// CheckSoftTargetCrossEntropy checks the operands of Device.SoftTargetCrossEntropy (dlogits may be left
// invalid).
func CheckSoftTargetCrossEntropy(logits, targets, loss, dlogits Tensor) (LossGeometry, error) {
	k := checker{op: "SoftTargetCrossEntropy"}
	g, ok := k.logits(logits)
	if !ok {
		return g, k.err
	}
	k.shaped("targets", targets, g.N, g.K)
	k.shaped("loss", loss, g.N)
	if dlogits.Valid() {
		k.shaped("dlogits", dlogits, g.N, g.K)
	}
	return g, k.err
}

// ExcitationGeometry is the geometry of a checked SE excitation: N samples of C channels squeezed to R.
type ExcitationGeometry struct {
	N, C, R int
}

// CheckExcitationForward checks the operands of Device.ExcitationForward.
func CheckExcitationForward(t ExcitationTensors) (ExcitationGeometry, error) {
	k := checker{op: "ExcitationForward"}
	g := k.excitation(t.P, t.W1, t.W2)
	k.shaped("B1", t.B1, g.R)
	k.shaped("B2", t.B2, g.C)
	k.shaped("H", t.H, g.N, g.R)
	k.shaped("S", t.S, g.N, g.C)
	return g, k.err
}

// CheckExcitationBackward checks the operands of Device.ExcitationBackward.
func CheckExcitationBackward(gr ExcitationGrads) (ExcitationGeometry, error) {
	k := checker{op: "ExcitationBackward"}
	g := k.excitation(gr.P, gr.W1, gr.W2)
	k.shaped("H", gr.H, g.N, g.R)
	k.shaped("DS", gr.DS, g.N, g.C)
	k.shaped("DH", gr.DH, g.N, g.R)
	k.shaped("DP", gr.DP, g.N, g.C)
	k.shaped("DW1", gr.DW1, g.R, g.C)
	k.shaped("DB1", gr.DB1, g.R)
	k.shaped("DW2", gr.DW2, g.C, g.R)
	k.shaped("DB2", gr.DB2, g.C)
	return g, k.err
}

// excitation checks P (N, C), W1 (R, C) and W2 (C, R).
func (k *checker) excitation(p, w1, w2 Tensor) ExcitationGeometry {
	var g ExcitationGeometry
	switch {
	case len(p.Shape) != 2:
		k.failf("P has shape %v, want (N, C)", p.Shape)
	case len(w1.Shape) != 2:
		k.failf("W1 has shape %v, want (R, C)", w1.Shape)
	}
	if k.err != nil {
		return g
	}
	g.N, g.C, g.R = p.Shape[0], p.Shape[1], w1.Shape[0]
	k.typed("P", p, F32)
	k.shaped("W1", w1, g.R, g.C)
	k.shaped("W2", w2, g.C, g.R)
	return g
}

// ChannelGateGeometry is the geometry of a checked SE gate: x (N, C, H, W) holding DType in Layout, and
// the per-(n, c) logits (N, C) in f32.
type ChannelGateGeometry struct {
	N, C, H, W int
	DType      DType
	Layout     Layout
}

// XLen is the element count of x; HW the positions of a plane.
func (g ChannelGateGeometry) XLen() int { return g.N * g.C * g.H * g.W }
func (g ChannelGateGeometry) HW() int   { return g.H * g.W }

// CheckChannelGateForward checks the operands of Device.ChannelGateForward: z only when p.Residual.
func CheckChannelGateForward(p ChannelGateParams, x, s, z, y Tensor) (ChannelGateGeometry, error) {
	k := checker{op: "ChannelGateForward"}
	g := k.gate("x", x, "s", s)
	if p.Residual {
		k.actShaped("z", z, g.N, g.C, g.H, g.W)
	}
	k.actShaped("y", y, g.N, g.C, g.H, g.W)
	return g, k.err
}

// CheckChannelGateBackward checks the operands of Device.ChannelGateBackward.
func CheckChannelGateBackward(gr ChannelGateGrads) (ChannelGateGeometry, error) {
	k := checker{op: "ChannelGateBackward"}
	g := k.gate("X", gr.X, "S", gr.S)
	k.actShaped("Y", gr.Y, g.N, g.C, g.H, g.W)
	k.actShaped("DY", gr.DY, g.N, g.C, g.H, g.W)
	k.actShaped("DG", gr.DG, g.N, g.C, g.H, g.W)
	k.shaped("DS", gr.DS, g.N, g.C)
	return g, k.err
}

// CheckChannelGateBackwardData checks the operands of Device.ChannelGateBackwardData (dpool may be left
// unallocated).
func CheckChannelGateBackwardData(s, dg, dpool, dx Tensor) (ChannelGateGeometry, error) {
	k := checker{op: "ChannelGateBackwardData"}
	g := k.gate("dg", dg, "s", s)
	if dpool.Valid() {
		k.shaped("dpool", dpool, g.N, g.C)
	}
	k.actShaped("dx", dx, g.N, g.C, g.H, g.W)
	return g, k.err
}

// gate checks a 4-D activation x and the gate logits s (N, C) that scale its planes.
func (k *checker) gate(xName string, x Tensor, sName string, s Tensor) ChannelGateGeometry {
	var g ChannelGateGeometry
	g.N, g.C, g.H, g.W = k.act4(xName, x)
	g.DType, g.Layout = x.DType, x.Layout
	k.shaped(sName, s, g.N, g.C)
	return g
}

// ChannelCopyGeometry is the geometry of a checked Device.CopyChannels: src (N, SrcC, H, W) and dst (N, DstC,
// H, W), both in DType and Layout, with the params' offsets and count.
type ChannelCopyGeometry struct {
	N, SrcC, DstC, H, W int
	ChannelCopyParams
	DType  DType
	Layout Layout
}

// CheckCopyChannels checks the operands of Device.CopyChannels.
func CheckCopyChannels(p ChannelCopyParams, src, dst Tensor) (ChannelCopyGeometry, error) {
	k := checker{op: "CopyChannels"}
	g := ChannelCopyGeometry{ChannelCopyParams: p}
	g.N, g.SrcC, g.H, g.W = k.act4("src", src)
	g.DType, g.Layout = src.DType, src.Layout
	var dn, dh, dw int
	dn, g.DstC, dh, dw = k.act4("dst", dst)
	switch {
	case k.err != nil:
	case dn != g.N || dh != g.H || dw != g.W:
		k.failf("src %v and dst %v differ outside the channel axis", src.Shape, dst.Shape)
	case p.Channels < 0 || p.SrcOffset < 0 || p.DstOffset < 0:
		k.failf("offsets %d, %d and count %d must be >= 0", p.SrcOffset, p.DstOffset, p.Channels)
	case p.SrcOffset+p.Channels > g.SrcC:
		k.failf("channels [%d, %d) are outside src %v", p.SrcOffset, p.SrcOffset+p.Channels, src.Shape)
	case p.DstOffset+p.Channels > g.DstC:
		k.failf("channels [%d, %d) are outside dst %v", p.DstOffset, p.DstOffset+p.Channels, dst.Shape)
	case src.Buf == dst.Buf && src.Off < dst.Off+dst.Numel() && dst.Off < src.Off+src.Numel():
		k.failf("src %v and dst %v overlap in one buffer", src.Shape, dst.Shape)
	}
	return g, k.err
}

// CheckScaledResidual checks the operands of Device.ScaledResidual. Its geometry is that of a batch norm
// with an identity shortcut.
func CheckScaledResidual(p ScaledResidualParams, a, bias, z, y Tensor) (BatchNormGeometry, error) {
	k := checker{op: "ScaledResidual"}
	g := k.scaledResidual(p, "a", a, "bias", bias)
	k.actShaped("z", z, g.N, g.C, g.H, g.W)
	k.actShaped("y", y, g.N, g.C, g.H, g.W)
	return g, k.err
}

// CheckScaledResidualBackward checks the operands of Device.ScaledResidualBackward.
func CheckScaledResidualBackward(p ScaledResidualParams, gr ScaledResidualGrads) (BatchNormGeometry, error) {
	k := checker{op: "ScaledResidualBackward"}
	g := k.scaledResidual(p, "Y", gr.Y, "DBias", gr.DBias)
	k.actShaped("DY", gr.DY, g.N, g.C, g.H, g.W)
	k.actShaped("DA", gr.DA, g.N, g.C, g.H, g.W)
	k.actShaped("DZ", gr.DZ, g.N, g.C, g.H, g.W)
	return g, k.err
}

// scaledResidual checks the scale, a 4-D activation and the per-channel bias (or its gradient).
func (k *checker) scaledResidual(p ScaledResidualParams, xName string, x Tensor, bName string, b Tensor) BatchNormGeometry {
	if s := float64(p.Scale); math.IsNaN(s) || math.IsInf(s, 0) {
		k.failf("scale is %v, want a finite number", p.Scale)
	}
	g := BatchNormGeometry{ZStride: 1}
	g.N, g.C, g.H, g.W = k.act4(xName, x)
	g.ZC, g.DType, g.Layout = g.C, x.DType, x.Layout
	k.shaped(bName, b, g.C)
	return g
}
