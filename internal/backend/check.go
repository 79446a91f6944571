package backend

// Operand checks shared by every backend. Each Check function takes the operands of the Device method of
// the same name and checks all that does not depend on where the data lives: storage present, layout,
// dtypes, ranks and shapes, parameters, views inside their buffers. The layer ops return the geometry the
// backend then computes with, so a backend has only to turn the operands into its own pointers (checking
// that it allocated them). Errors read "Op: what is wrong"; the backend puts its name in front.

import (
	"fmt"
	"math"
)

// checker runs a series of checks of op's operands and keeps the first failure, so a Check function reads
// as the list of its checks. Nothing allocates unless a check fails (a training step allocates nothing).
type checker struct {
	op  string
	err error
	// act is the first activation operand checked (set once actSet): every other activation of the op must
	// have its dtype and layout.
	act    Tensor
	actBy  string
	actSet bool
}

func (k *checker) failf(format string, args ...any) {
	if k.err == nil {
		k.err = fmt.Errorf("%s: %s", k.op, fmt.Sprintf(format, args...))
	}
}

// tensor checks what every op asks of an operand, whatever its dtype: live storage holding the dtype the
// tensor is labelled with, a known layout (NHWC only for a 4-D tensor), no negative dimension, and a view
// inside the storage.
func (k *checker) tensor(name string, t Tensor) {
	switch {
	case k.err != nil:
	case t.Buf == nil:
		k.failf("%s is not allocated", name)
	case t.Buf.Freed():
		k.failf("%s was freed", name)
	case t.DType != t.Buf.DType():
		k.failf("%s is labelled %v but its buffer holds %v", name, t.DType, t.Buf.DType())
	case t.Layout != NCHW && t.Layout != NHWC:
		k.failf("%s has %v; want NCHW or NHWC", name, t.Layout)
	case t.Layout == NHWC && len(t.Shape) != 4:
		k.failf("%s is NHWC with shape %v; only 4-D tensors have a channels-last layout", name, t.Shape)
	case hasNegative(t.Shape):
		k.failf("%s has shape %v with a negative dimension", name, t.Shape)
	case t.Off < 0 || t.Off+t.Numel() > t.Buf.Len():
		k.failf("%s views elements [%d, %d) of a buffer of %d", name, t.Off, t.Off+t.Numel(), t.Buf.Len())
	}
}

// typed checks an operand that must hold dt in the NCHW order (every operand but a 4-D activation).
func (k *checker) typed(name string, t Tensor, dt DType) {
	k.tensor(name, t)
	switch {
	case k.err != nil:
	case t.DType != dt:
		k.failf("%s is %v, want %v", name, t.DType, dt)
	case t.Layout != NCHW:
		k.failf("%s is %v; only 4-D activations may be", name, t.Layout)
	}
}

// activation checks a 4-D activation operand (or its gradient): any floating-point dtype and either layout,
// the same as the op's other activations.
func (k *checker) activation(name string, t Tensor) {
	k.tensor(name, t)
	switch {
	case k.err != nil:
	case !t.DType.Float():
		k.failf("%s is %v, want a floating-point activation", name, t.DType)
	case !k.actSet:
		k.act, k.actBy, k.actSet = t, name, true
	case t.DType != k.act.DType || t.Layout != k.act.Layout:
		k.failf("%s is %v %v but %s is %v %v; an op's activations share one dtype and layout", name, t.DType,
			t.Layout, k.actBy, k.act.DType, k.act.Layout)
	}
}

// dims4 checks a 4-D f32 NCHW operand (a convolution's weight) and returns its dimensions.
func (k *checker) dims4(name string, t Tensor) (n, c, h, w int) {
	return k.rank4(name, t, func() { k.typed(name, t, F32) })
}

// act4 checks a 4-D activation operand and returns its (N, C, H, W).
func (k *checker) act4(name string, t Tensor) (n, c, h, w int) {
	return k.rank4(name, t, func() { k.activation(name, t) })
}

func (k *checker) rank4(name string, t Tensor, check func()) (n, c, h, w int) {
	if k.err == nil && len(t.Shape) != 4 {
		k.failf("%s has shape %v, want 4-D (N, C, H, W)", name, t.Shape)
	}
	check()
	if k.err != nil {
		return 0, 0, 0, 0
	}
	return t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
}

// shaped checks an f32 operand whose shape must be exactly want.
func (k *checker) shaped(name string, t Tensor, want ...int) {
	k.shape(name, t, want)
	k.typed(name, t, F32)
}

// actShaped checks a 4-D activation operand whose shape must be exactly want.
func (k *checker) actShaped(name string, t Tensor, want ...int) {
	k.shape(name, t, want)
	k.activation(name, t)
}

func (k *checker) shape(name string, t Tensor, want []int) {
	if k.err == nil && !t.Shape.Equal(Shape(want)) {
		// Copy want so it does not escape: the variadic slice then stays on the caller's stack.
		k.failf("%s has shape %v, want %v", name, t.Shape, append([]int(nil), want...))
	}
}

func hasNegative(s Shape) bool {
	for _, d := range s {
		if d < 0 {
			return true
		}
	}
	return false
}

// CheckOperand checks a tensor that op reads or writes as one holding dt, the checks every op makes of
// each of its operands.
func CheckOperand(op, name string, t Tensor, dt DType) error {
	k := checker{op: op}
	k.typed(name, t, dt)
	return k.err
}

