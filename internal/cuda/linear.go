//go:build cuda

package cuda

// The fully connected layer: GEMMs on cuBLAS, bias add and bias gradient on kernels/linear.cu.
//
// cuBLAS is column-major; a row-major (r, c) matrix is the column-major (c, r) matrix with the same
// memory and leading dimension c. So with every matrix read as its transpose:
//
//	y (N, Out)  = x (N, In) * w^T      is  y^T (Out, N) = op_T(w^T) (Out, In) * x^T (In, N)
//	dx (N, In)  = dy (N, Out) * w      is  dx^T (In, N) = w^T (In, Out) * dy^T (Out, N)
//	dw (Out, In) = dy^T (Out, N) * x   is  dw^T (In, Out) = x^T (In, N) * op_T(dy^T) (N, Out)

import (
	"fmt"

	"resnet/internal/backend"
)

// linearGeometry validates x (N, In...) against w (Out, In) and returns N, In, Out. x may keep trailing
// spatial dimensions of size 1 (N, C, 1, 1): only the element count per sample must equal In.
func (d *Device) linearGeometry(op string, x, w backend.Tensor) (xp, wp uint64, n, in, out int, err error) {
	if len(w.Shape) != 2 {
		return 0, 0, 0, 0, 0, fmt.Errorf("cuda: %s: w has shape %v, want (Out, In)", op, w.Shape)
	}
	out, in = w.Shape[0], w.Shape[1]
	if len(x.Shape) < 2 || x.Shape[1:].Numel() != in {
		return 0, 0, 0, 0, 0, fmt.Errorf("cuda: %s: x has shape %v, want (N, %d) to match w %v", op, x.Shape, in, w.Shape)
	}
	n = x.Shape[0]
	if xp, err = d.view(op, "x", x, backend.F32); err != nil {
		return 0, 0, 0, 0, 0, err
	}
	if wp, err = d.view(op, "w", w, backend.F32); err != nil {
		return 0, 0, 0, 0, 0, err
	}
	return xp, wp, n, in, out, nil
}

// gemm queues the column-major C (m, n) = op(A) * op(B) (alpha 1, beta 0) on cuBLAS, or zeroes C when the
// inner dimension k is 0.
func (d *Device) gemm(op string, ta, tb bool, m, n, k int, a uint64, lda int, b uint64, ldb int, c uint64, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		d.enqueue(&cmd{kind: cmdMemset, op: op, dst: c, n: int64(m) * int64(n)})
		return
	}
	d.countLib(libSgemm)
	d.enqueue(&cmd{kind: cmdGemm, op: op, gemm: gemmArgs{
		ta: int32(b2i(ta)), tb: int32(b2i(tb)), m: int32(m), n: int32(n), k: int32(k),
		a: a, lda: int32(lda), b: b, ldb: int32(ldb), c: c, ldc: int32(ldc),
	}})
}

// LinearForward implements backend.Device.
func (d *Device) LinearForward(x, w, b, y backend.Tensor) error {
	const op = "LinearForward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	xp, wp, n, in, out, err := d.linearGeometry(op, x, w)
	if err != nil {
		return err
	}
	bp, err := d.shaped(op, "b", b, out)
	if err != nil {
		return err
	}
	yp, err := d.shaped(op, "y", y, n, out)
	if err != nil || n == 0 || out == 0 {
		return err
	}
	d.gemm(op, true, false, out, n, in, wp, in, xp, in, yp, out)
	return d.launch(op, kLinearBiasAdd, d.blocksFor(int64(n)*int64(out)), 1).p(yp).p(bp).i(n).i(out).run()
}

// LinearBackward implements backend.Device: dx = dy*w (when dx is valid), dw = dy^T*x, db = the column
// sums of dy (in double, in row order).
func (d *Device) LinearBackward(x, w, dy, dx, dw, db backend.Tensor) error {
	const op = "LinearBackward"
	if err := d.begin(op); err != nil {
		d.end()
		return err
	}
	defer d.end()
	xp, wp, n, in, out, err := d.linearGeometry(op, x, w)
	if err != nil {
		return err
	}
	dyp, err := d.shaped(op, "dy", dy, n, out)
	if err != nil {
		return err
	}
	var dxp uint64
	if dx.Valid() {
		if dxp, err = d.shaped(op, "dx", dx, x.Shape...); err != nil {
			return err
		}
	}
	dwp, err := d.shaped(op, "dw", dw, out, in)
	if err != nil {
		return err
	}
	dbp, err := d.shaped(op, "db", db, out)
	if err != nil {
		return err
	}
	if dx.Valid() {
		d.gemm(op, false, false, in, n, out, wp, in, dyp, out, dxp, in)
	}
	d.gemm(op, false, true, in, out, n, xp, in, dyp, out, dwp, in)
	if out == 0 {
		return nil
	}
	return d.launch(op, kLinearBiasGrad, blocksOf(out), 1).p(dyp).p(dbp).i(n).i(out).run()
}
