package backend

// Operand checks shared by every backend. Each Check function takes the operands of the Device method of
// the same name and checks all that does not depend on where the data lives: storage present, layout,
// dtypes, ranks and shapes, parameters, views inside their buffers. The layer ops return the geometry the
// backend then computes with, so a backend has only to turn the operands into its own pointers (checking
// that it allocated them). Errors read "Op: what is wrong"; the backend puts its name in front.

import (
	"fmt"
)

// checker runs a series of checks of op's operands and keeps the first failure, so a Check function reads
// as the list of its checks. Nothing allocates unless a check fails (a training step allocates nothing).
type checker struct {
	op  string
	err error
}

func (k *checker) failf(format string, args ...any) {
	if k.err == nil {
		k.err = fmt.Errorf("%s: %s", k.op, fmt.Sprintf(format, args...))
	}
}

// tensor checks what every op asks of an operand, whatever its dtype: live storage holding the dtype the
// tensor is labelled with, the NCHW layout, no negative dimension, and a view inside the storage.
func (k *checker) tensor(name string, t Tensor) {
	switch {
	case k.err != nil:
	case t.Buf == nil:
		k.failf("%s is not allocated", name)
	case t.Buf.Freed():
		k.failf("%s was freed", name)
	case t.DType != t.Buf.DType():
		k.failf("%s is labelled %v but its buffer holds %v", name, t.DType, t.Buf.DType())
	case t.Layout != NCHW:
		k.failf("%s has %v; NCHW is the only layout", name, t.Layout)
	case hasNegative(t.Shape):
		k.failf("%s has shape %v with a negative dimension", name, t.Shape)
	case t.Off < 0 || t.Off+t.Numel() > t.Buf.Len():
		k.failf("%s views elements [%d, %d) of a buffer of %d", name, t.Off, t.Off+t.Numel(), t.Buf.Len())
	}
}

// typed checks an operand that must hold dt.
func (k *checker) typed(name string, t Tensor, dt DType) {
	k.tensor(name, t)
	if k.err == nil && t.DType != dt {
		k.failf("%s is %v, want %v", name, t.DType, dt)
	}
}

// dims4 checks a 4-D f32 operand and returns its (N, C, H, W).
func (k *checker) dims4(name string, t Tensor) (n, c, h, w int) {
	if k.err == nil && len(t.Shape) != 4 {
		k.failf("%s has shape %v, want 4-D (N, C, H, W)", name, t.Shape)
	}
	k.typed(name, t, F32)
	if k.err != nil {
		return 0, 0, 0, 0
	}
	return t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
}

// shaped checks an f32 operand whose shape must be exactly want.
func (k *checker) shaped(name string, t Tensor, want ...int) {
	if k.err == nil && !t.Shape.Equal(Shape(want)) {
		// Copy want so it does not escape: the variadic slice then stays on the caller's stack.
		k.failf("%s has shape %v, want %v", name, t.Shape, append([]int(nil), want...))
	}
	k.typed(name, t, F32)
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

// CheckAlloc checks the arguments of Device.Alloc.
func CheckAlloc(shape Shape, dt DType, layout Layout) error {
	k := checker{op: "Alloc"}
	switch {
	case layout != NCHW:
		k.failf("%v is not supported; NCHW is the only layout", layout)
	case dt != F32 && dt != I32:
		k.failf("%v is not supported; tensors hold f32 (i32 for labels)", dt)
	case hasNegative(shape):
		k.failf("shape %v has a negative dimension", shape)
	}
	return k.err
}

// CheckUpload checks the operands of Device.Upload.
func CheckUpload(dst Tensor, src []float32) error { return checkUpload("Upload", dst, F32, len(src)) }

// CheckUploadInt32 checks the operands of Device.UploadInt32.
func CheckUploadInt32(dst Tensor, src []int32) error {
	return checkUpload("UploadInt32", dst, I32, len(src))
}

func checkUpload(op string, dst Tensor, dt DType, n int) error {
	k := checker{op: op}
	k.typed("dst", dst, dt)
	if k.err == nil && n != dst.Numel() {
		k.failf("source has %d values, tensor %v holds %d", n, dst.Shape, dst.Numel())
	}
	return k.err
}

// CheckDownload checks the operands of Device.Download.
func CheckDownload(dst []float32, src Tensor) error {
	k := checker{op: "Download"}
	k.typed("src", src, F32)
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
	case dst.Numel() != src.Numel():
		k.failf("dst %v holds %d values, src %v holds %d", dst.Shape, dst.Numel(), src.Shape, src.Numel())
	}
	return k.err
}

// CheckSGDStep checks every slot of Device.SGDStep; the error names the first bad slot. Buf may be left
// unallocated when Momentum is 0.
func CheckSGDStep(p SGDParams, slots []SGDSlot) error {
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