// CheckAlloc checks the arguments of Device.Alloc on a device that holds the 4-D activations in act
// (dtype) and actLayout: f32 or i32 tensors of any rank in NCHW order, and 4-D tensors in the activation
// format.
func CheckAlloc(shape Shape, dt DType, layout Layout, act DType, actLayout Layout) error {
	k := checker{op: "Alloc"}
	switch {
	case !dt.Known():
		k.failf("%v is not supported; tensors hold f32, i32 or a 16-bit float", dt)
	case layout != NCHW && layout != NHWC:
		k.failf("%v is not supported; want NCHW or NHWC", layout)
	case hasNegative(shape):
		k.failf("shape %v has a negative dimension", shape)
	case (dt == F32 || dt == I32) && layout == NCHW:
	case len(shape) != 4:
		k.failf("%v %v with shape %v: only 4-D activations may be other than f32 or i32 NCHW", dt, layout, shape)
	case dt != act || layout != actLayout:
		k.failf("%v %v is not this device's activation format (%v %v)%s", dt, layout, act, actLayout,
			formatHint(dt, layout))
	}
	return k.err
}

// formatHint says which setting gives a device activations of dt and layout.
func formatHint(dt DType, layout Layout) string {
	switch {
	case dt == BF16 || dt == F16:
		return fmt.Sprintf("; %v activations need the cuda backend with cuda.precision: %s", dt, PrecisionName(dt))
	case layout == NHWC:
		return "; NHWC activations need the cuda backend with cuda.layout: nhwc"
	}
	return ""
}

// CheckUpload checks the operands of Device.Upload: dst holds floating-point values in any layout (the
// source is float32 in (N, C, H, W) order whatever dst's dtype and layout).
func CheckUpload(dst Tensor, src []float32) error {
	k := checker{op: "Upload"}
	k.floating("dst", dst)
	k.count("source has %d values", len(src), dst)
	return k.err
}

// CheckUploadInt32 checks the operands of Device.UploadInt32.
func CheckUploadInt32(dst Tensor, src []int32) error {
	k := checker{op: "UploadInt32"}
	k.typed("dst", dst, I32)
	k.count("source has %d values", len(src), dst)
	return k.err
}

// floating checks an operand that may hold any floating-point dtype in any layout.
func (k *checker) floating(name string, t Tensor) {
	k.tensor(name, t)
	if k.err == nil && !t.DType.Float() {
		k.failf("%s is %v, want a floating-point tensor", name, t.DType)
	}
}

// count checks that a host slice of n values matches tensor t.
func (k *checker) count(what string, n int, t Tensor) {
	if k.err == nil && n != t.Numel() {
		k.failf(what+", tensor %v holds %d", n, t.Shape, t.Numel())
	}
}

// CheckDownload checks the operands of Device.Download: src holds floating-point values in any layout,
// written to dst as float32 in (N, C, H, W) order.
func CheckDownload(dst []float32, src Tensor) error {
	k := checker{op: "Download"}
	k.floating("src", src)
	if k.err == nil && len(dst) != src.Numel() {
		k.failf("destination has room for %d values, tensor %v holds %d", len(dst), src.Shape, src.Numel())
	}
	return k.err
}

// CheckZero checks the operand of Device.Zero.
func CheckZero(t Tensor) error {
	k := checker{op: "Zero"}
	k.tensor("t", t)
	return k.err
}

// CheckCopy checks the operands of Device.Copy: any shapes, the same dtype and element count.
func CheckCopy(dst, src Tensor) error {
	k := checker{op: "Copy"}
	k.tensor("dst", dst)
	k.tensor("src", src)
	switch {
	case k.err != nil:
	case dst.DType != src.DType:
		k.failf("dst is %v, src is %v", dst.DType, src.DType)
	case dst.Layout != src.Layout:
		k.failf("dst is %v, src is %v", dst.Layout, src.Layout)
	case dst.Numel() != src.Numel():
		k.failf("dst %v holds %d values, src %v holds %d", dst.Shape, dst.Numel(), src.Shape, src.Numel())
	}
	return k.err
}

// CheckSGDStep checks every slot of Device.SGDStep; the error names the first bad slot. Buf may be left
// unallocated when Momentum is 0.
func CheckSGDStep(p SGDParams, slots []SGDSlot) error {
	if g := p.GradScale; !(g >= 0) || math.IsInf(float64(g), 0) {
		return fmt.Errorf("SGDStep: GradScale must be a finite number >= 0 (0 means 1), got %v", g)
	}
	for i, s := range slots {
		if err := checkSlot(p, s); err != nil {
			return fmt.Errorf("%w (slot %d)", err, i)
		}
	}
	return nil
}

func checkSlot(p SGDParams, s SGDSlot) error {
	k := checker{op: "SGDStep"}
	k.typed("Param", s.Param, F32)
	k.shaped("Grad", s.Grad, s.Param.Shape...)
	switch {
	case s.Buf.Valid():
		k.shaped("Buf", s.Buf, s.Param.Shape...)
	case p.Momentum != 0:
		k.failf("Buf is not allocated but Momentum is %v", p.Momentum)
	}
	return k.err
}

// CheckFindNonFinite checks the operands of Device.FindNonFinite: f32 tensors, and nonNegative nil or one
// entry per tensor. The error names the first bad tensor by its index.
func CheckFindNonFinite(ts []Tensor, nonNegative []bool) error {
	k := checker{op: "FindNonFinite"}
	if nonNegative != nil && len(nonNegative) != len(ts) {
		k.failf("nonNegative has %d entries for %d tensors; pass nil or one per tensor", len(nonNegative), len(ts))
		return k.err
	}
	for i, t := range ts {
		k.typed("tensor", t, F32)
		if k.err != nil {
			return fmt.Errorf("%w (ts[%d])", k.err, i)
		}
	}
	return nil
}
